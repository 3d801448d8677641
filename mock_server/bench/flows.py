"""What one benchmark client does: complete flows, and the calls of a client that signs nothing."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from mock_server.contract import ContractFacts, render_contract

TOKEN = "6d1cae4d55be4cdf9cac50ee36f73406"
PDF = render_contract(ContractFacts(0, "BENCH", "IDC ES 0", "b@example.com", "+34600000000", "P", "9999", "-"))
_ASYNC_POLL_S = 0.02
# Between two calls of a client of the mixed phase: with no pause at all, 64 clients measure how
# long the queue is, not how long a call takes.
BROWSING_PAUSE_S = 0.1

Flow = Callable[[aiohttp.ClientSession, str, int, "Recorder"], Awaitable[None]]


class CallFailed(Exception):
    """An answer the flow did not expect."""


class Recorder:
    """Latencies per endpoint, and counts of flows and errors."""

    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.flows = 0
        self.errors = 0
        self.first_error: str | None = None

    async def call(self, session: aiohttp.ClientSession, endpoint: str, method: str, url: str,
                   **kwargs: Any) -> bytes:
        """One HTTP call, timed under ``endpoint``; a 4xx or 5xx raises :class:`CallFailed`."""
        started = time.perf_counter()
        async with session.request(method, url, **kwargs) as response:
            body = await response.read()
        self.latencies[endpoint].append((time.perf_counter() - started) * 1000)
        if response.status >= 400:
            raise CallFailed(f"{endpoint}: HTTP {response.status} {body[:200]!r}")
        return body

    def failed(self, error: Exception) -> None:
        self.errors += 1
        self.first_error = self.first_error or f"{type(error).__name__}: {error}"


async def classic_flow(session: aiohttp.ClientSession, base: str, index: int, rec: Recorder) -> None:
    """Create, upload a 1-page PDF, OTP, sign (PAdES), download, delete the documents."""
    await _flow(session, base, index, rec, _pdf_part(), {})


async def hash_flow(session: aiohttp.ClientSession, base: str, index: int, rec: Recorder) -> None:
    """The same with one sha256 digest: the result is a P7M."""
    await _flow(session, base, index, rec, _hash_part(index), {})


async def async_flow(session: aiohttp.ClientSession, base: str, index: int, rec: Recorder) -> None:
    """A classic flow created with ``useasync``: sign answers at once, the client polls the status."""
    await _flow(session, base, index, rec, _pdf_part(), {"useasync": "true"})


async def _flow(session: aiohttp.ClientSession, base: str, index: int, rec: Recorder,
                upload: aiohttp.FormData, extra: dict[str, str]) -> None:
    pk = await create_request(session, base, index, rec, extra)
    body = await rec.call(session, "upload_document", "POST", f"{base}/api/v1/document/{pk}", data=upload)
    uid = json.loads(body)["details"]
    await rec.call(session, "generate_otp", "POST", f"{base}/api/v1/otp/{pk}")
    outbox = json.loads(await rec.call(session, "_mock_sms", "GET", f"{base}/_mock/sms?request={pk}"))
    secret = outbox["messages"][-1]["otp"]
    await rec.call(session, "sign", "POST", f"{base}/api/v1/sign/{pk}", json={"secret": secret})
    if extra.get("useasync"):
        await _until_signed(session, base, pk, rec)
    await rec.call(session, "retrieve_document", "GET", f"{base}/api/v1/document/{pk}/signed/{uid}")
    await rec.call(session, "delete_all_documents", "DELETE", f"{base}/api/v1/documents/{pk}")


async def create_request(session: aiohttp.ClientSession, base: str, index: int, rec: Recorder,
                         extra: dict[str, str] | None = None) -> str:
    form = aiohttp.FormData({
        "token": TOKEN, "given_name": f"Bench{index}", "surname_1": "Client", "serial_number": f"{index:08d}B",
        "email": "bench@example.com", "mobile_phone_number": f"+346{index % 10**8:08d}", "env": "sandbox",
        **(extra or {}),
    })
    body = await rec.call(session, "create_request", "POST", f"{base}/api/v1/request", data=form)
    return str(json.loads(body)["details"])


async def _until_signed(session: aiohttp.ClientSession, base: str, pk: str, rec: Recorder) -> None:
    while True:
        body = await rec.call(session, "async_status", "GET", f"{base}/api/v1/async/status/{pk}")
        status = json.loads(body)["details"]
        if status == "signed":
            return
        if status not in ("signing", "approved"):
            raise CallFailed(f"async signing ended as {status!r}")
        await asyncio.sleep(_ASYNC_POLL_S)


async def browsing_calls(session: aiohttp.ClientSession, base: str, index: int, rec: Recorder) -> None:
    """What a client that signs nothing does, pausing about :data:`BROWSING_PAUSE_S` before each
    call as a test or a person reading the answer would: create a request, upload a PDF, read the
    request back, list its documents, ask for an OTP, say hello."""
    pauses = random.Random(index)  # independent clients do not move in lockstep
    await asyncio.sleep(pauses.uniform(0, BROWSING_PAUSE_S))
    pk = await create_request(session, base, index, rec)
    calls: list[tuple[str, str, str, dict[str, Any]]] = [
        ("upload_document", "POST", f"/api/v1/document/{pk}", {"data": _pdf_part()}),
        ("get_request", "GET", f"/api/v1/request/{pk}", {}),
        ("list_documents", "GET", f"/api/v1/documents/{pk}", {}),
        ("generate_otp", "POST", f"/api/v1/otp/{pk}", {}),
        ("hello", "GET", "/api/v1/hello", {}),
    ]
    for endpoint, method, path, options in calls:
        await asyncio.sleep(pauses.uniform(0.5, 1.5) * BROWSING_PAUSE_S)
        await rec.call(session, endpoint, method, base + path, **options)


async def hello(session: aiohttp.ClientSession, base: str, index: int, rec: Recorder) -> None:
    """One ``GET /api/v1/hello``: the sandbox and the bare baseline both answer it."""
    await rec.call(session, "hello", "GET", f"{base}/api/v1/hello")


def _pdf_part() -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", PDF, filename="bench.pdf", content_type="application/pdf")
    return form


def _hash_part(index: int) -> aiohttp.FormData:
    digest = hashlib.sha256(f"bench document {index}".encode()).digest()
    hash_file = {"messageDigest": base64.b64encode(digest).decode(), "digestAlgorithm": "sha256",
                 "addAuthAttribute": 1, "addSigningTime": 1, "otherAuthAttributes": []}
    form = aiohttp.FormData()
    form.add_field("hashfile", json.dumps(hash_file).encode(), filename="digest.json",
                   content_type="application/json")
    return form
