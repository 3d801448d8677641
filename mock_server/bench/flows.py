"""What one benchmark client does: complete flows, and the calls of a client that signs nothing."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from mock_server.bench.inputs import FlowDraw
from mock_server.domain.hashfile import hash_file

TOKEN = "6d1cae4d55be4cdf9cac50ee36f73406"
_ASYNC_POLL_S = 0.02
# Between two calls of a client of the mixed phase: with no pause at all, 64 clients measure how
# long the queue is, not how long a call takes.
BROWSING_PAUSE_S = 0.1
# A call this slow is kept with the flow's identity and document, to be replayed.
SLOW_CALL_MS = 1000.0
_SLOWEST_KEPT = 10
_FAILURES_KEPT = 5

Flow = Callable[[aiohttp.ClientSession, str, FlowDraw, "Recorder"], Awaitable[None]]


class CallFailed(Exception):
    """An answer the flow did not expect."""


class Recorder:
    """Latencies per endpoint, counts of flows and errors, and the slowest calls with their flow."""

    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.flows = 0
        self.errors = 0
        self.first_error: str | None = None
        self.failures: list[dict[str, Any]] = []
        self.slow_calls = 0
        self._slowest: list[tuple[float, int, dict[str, Any]]] = []  # a min-heap of the slowest kept
        self._order = itertools.count()

    async def call(self, session: aiohttp.ClientSession, endpoint: str, method: str, url: str,
                   draw: FlowDraw | None = None, **kwargs: Any) -> bytes:
        """One HTTP call of ``draw``'s flow, timed under ``endpoint``; a 4xx or 5xx raises :class:`CallFailed`."""
        started = time.perf_counter()
        async with session.request(method, url, **kwargs) as response:
            body = await response.read()
        ms = (time.perf_counter() - started) * 1000
        self.latencies[endpoint].append(ms)
        if ms >= SLOW_CALL_MS:
            self._slow(endpoint, ms, draw)
        if response.status >= 400:
            raise CallFailed(f"{endpoint}: HTTP {response.status} {body[:200]!r}")
        return body

    def _slow(self, endpoint: str, ms: float, draw: FlowDraw | None) -> None:
        self.slow_calls += 1
        entry = {"endpoint": endpoint, "ms": round(ms, 1), **(draw.describe() if draw else {})}
        heapq.heappush(self._slowest, (ms, next(self._order), entry))
        if len(self._slowest) > _SLOWEST_KEPT:
            heapq.heappop(self._slowest)

    def slowest(self) -> list[dict[str, Any]]:
        """The slowest calls kept (at most 10), slowest first."""
        return [entry for _, _, entry in sorted(self._slowest, reverse=True)]

    def failed(self, error: Exception, draw: FlowDraw) -> None:
        """Count ``draw``'s flow that ended in ``error``; the first error, and the first few flows, are kept."""
        self.errors += 1
        message = f"{type(error).__name__}: {error}"
        self.first_error = self.first_error or message
        if len(self.failures) < _FAILURES_KEPT:
            self.failures.append({"error": message[:300], **draw.describe()})


async def classic_flow(session: aiohttp.ClientSession, base: str, draw: FlowDraw, rec: Recorder) -> None:
    """Create, upload the flow's PDF, OTP, sign (PAdES), download, delete the documents."""
    await _flow(session, base, draw, rec, _pdf_part(draw), {})


async def hash_flow(session: aiohttp.ClientSession, base: str, draw: FlowDraw, rec: Recorder) -> None:
    """The same with one sha256 digest: the result is a P7M."""
    await _flow(session, base, draw, rec, _hash_part(draw), {})


async def async_flow(session: aiohttp.ClientSession, base: str, draw: FlowDraw, rec: Recorder) -> None:
    """A classic flow created with ``useasync``: sign answers at once, the client polls the status."""
    await _flow(session, base, draw, rec, _pdf_part(draw), {"useasync": "true"})


async def _flow(session: aiohttp.ClientSession, base: str, draw: FlowDraw, rec: Recorder,
                upload: aiohttp.FormData, extra: dict[str, str]) -> None:
    pk = await create_request(session, base, draw, rec, extra)
    body = await rec.call(session, "upload_document", "POST", f"{base}/api/v1/document/{pk}", draw, data=upload)
    uid = json.loads(body)["details"]
    await rec.call(session, "generate_otp", "POST", f"{base}/api/v1/otp/{pk}", draw)
    outbox = json.loads(await rec.call(session, "_mock_sms", "GET", f"{base}/_mock/sms?request={pk}", draw))
    secret = outbox["messages"][-1]["otp"]
    await rec.call(session, "sign", "POST", f"{base}/api/v1/sign/{pk}", draw, json={"secret": secret})
    if extra.get("useasync"):
        await _until_signed(session, base, pk, draw, rec)
    await rec.call(session, "retrieve_document", "GET", f"{base}/api/v1/document/{pk}/signed/{uid}", draw)
    await rec.call(session, "delete_all_documents", "DELETE", f"{base}/api/v1/documents/{pk}", draw)


async def create_request(session: aiohttp.ClientSession, base: str, draw: FlowDraw, rec: Recorder,
                         extra: dict[str, str] | None = None) -> str:
    """Create a signature request for the flow's signer; its pk."""
    form = aiohttp.FormData({"token": TOKEN, **draw.identity, "env": "sandbox", **(extra or {})})
    body = await rec.call(session, "create_request", "POST", f"{base}/api/v1/request", draw, data=form)
    return str(json.loads(body)["details"])


async def _until_signed(session: aiohttp.ClientSession, base: str, pk: str, draw: FlowDraw, rec: Recorder) -> None:
    while True:
        body = await rec.call(session, "async_status", "GET", f"{base}/api/v1/async/status/{pk}", draw)
        status = json.loads(body)["details"]
        if status == "signed":
            return
        if status not in ("signing", "approved"):
            raise CallFailed(f"async signing ended as {status!r}")
        await asyncio.sleep(_ASYNC_POLL_S)


async def browsing_calls(session: aiohttp.ClientSession, base: str, draw: FlowDraw, rec: Recorder) -> None:
    """What a client that signs nothing does, pausing about :data:`BROWSING_PAUSE_S` before each
    call as a test or a person reading the answer would: create a request, upload a PDF, read the
    request back, list its documents, ask for an OTP, say hello."""
    pauses = draw.random  # independent clients do not move in lockstep
    await asyncio.sleep(pauses.uniform(0, BROWSING_PAUSE_S))
    pk = await create_request(session, base, draw, rec)
    calls: list[tuple[str, str, str, dict[str, Any]]] = [
        ("upload_document", "POST", f"/api/v1/document/{pk}", {"data": _pdf_part(draw)}),
        ("get_request", "GET", f"/api/v1/request/{pk}", {}),
        ("list_documents", "GET", f"/api/v1/documents/{pk}", {}),
        ("generate_otp", "POST", f"/api/v1/otp/{pk}", {}),
        ("hello", "GET", "/api/v1/hello", {}),
    ]
    for endpoint, method, path, options in calls:
        await asyncio.sleep(pauses.uniform(0.5, 1.5) * BROWSING_PAUSE_S)
        await rec.call(session, endpoint, method, base + path, draw, **options)


async def hello(session: aiohttp.ClientSession, base: str, draw: FlowDraw, rec: Recorder) -> None:
    """One ``GET /api/v1/hello``: the sandbox and the bare baseline both answer it."""
    await rec.call(session, "hello", "GET", f"{base}/api/v1/hello")


def _pdf_part(draw: FlowDraw) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", draw.document.pdf, filename="bench.pdf", content_type="application/pdf")
    return form


def _hash_part(draw: FlowDraw) -> aiohttp.FormData:
    form = aiohttp.FormData()
    # The digest of some document: any 32 bytes.
    form.add_field("hashfile", hash_file(draw.random.randbytes(32)), filename="digest.json",
                   content_type="application/json")
    return form
