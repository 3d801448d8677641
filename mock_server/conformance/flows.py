"""What a client of each API family does, step by step, as the vendor's workflows document it; every
answer kept as an :class:`Observation` to compare.

Both families run the same flows (create, upload, sign, fetch, delete), each through its own paths and
answer shapes (:class:`Dialect`). A flow goes on as long as the answers let it (a pk to sign, a
document uid to fetch); a step that answers what a client would not go on from ends the flow there,
and the comparison says so.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import aiohttp

from mock_server.domain.hashfile import hash_file

LEGACY = "/api/v1"
NEW = "/oneshot/api/v1"
# What every flow's signer has in common; the phone is the one --phone names (the vendor's sandbox
# sends the OTP there).
_SIGNER = {"id_document_type": "IDC", "id_document_country": "ES", "registration_authority": "9999",
           "profile": "PFnubeNC", "env": "sandbox"}
# A signer of its own for each flow, so that the names clients send pass through both servers (accents,
# no second surname, the longest: async's common name is the 64 bytes a certificate holds); a drift in
# how one of them is taken shows as a difference.
SIGNERS = {
    "classic": {"given_name": "José María", "surname_1": "Núñez", "surname_2": "Ibáñez",
                "serial_number": "12345678Z", "email": "jose.nunez@example.com"},
    "hash": {"given_name": "Zoë", "surname_1": "O'Brien", "serial_number": "X1234567L",
             "email": "zoe.obrien@example.com"},
    "async": {"given_name": "Łukasz Maximilian", "surname_1": "Wiśniewski-Kowalczyk",
              "surname_2": "Grzegorzewska-Szczepań", "serial_number": "AB1234567",
              "email": "lukasz.wisniewski@example.com"},
}
DEFAULT_PHONE = "+34600000000"
_ASYNC_POLLS = 100
_ASYNC_POLL_S = 0.1
_SIGNING = ("pending", "signing")  # an asynchronous request's progress before it is signed


@dataclass
class Observation:
    """One step's answer: its HTTP status, media type, JSON body (None for bytes) and size."""

    flow: str
    step: str
    method: str
    path: str  # the documented path, ids as placeholders: /api/v1/sign/{pk}
    status: int | None
    media_type: str = ""
    body: Any = None
    size: int = 0
    problem: str | None = None  # no answer at all, or why the flow could not go on after it

    def as_json(self) -> dict[str, Any]:
        """The observation as the JSON report keeps it."""
        return {"method": self.method, "path": self.path, "status": self.status, "media_type": self.media_type,
                "body": self.body, "size": self.size, "problem": self.problem}


class FlowStopped(Exception):
    """The answer of a step leaves a client nothing to go on with."""


OtpSource = Callable[["Target", int], Awaitable[str]]


@dataclass
class Target:
    """One server the flows run against, and what they saw there."""

    base: str
    session: aiohttp.ClientSession
    credentials: Mapping[str, str]  # token, or RAO username, password and pin, as create sends them
    otp: OtpSource
    callback: str | None = None  # a URL this server can deliver webhooks to, if any
    phone: str = DEFAULT_PHONE  # where the flows' signers receive their OTPs
    observations: list[Observation] = field(default_factory=list)

    async def call(self, flow: str, step: str, method: str, path: str, values: Mapping[str, Any] | None = None,
                   expect: tuple[int, ...] = (200,), **kwargs: Any) -> Observation:
        """One call of ``flow``, kept; :class:`FlowStopped` unless it answers one of ``expect``."""
        seen = await self._answer(flow, step, method, path, values, **kwargs)
        return self._keep(seen, expect)

    async def poll(self, flow: str, step: str, path: str, values: Mapping[str, Any],
                   until: Callable[[Any], bool]) -> Observation:
        """``GET path`` until its body meets ``until`` (or the polls run out); only the last answer is
        kept: how many polls a signature takes is timing, not conformance."""
        for _ in range(_ASYNC_POLLS - 1):
            seen = await self._answer(flow, step, "GET", path, values)
            if seen.status != 200 or until(seen.body):
                break
            await asyncio.sleep(_ASYNC_POLL_S)
        else:
            seen = await self._answer(flow, step, "GET", path, values)
        return self._keep(seen, (200,))

    def note(self, flow: str, step: str, seen: Any) -> None:
        """Keep ``seen`` (what several calls showed: a sequence of statuses) as a step of its own."""
        self.observations.append(Observation(flow, step, "", "", 200, "application/json", seen))

    async def _answer(self, flow: str, step: str, method: str, path: str, values: Mapping[str, Any] | None,
                      **kwargs: Any) -> Observation:
        try:
            async with self.session.request(method, self.base + path.format(**(values or {})), **kwargs) as answer:
                raw = await answer.read()
                status, media_type = answer.status, answer.content_type
        except (aiohttp.ClientError, TimeoutError) as fault:
            seen = Observation(flow, step, method, path, None, problem=f"no answer ({type(fault).__name__}: {fault})")
            self.observations.append(seen)
            raise FlowStopped(seen.problem) from None
        body = None
        if media_type == "application/json":
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
        return Observation(flow, step, method, path, status, media_type, body, len(raw))

    def _keep(self, seen: Observation, expect: tuple[int, ...]) -> Observation:
        self.observations.append(seen)
        if seen.status not in expect:
            seen.problem = f"HTTP {seen.status}: the flow cannot go on"
            raise FlowStopped(seen.problem)
        return seen


def _form(fields: Mapping[str, Any], files: tuple[tuple[str, str, str, bytes], ...] = ()) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, value in fields.items():
        form.add_field(name, str(value))
    for name, filename, media_type, data in files:
        form.add_field(name, data, filename=filename, content_type=media_type)
    return form


@functools.cache
def _document() -> bytes:
    """The README's sample document (one page of text), shipped with the package."""
    return (resources.files("mock_server.fixtures") / "document.pdf").read_bytes()


def _pdf() -> tuple[str, str, str, bytes]:
    return ("file", "conformance.pdf", "application/pdf", _document())


def _hash_file() -> tuple[str, str, str, bytes]:
    digest = hashlib.sha256(b"oneshot-mock conformance").digest()
    return ("hashfile", "digest.json", "application/json", hash_file(digest))


def _at(body: Any, *keys: str) -> Any:
    """``body[keys[0]][keys[1]]...``, or None where the answer does not have that shape."""
    for key in keys:
        body = body.get(key) if isinstance(body, dict) else None
    return body


@dataclass(frozen=True)
class Dialect:
    """One API family's paths and answer shapes for the flows (``{pk}`` and ``{uid}`` filled in)."""

    read_only: tuple[tuple[str, str], ...]  # (step, path) of the calls that change nothing
    create: str
    pk: tuple[str, ...]  # where the create answer holds the request pk
    status: str
    status_at: tuple[str, ...]  # where the status answer holds the request's status
    upload: str
    uid: tuple[str, ...]  # where the upload answer holds the document uid
    contract: str
    otp: str
    sign: str
    signed: str
    documents: str  # list (GET) and delete (DELETE) a request's documents
    asynchronous: Mapping[str, str]  # what create adds for an asynchronous request
    progress: str  # polled while an asynchronous request signs
    progress_at: tuple[str, ...]  # where that answer holds pending / signing / signed


LEGACY_DIALECT = Dialect(
    read_only=(("hello", f"{LEGACY}/hello"), ("version", f"{LEGACY}/version"), ("list images", f"{LEGACY}/images")),
    create=f"{LEGACY}/request", pk=("details",), status=f"{LEGACY}/request/{{pk}}", status_at=("details", "status"),
    upload=f"{LEGACY}/document/{{pk}}", uid=("details",), contract=f"{LEGACY}/document/{{pk}}/contract",
    otp=f"{LEGACY}/otp/{{pk}}", sign=f"{LEGACY}/sign/{{pk}}", signed=f"{LEGACY}/document/{{pk}}/signed/{{uid}}",
    documents=f"{LEGACY}/documents/{{pk}}", asynchronous={"useasync": "true"},
    progress=f"{LEGACY}/async/status/{{pk}}", progress_at=("details",),
)
NEW_DIALECT = Dialect(
    read_only=(("list images", f"{NEW}/images"),),
    create=f"{NEW}/create", pk=("details", "request_pk"), status=f"{NEW}/request/{{pk}}/status",
    status_at=("details", "status"), upload=f"{NEW}/document/{{pk}}", uid=("detail", "uid"),
    contract=f"{NEW}/contract/{{pk}}", otp=f"{NEW}/otp/{{pk}}", sign=f"{NEW}/sign/{{pk}}",
    signed=f"{NEW}/document/{{pk}}/{{uid}}?document_type=signed", documents=f"{NEW}/document/{{pk}}",
    asynchronous={"asyncmode": "true"}, progress=f"{NEW}/request/{{pk}}/status",
    progress_at=("details", "async_status"),
)


async def read_only(t: Target, dialect: Dialect) -> None:
    """The calls that change nothing (token listings are left out: their answers are credentials)."""
    for step, path in dialect.read_only:
        await t.call("read-only", step, "GET", path)


async def classic(t: Target, dialect: Dialect) -> None:
    """Create, upload a PDF, contract, OTP, sign, the signed PDF, list and delete the documents."""
    await _document_flow(t, dialect, "classic", _pdf(), {})


async def hash_signature(t: Target, dialect: Dialect) -> None:
    """The same with a hash file: the signed result is a P7M."""
    await _document_flow(t, dialect, "hash", _hash_file(), {})


async def asynchronous(t: Target, dialect: Dialect) -> None:
    """Created asynchronous with a callback: sign answers at once, the progress is polled until signed."""
    if t.callback is None:
        raise FlowStopped("no callback this target can reach")
    await _document_flow(t, dialect, "async", _pdf(), {**dialect.asynchronous, "callback": t.callback})


async def _document_flow(t: Target, d: Dialect, flow: str, part: tuple[str, str, str, bytes],
                         extra: Mapping[str, str]) -> None:
    created = await t.call(flow, "create request", "POST", d.create, expect=(200, 201),
                           data=_form({**t.credentials, **_SIGNER, **SIGNERS[flow], "mobile_phone_number": t.phone,
                                       **extra}))
    values: dict[str, Any] = {"pk": _at(created.body, *d.pk)}
    if not isinstance(values["pk"], int):
        raise FlowStopped("create answered no request pk")
    statuses = [_at((await t.call(flow, "status after create", "GET", d.status, values)).body, *d.status_at)]
    uploaded = await t.call(flow, "upload document", "POST", d.upload, values, data=_form({}, (part,)))
    values["uid"] = _at(uploaded.body, *d.uid)
    if not isinstance(values["uid"], str):
        raise FlowStopped("the upload answered no document uid")
    if part[0] == "file":
        await t.call(flow, "contract", "GET", d.contract, values)
    await t.call(flow, "generate OTP", "POST", d.otp, values)
    await t.call(flow, "sign", "POST", d.sign, values, json={"secret": await t.otp(t, values["pk"])})
    if "callback" in extra:
        await t.poll(flow, "async status", d.progress, values, lambda body: _at(body, *d.progress_at) not in _SIGNING)
    statuses.append(_at((await t.call(flow, "status after sign", "GET", d.status, values)).body, *d.status_at))
    t.note(flow, "status sequence", statuses)
    await t.call(flow, "signed document", "GET", d.signed, values)
    await t.call(flow, "list documents", "GET", d.documents, values)
    await t.call(flow, "delete documents", "DELETE", d.documents, values)


DIALECTS = {"legacy": LEGACY_DIALECT, "new": NEW_DIALECT}
FLOWS: tuple[Callable[[Target, Dialect], Awaitable[None]], ...] = (read_only, classic, hash_signature, asynchronous)
