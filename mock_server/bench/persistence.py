"""The persistence phase: a ``--data-dir`` sandbox of its own, loaded empty and with many stored
requests, then restarted on what it stored."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from mock_server.bench import servers
from mock_server.bench.driving import drive, percentiles, summary
from mock_server.bench.flows import Recorder, classic_flow, create_request, hello
from mock_server.bench.inputs import Draws

STORED_REQUESTS = 10_000
# Keeps every request: the store, not the retention, must stay fast as they pile up.
_SERVE_OPTIONS = ("--retain-requests", "none")
_HELLO_EVERY_S = 0.02


async def persistence_phase(draws: Draws, clients: int, seconds: float, stored: int) -> dict[str, Any]:
    """Classic flows/s and hello p50 with a data dir, empty and after ``stored`` more requests; the
    restart time and the size on disk then."""
    with tempfile.TemporaryDirectory(prefix="oneshot-bench-data-") as directory:
        data = Path(directory) / "data"
        with servers.sandbox(None, data, None, _SERVE_OPTIONS) as served:
            # Starts the signing workers, as the main run's warm-up does.
            await drive(served.url, classic_flow, clients, min(3.0, seconds), draws, "persist-warm-up")
            empty = await _loaded(served.url, draws, clients, seconds, "persist-empty")
            filled, fill_s = await drive(served.url, create_request, clients, 0, draws, "persist-fill", limit=stored)
            full = await _loaded(served.url, draws, clients, seconds, "persist-full")
            requests = _health(served.url)["requests"]
        started = time.monotonic()
        with servers.sandbox(None, data, None, _SERVE_OPTIONS) as served:
            restart_s = time.monotonic() - started
            restored = _health(served.url)["requests"]
        size = sum(path.stat().st_size for path in data.rglob("*") if path.is_file())
    return {
        "empty": empty,
        "fill": {"requests": filled.flows, "errors": filled.errors, "seconds": round(fill_s, 1)},
        "full": full,
        "stored_requests": requests,
        "restart_s": round(restart_s, 2),
        "restored_requests": restored,
        "size_on_disk_mb": round(size / 2**20, 1),
    }


async def _loaded(base: str, draws: Draws, clients: int, seconds: float, phase: str) -> dict[str, Any]:
    """Classic flows from ``clients`` clients, and a hello every :data:`_HELLO_EVERY_S` all along (as
    a health probe would: back to back, the hellos would take CPU from the flows being measured)."""
    greeting = Recorder()

    async def probe(session: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await hello(session, base, draws.flow(f"{phase}-hello", 0), greeting)
            await asyncio.sleep(_HELLO_EVERY_S)

    async with aiohttp.ClientSession() as session:
        (signing, elapsed), _ = await asyncio.gather(drive(base, classic_flow, clients, seconds, draws, phase),
                                                     probe(session))
    return {**summary(signing, elapsed, clients), "hello": percentiles(greeting.latencies["hello"])}


def _health(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(base + "/_mock/health", timeout=30) as answer:
        return json.loads(answer.read())
