"""What a client of each API family does, step by step, as the vendor's workflows document it; every
answer kept as an :class:`Observation` to compare.

A flow goes on as long as the answers let it (a pk to sign, a document uid to fetch); a step that
answers what a client would not go on from ends the flow there, and the comparison says so.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import aiohttp

LEGACY = "/api/v1"
NEW = "/oneshot/api/v1"
# The signer of every flow: the vendor's sandbox sends the OTP to this phone (or the prompt asks for it).
SIGNER = {
    "given_name": "Conformance", "surname_1": "Check", "surname_2": "Run", "id_document_type": "IDC",
    "id_document_country": "ES", "serial_number": "12345678Z", "email": "conformance@example.com",
    "mobile_phone_number": "+34600000000", "registration_authority": "9999", "profile": "PFnubeNC",
    "env": "sandbox",
}
_ASYNC_POLLS = 100
_ASYNC_POLL_S = 0.1


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
    observations: list[Observation] = field(default_factory=list)

    async def call(self, flow: str, step: str, method: str, path: str, values: Mapping[str, Any] | None = None,
                   expect: tuple[int, ...] = (200,), **kwargs: Any) -> Observation:
        """One call of ``flow``; :class:`FlowStopped` unless it answers one of ``expect``."""
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
        seen = Observation(flow, step, method, path, status, media_type, body, len(raw))
        self.observations.append(seen)
        if status not in expect:
            seen.problem = f"HTTP {status}: the flow cannot go on"
            raise FlowStopped(seen.problem)
        return seen

    def note(self, flow: str, step: str, seen: Any) -> None:
        """Keep ``seen`` (what several calls showed: a sequence of statuses) as a step of its own."""
        self.observations.append(Observation(flow, step, "", "", 200, "application/json", seen))


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
    content = {"messageDigest": base64.b64encode(digest).decode(), "digestAlgorithm": "sha256",
               "addAuthAttribute": 1, "addSigningTime": 1, "otherAuthAttributes": []}
    return ("hashfile", "digest.json", "application/json", json.dumps(content).encode())


# The legacy family ---------------------------------------------------------------------------------


async def legacy_read_only(t: Target) -> None:
    """The calls that change nothing (token listings are left out: their answers are credentials)."""
    await t.call("read-only", "hello", "GET", f"{LEGACY}/hello")
    await t.call("read-only", "version", "GET", f"{LEGACY}/version")
    await t.call("read-only", "list images", "GET", f"{LEGACY}/images")


async def _legacy_create(t: Target, flow: str, **extra: str) -> int:
    created = await t.call(flow, "create request", "POST", f"{LEGACY}/request", expect=(200, 201),
                           data=_form({**t.credentials, **SIGNER, **extra}))
    pk = created.body.get("details") if isinstance(created.body, dict) else None
    if not isinstance(pk, int):
        raise FlowStopped("create answered no request pk")
    return pk


async def _legacy_status(t: Target, flow: str, step: str, pk: int, seen: list[str]) -> None:
    answer = await t.call(flow, step, "GET", f"{LEGACY}/request/{{pk}}", {"pk": pk})
    details = answer.body.get("details") if isinstance(answer.body, dict) else None
    seen.append(details.get("status") if isinstance(details, dict) else None)


async def _legacy_upload(t: Target, flow: str, pk: int, part: tuple[str, str, str, bytes]) -> str:
    uploaded = await t.call(flow, "upload document", "POST", f"{LEGACY}/document/{{pk}}", {"pk": pk},
                            data=_form({}, (part,)))
    uid = uploaded.body.get("details") if isinstance(uploaded.body, dict) else None
    if not isinstance(uid, str):
        raise FlowStopped("the upload answered no document uid")
    return uid


async def _legacy_otp_and_sign(t: Target, flow: str, pk: int) -> None:
    await t.call(flow, "generate OTP", "POST", f"{LEGACY}/otp/{{pk}}", {"pk": pk})
    await t.call(flow, "sign", "POST", f"{LEGACY}/sign/{{pk}}", {"pk": pk}, json={"secret": await t.otp(t, pk)})


async def legacy_classic(t: Target) -> None:
    """Create, upload a PDF, fetch the contract, OTP, sign, fetch the signed PDF, delete the documents."""
    flow, statuses = "classic", []
    pk = await _legacy_create(t, flow)
    await _legacy_status(t, flow, "request after create", pk, statuses)
    uid = await _legacy_upload(t, flow, pk, _pdf())
    await t.call(flow, "contract", "GET", f"{LEGACY}/document/{{pk}}/contract", {"pk": pk})
    await _legacy_otp_and_sign(t, flow, pk)
    await _legacy_status(t, flow, "request after sign", pk, statuses)
    t.note(flow, "status sequence", statuses)
    await t.call(flow, "signed document", "GET", f"{LEGACY}/document/{{pk}}/signed/{{uid}}", {"pk": pk, "uid": uid})
    await t.call(flow, "list documents", "GET", f"{LEGACY}/documents/{{pk}}", {"pk": pk})
    await t.call(flow, "delete documents", "DELETE", f"{LEGACY}/documents/{{pk}}", {"pk": pk})


async def legacy_hash(t: Target) -> None:
    """The classic flow with a hash file: the signed result is a P7M."""
    flow, statuses = "hash", []
    pk = await _legacy_create(t, flow)
    uid = await _legacy_upload(t, flow, pk, _hash_file())
    await _legacy_otp_and_sign(t, flow, pk)
    await _legacy_status(t, flow, "request after sign", pk, statuses)
    t.note(flow, "status sequence", statuses)
    await t.call(flow, "signed P7M", "GET", f"{LEGACY}/document/{{pk}}/signed/{{uid}}", {"pk": pk, "uid": uid})
    await t.call(flow, "delete documents", "DELETE", f"{LEGACY}/documents/{{pk}}", {"pk": pk})


async def legacy_async(t: Target) -> None:
    """Created with ``useasync`` and a callback: sign answers at once, the status is polled until signed."""
    flow = "async"
    if t.callback is None:
        raise FlowStopped("no callback this target can reach")
    pk = await _legacy_create(t, flow, useasync="true", callback=t.callback)
    uid = await _legacy_upload(t, flow, pk, _pdf())
    await _legacy_otp_and_sign(t, flow, pk)
    for poll in range(_ASYNC_POLLS):
        answer = await t.call(flow, "async status", "GET", f"{LEGACY}/async/status/{{pk}}", {"pk": pk})
        details = answer.body.get("details") if isinstance(answer.body, dict) else None
        if details not in ("pending", "signing") or poll == _ASYNC_POLLS - 1:
            break
        # What a poll shows while the signature is made is timing, not conformance: the last one is kept.
        t.observations.pop()
        await asyncio.sleep(_ASYNC_POLL_S)
    await t.call(flow, "signed document", "GET", f"{LEGACY}/document/{{pk}}/signed/{{uid}}", {"pk": pk, "uid": uid})
    await t.call(flow, "delete documents", "DELETE", f"{LEGACY}/documents/{{pk}}", {"pk": pk})


# The newer family ----------------------------------------------------------------------------------


async def new_read_only(t: Target) -> None:
    """The calls that change nothing (token listings are left out: their answers are credentials)."""
    await t.call("read-only", "list images", "GET", f"{NEW}/images")


async def new_classic(t: Target) -> None:
    """Create, upload, contract, OTP, sign, status, signed PDF, delete, through ``/oneshot/api/v1``."""
    await _new_flow(t, "classic", _pdf(), {})


async def new_hash(t: Target) -> None:
    """The same with a hash file: the signed result is a P7M."""
    await _new_flow(t, "hash", _hash_file(), {})


async def new_async(t: Target) -> None:
    """Created with ``asyncmode`` and a callback: sign answers at once, the status is polled until ISSUED."""
    if t.callback is None:
        raise FlowStopped("no callback this target can reach")
    await _new_flow(t, "async", _pdf(), {"asyncmode": "true", "callback": t.callback})


async def _new_flow(t: Target, flow: str, part: tuple[str, str, str, bytes], extra: Mapping[str, str]) -> None:
    statuses: list[Any] = []
    created = await t.call(flow, "create", "POST", f"{NEW}/create", expect=(200, 201),
                           data=_form({**t.credentials, **SIGNER, **extra}))
    details = created.body.get("details") if isinstance(created.body, dict) else None
    pk = details.get("request_pk") if isinstance(details, dict) else None
    if not isinstance(pk, int):
        raise FlowStopped("create answered no request_pk")
    values: dict[str, Any] = {"pk": pk}

    async def status(step: str) -> Any:
        answer = await t.call(flow, step, "GET", f"{NEW}/request/{{pk}}/status", values)
        found = answer.body.get("details") if isinstance(answer.body, dict) else None
        return found.get("status") if isinstance(found, dict) else found

    statuses.append(await status("status after create"))
    uploaded = await t.call(flow, "upload document", "POST", f"{NEW}/document/{{pk}}", values, data=_form({}, (part,)))
    detail = uploaded.body.get("detail") if isinstance(uploaded.body, dict) else None
    values["uid"] = detail.get("uid") if isinstance(detail, dict) else None
    if not isinstance(values["uid"], str):
        raise FlowStopped("the upload answered no document uid")
    if part[0] == "file":
        await t.call(flow, "contract", "GET", f"{NEW}/contract/{{pk}}", values)
    await t.call(flow, "generate OTP", "POST", f"{NEW}/otp/{{pk}}", values)
    await t.call(flow, "sign", "POST", f"{NEW}/sign/{{pk}}", values, json={"secret": await t.otp(t, pk)})
    for poll in range(_ASYNC_POLLS):
        found = await status("status after sign")
        if found != "ENROLLREADY" or poll == _ASYNC_POLLS - 1:
            break
        t.observations.pop()  # still signing (an asynchronous request): timing, not conformance
        await asyncio.sleep(_ASYNC_POLL_S)
    statuses.append(found)
    t.note(flow, "status sequence", statuses)
    await t.call(flow, "signed document", "GET", f"{NEW}/document/{{pk}}/{{uid}}?document_type=signed", values)
    await t.call(flow, "delete documents", "DELETE", f"{NEW}/document/{{pk}}", values)


FLOWS: dict[str, tuple[Callable[[Target], Awaitable[None]], ...]] = {
    "legacy": (legacy_read_only, legacy_classic, legacy_hash, legacy_async),
    "new": (new_read_only, new_classic, new_hash, new_async),
}
