"""The request journal: every call a client made to either API family, with what it sent and got,
credentials redacted, bounded, and the queries WireMock-style verification asks of it.

No HTTP here: :mod:`mock_server.api.journal` records the calls and serves the queries.
"""

from __future__ import annotations

import fnmatch
import hashlib
import itertools
import json
import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

REDACTED = "[redacted]"
# What a journal reader must not see in clear: credentials, OTP secrets, tokens.
SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization", "x-api-key"})
SECRET_FIELDS = frozenset({"secret", "password", "pin", "token", "token_uid", "otp", "billing_password",
                           "ext_unlock_value", "admin_token"})
# Operations whose whole answer is a credential (the token a create or a listing hands out).
SECRET_ANSWERS = frozenset({"create_token", "list_tokens", "get_token"})
_PRESENCE = ("present", "absent")


def redact_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Headers as a dict, credentials replaced by :data:`REDACTED`."""
    return {name: REDACTED if name.lower() in SECRET_HEADERS else value for name, value in headers}


def redact(value: Any) -> Any:
    """A JSON value with every credential field's value replaced by :data:`REDACTED`."""
    if isinstance(value, dict):
        return {key: REDACTED if key in SECRET_FIELDS and item not in (None, "") else redact(item)
                for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


class Entry(NamedTuple):
    """One call: what was asked, what was answered.

    Recorded as it came (raw headers, the parsed body, the answer's bytes when JSON) and shown
    redacted when asked: recording sits on every call's path, reading the journal on none.
    """

    id: int
    wall: float  # time.time() then, and the sandbox clock's offset then: ``at`` is made when read
    offset: timedelta
    namespace: str
    operation: str | None
    method: str
    path: str
    query_string: str
    raw_headers: tuple[tuple[bytes, bytes], ...]
    body_seen: Any  # what a parser read (JSON or form fields, multipart parts listed), a summary, or None
    status: int
    content_type: str
    answer: bytes | dict[str, Any]  # a JSON answer's bytes, or a summary of any other
    ms: float
    request_pk: int | None
    error: str | None  # the catalogue key of the error answered
    near_misses: tuple[str, ...] = ()

    @property
    def at(self) -> datetime:
        """When the call was answered, on the sandbox clock."""
        return datetime.fromtimestamp(self.wall, UTC) + self.offset

    @property
    def body(self) -> Any:
        """The request body as shown: JSON or form fields (redacted), parts listed, or a summary."""
        return redact(self.body_seen)

    def as_json(self) -> dict[str, Any]:
        """The entry as the control API shows it."""
        return {
            "id": self.id, "at": self.at.isoformat(), "namespace": self.namespace, "operation": self.operation,
            "method": self.method, "path": self.path, "query": dict(parse_qsl(self.query_string)),
            "headers": redact_headers((name.decode("latin-1"), value.decode("latin-1"))
                                      for name, value in self.raw_headers),
            "body": self.body, "status": self.status, "response": self._answer(), "ms": round(self.ms, 1),
            "request_pk": self.request_pk, "error": self.error, "near_misses": list(self.near_misses),
        }

    def _answer(self) -> Any:
        if isinstance(self.answer, dict):
            return self.answer
        try:
            answer = json.loads(self.answer)
        except ValueError:
            return summary(self.answer, self.content_type.split(";")[0])
        if self.operation in SECRET_ANSWERS and isinstance(answer, dict) and self.status < 400:
            return {**answer, **{key: REDACTED for key in ("details", "detail") if key in answer}}
        return redact(answer)


def summary(data: bytes, content_type: str) -> dict[str, Any]:
    """What a journal keeps of bytes: their type, size and SHA-256."""
    return {"content_type": content_type, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


class QueryError(ValueError):
    """A journal query that cannot be asked: it names the field."""


@dataclass(frozen=True)
class Query:
    """Which entries to count: every given condition must hold."""

    method: str | None = None
    path: str | None = None  # a glob: /api/v1/sign/*
    operation: str | None = None
    status: int | None = None
    request_pk: int | None = None
    since: int | datetime | None = None  # an entry id (exclusive) or a time
    body: Mapping[str, str] = field(default_factory=dict)  # field -> present | absent | a regex

    @classmethod
    def parse(cls, given: Mapping[str, Any]) -> Query:
        """A query from query-string or JSON fields; :class:`QueryError` names a bad one."""
        known = {"method", "path", "operation", "status", "pk", "since", "body"}
        unknown = sorted(set(given) - known - {"namespace", "count", "at_least", "at_most", "limit"})
        if unknown:
            raise QueryError(f"unknown field {unknown[0]!r} (use {', '.join(sorted(known))})")
        body = given.get("body") or {}
        if not isinstance(body, dict) or not all(isinstance(v, str) for v in body.values()):
            raise QueryError("body: an object of field -> 'present', 'absent' or a regular expression")
        for name, condition in body.items():
            if condition not in _PRESENCE:
                try:
                    re.compile(condition)
                except re.error as fault:
                    raise QueryError(f"body.{name}: bad regular expression ({fault})") from None
        return cls(
            method=str(given["method"]).upper() if given.get("method") else None,
            path=str(given["path"]) if given.get("path") else None,
            operation=str(given["operation"]) if given.get("operation") else None,
            status=_integer(given, "status"),
            request_pk=_integer(given, "pk"),
            since=_since(given.get("since")),
            body=body,
        )

    def matches(self, entry: Entry) -> bool:
        """Whether ``entry`` meets every condition."""
        if self.method and entry.method != self.method:
            return False
        if self.path and not fnmatch.fnmatchcase(entry.path, self.path):
            return False
        if self.operation and entry.operation != self.operation:
            return False
        if self.status is not None and entry.status != self.status:
            return False
        if self.request_pk is not None and entry.request_pk != self.request_pk:
            return False
        if isinstance(self.since, int) and entry.id <= self.since:
            return False
        if isinstance(self.since, datetime) and entry.at < self.since:
            return False
        return all(_body_holds(entry.body, name, condition) for name, condition in self.body.items())

    def describe(self) -> str:
        """The query in words, for a verification's message."""
        parts = [self.method or "any method", self.path or self.operation or "any path"]
        if self.status is not None:
            parts.append(f"answered {self.status}")
        if self.request_pk is not None:
            parts.append(f"for request {self.request_pk}")
        parts += [f"with {name} {condition}" if condition in _PRESENCE else f"with {name} ~ {condition!r}"
                  for name, condition in self.body.items()]
        return " ".join(parts)


def _integer(given: Mapping[str, Any], name: str) -> int | None:
    value = given.get(name)
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not str(value).isdigit():
        raise QueryError(f"{name}: a whole number, not {value!r}")
    return int(value)


def _since(value: Any) -> int | datetime | None:
    if value in (None, ""):
        return None
    if str(value).isdigit():
        return int(value)
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(f"since: an entry id or an ISO time, not {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # a time without a zone is UTC


def _body_holds(body: Any, name: str, condition: str) -> bool:
    fields = body.get("fields", body) if isinstance(body, dict) else {}
    present = isinstance(fields, dict) and fields.get(name) not in (None, "")
    if condition in _PRESENCE:
        return present == (condition == "present")
    return present and re.search(condition, str(fields[name])) is not None


@dataclass(frozen=True)
class Expectation:
    """How many entries a verification wants: exactly, at least or at most."""

    exactly: int | None = None
    at_least: int | None = None
    at_most: int | None = None

    @classmethod
    def parse(cls, given: Mapping[str, Any]) -> Expectation:
        """From ``count``, ``at_least`` and ``at_most`` (``at_least: 1`` when none is given)."""
        values = {name: _integer(given, name) for name in ("count", "at_least", "at_most")}
        if all(value is None for value in values.values()):
            return cls(at_least=1)
        if values["count"] is not None and (values["at_least"] is not None or values["at_most"] is not None):
            raise QueryError("count: exactly, or at_least and at_most, not both")
        return cls(values["count"], values["at_least"], values["at_most"])

    def met(self, count: int) -> bool:
        """Whether ``count`` entries meet it."""
        if self.exactly is not None:
            return count == self.exactly
        return (self.at_least is None or count >= self.at_least) and (self.at_most is None or count <= self.at_most)

    def describe(self) -> str:
        """The expectation in words."""
        if self.exactly is not None:
            return f"exactly {self.exactly}"
        bounds = [f"at least {self.at_least}" if self.at_least is not None else "",
                  f"at most {self.at_most}" if self.at_most is not None else ""]
        return " and ".join(bound for bound in bounds if bound)


class Journal:
    """One namespace's calls, the newest ``limit`` kept."""

    def __init__(self, limit: int) -> None:
        # Plain tuples in :class:`Entry`'s field order, made into entries when read: recording is
        # on every call's path (a named tuple's constructor alone costs a tenth of a hello).
        self._entries: deque[tuple[Any, ...]] = deque(maxlen=limit)
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        """The id the next entry gets (ids go on rising across a reset, so ``since`` stays meaningful)."""
        return next(self._ids)

    def add(self, fields: tuple[Any, ...]) -> None:
        """Keep an entry given as a tuple of :class:`Entry`'s fields, in order."""
        self._entries.append(fields)

    def clear(self) -> None:
        self._entries.clear()

    def entries(self) -> list[Entry]:
        """Every entry kept, oldest first."""
        return [Entry._make(fields) for fields in self._entries]

    def find(self, query: Query) -> list[Entry]:
        """The entries ``query`` matches, oldest first."""
        return [entry for entry in self.entries() if query.matches(entry)]

    def verify(self, query: Query, expectation: Expectation) -> dict[str, Any]:
        """Whether the calls ``query`` matches number as ``expectation`` wants, and what was seen."""
        found = self.find(query)
        verified = expectation.met(len(found))
        wanted = f"{expectation.describe()} {query.describe()}"
        message = f"{'saw' if verified else 'expected'} {wanted}: {len(found)} matched"
        if not verified:
            latest = [Entry._make(fields) for fields in itertools.islice(reversed(self._entries), 5)][::-1]
            message += "; the latest calls: " + ("; ".join(
                f"{entry.method} {entry.path} → {entry.status}" for entry in latest) or "none")
        return {"verified": verified, "count": len(found), "expected": wanted, "message": message}
