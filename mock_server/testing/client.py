"""``ControlClient``: the sandbox's control API (``/_mock/``) from any Python code, stdlib only."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Collection
from pathlib import Path
from typing import Any

# mock_server.domain.tenancy.HEADER, not imported: that module pulls in the whole sandbox and this one stays light.
NAMESPACE_HEADER = "X-Mock-Namespace"
# Short against a sign's hundred-odd milliseconds; each poll is one cheap control call.
POLL_INTERVAL_S = 0.05


class ControlError(Exception):
    """The control API refused a call: its HTTP status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class WaitTimeout(AssertionError):
    """What a test waited for did not happen in time: what was seen instead.

    An ``AssertionError`` rather than a :class:`ControlError`: every call succeeded, the expectation failed.
    """


class ControlClient:
    """Read OTPs, SMS and webhooks, load scenarios, move the clock, reset: synchronous calls.

    ``namespace`` scopes every call to one ``X-Mock-Namespace`` (:attr:`headers` carries it, for the
    client under test to send too); ``admin_token`` is the sandbox's ``--admin-token``.
    """

    def __init__(self, base_url: str, namespace: str | None = None, admin_token: str | None = None,
                 timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.namespace = namespace
        self.timeout = timeout
        self.headers: dict[str, str] = {NAMESPACE_HEADER: namespace} if namespace else {}
        # Kept out of ``headers``: those go to the client under test, the token must not.
        self._admin = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}

    def call(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None) -> Any:
        """One call to ``path``; the decoded JSON (or text) answer. Raises :class:`ControlError`."""
        headers = {**self.headers, **self._admin}
        if content_type:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(self.base_url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw, kind = response.read(), response.headers.get_content_type()
        except urllib.error.HTTPError as refused:
            raw = refused.read()
            try:
                message = json.loads(raw).get("error", raw.decode(errors="replace"))
            except (ValueError, AttributeError):
                message = raw.decode(errors="replace")
            raise ControlError(refused.code, str(message)) from None
        return json.loads(raw) if kind == "application/json" else raw.decode()

    def _json(self, method: str, path: str, body: dict[str, Any]) -> Any:
        return self.call(method, path, json.dumps(body).encode(), "application/json")

    def health(self) -> dict[str, Any]:
        """Status, version, namespace, seed, request count and clock reading."""
        return self.call("GET", "/_mock/health")

    def reset(self) -> None:
        """Back to the start state (this namespace only, when the client has one)."""
        self.call("POST", "/_mock/reset")

    def delete_namespace(self, namespace: str | None = None) -> int:
        """Delete ``namespace`` (the client's own when None) with all it holds; how many requests it held."""
        name = namespace or self.namespace
        if not name:
            raise ControlError(400, "the default namespace cannot be deleted: reset it instead")
        return self.call("DELETE", f"/_mock/namespaces/{urllib.parse.quote(name, safe='')}")["requests"]

    def requests(self) -> list[dict[str, Any]]:
        """A summary of every request: pk, status, signer, creation time, document count."""
        return self.call("GET", "/_mock/requests")["requests"]

    def request(self, pk: int) -> dict[str, Any]:
        """A request as the control API shows it: detail, status history, documents."""
        return self.call("GET", f"/_mock/requests/{pk}")

    def sms(self, pk: int | None = None) -> list[dict[str, Any]]:
        """The SMS outbox, or the messages of request ``pk``, oldest first."""
        query = f"?request={pk}" if pk is not None else ""
        return self.call("GET", f"/_mock/sms{query}")["messages"]

    def latest_otp(self, pk: int, timeout: float = 0.0) -> str:
        """The code of the newest SMS sent for request ``pk``, waiting up to ``timeout`` seconds for one.

        Raises :class:`ControlError` (404) at once with no ``timeout``, :class:`WaitTimeout` after one.
        """
        deadline = time.monotonic() + timeout
        while not (messages := self.sms(pk)):
            if timeout <= 0:
                raise ControlError(404, f"no SMS was sent for request {pk}{self._where()}: call the OTP endpoint first")
            if not self._pause_until(deadline):
                raise WaitTimeout(f"no SMS for request {pk}{self._where()} within {timeout} s")
        return messages[-1]["otp"]

    def wait_for_status(self, pk: int, status: str | Collection[str], timeout: float = 10.0) -> dict[str, Any]:
        """Poll request ``pk`` until its status is ``status`` (or one of them); the request, as :meth:`request`.

        Raises :class:`WaitTimeout` with the status and history seen when ``timeout`` seconds pass first.
        """
        wanted = {status} if isinstance(status, str) else set(status)
        deadline = time.monotonic() + timeout
        found = self.request(pk)
        first = found["status"]
        while found["status"] not in wanted:
            if not self._pause_until(deadline):
                moved = "stayed" if found["status"] == first else "ended at"
                history = " -> ".join(change["status"] for change in found["history"])
                raise WaitTimeout(f"request {pk}{self._where()} did not reach {' or '.join(sorted(wanted))} within "
                                  f"{timeout} s: its status {moved} {found['status']} (history: {history})")
            found = self.request(pk)
        return found

    @staticmethod
    def _pause_until(deadline: float) -> bool:
        # False once the deadline has passed; the last pause is cut short so that one more poll lands on it.
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(POLL_INTERVAL_S, left))
        return True

    def _where(self) -> str:
        # A client under test that does not send ``headers`` works in another namespace: say which one counts.
        return f" (namespace {self.namespace})" if self.namespace else ""

    def webhooks(self, pk: int | None = None) -> list[dict[str, Any]]:
        """The webhook log with every attempt, or the events of request ``pk``."""
        query = f"?request={pk}" if pk is not None else ""
        return self.call("GET", f"/_mock/webhooks{query}")["webhooks"]

    def load_scenario(self, scenario: str | Path | dict[str, Any]) -> dict[str, Any]:
        """Load a scenario: a dict, or the path of a YAML or JSON file. Returns the loaded scenario."""
        if isinstance(scenario, dict):
            return self._json("POST", "/_mock/scenarios", scenario)
        try:
            return self.call("POST", "/_mock/scenarios", Path(scenario).read_bytes(), "application/yaml")
        except ControlError as refused:
            # The sandbox only saw a body: name the file the caller has to fix.
            raise ControlError(refused.status, f"{scenario}: {refused.message}") from None

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        """Move the sandbox clock ``seconds`` ahead (negative: back); its new reading."""
        return self._json("POST", "/_mock/clock", {"advance_s": seconds})

    def ca_pem(self) -> str:
        """The sandbox's root, issuing CA and TSA certificates (PEM), to trust its signatures."""
        return self.call("GET", "/_mock/pki/ca.pem")

    def journal(self, **conditions: Any) -> list[dict[str, Any]]:
        """The calls to either API family journaled in this namespace, oldest first, that meet every
        condition: ``method``, ``path`` (a glob: ``/api/v1/sign/*``), ``operation``, ``status``,
        ``pk``, ``since`` (an entry id or ISO time), ``body`` (field -> ``present``, ``absent`` or a
        regular expression)."""
        return self._json("POST", "/_mock/journal/find", _conditions(conditions))["entries"]

    def count_calls(self, **conditions: Any) -> int:
        """How many journaled calls meet the conditions (as :meth:`journal` takes them)."""
        return self._json("POST", "/_mock/journal/count", _conditions(conditions))["count"]

    def assert_called(self, *, count: int | None = None, at_least: int | None = None, at_most: int | None = None,
                      **conditions: Any) -> dict[str, Any]:
        """Raise :class:`JournalMismatch` unless the calls meeting the conditions number ``count``
        (or at least ``at_least``, at most ``at_most``; at least one when none is given)::

            oneshot_mock.assert_called(operation="sign", pk=pk, body={"secret": "present"}, count=1)
        """
        wanted = {"count": count, "at_least": at_least, "at_most": at_most}
        verdict = self._json("POST", "/_mock/journal/verify", {**_conditions(conditions), **_conditions(wanted)})
        if not verdict["verified"]:
            raise JournalMismatch(verdict["message"] + self._where())
        return verdict


class JournalMismatch(AssertionError):
    """The journal does not hold the calls a test expected: what it expected and what it saw."""


def _conditions(given: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in given.items() if value is not None}
