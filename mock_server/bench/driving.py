"""Running flows from concurrent clients, and the figures of a phase."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from typing import Any

import aiohttp

from mock_server.bench.flows import SLOW_CALL_MS, CallFailed, Flow, Recorder
from mock_server.bench.inputs import Draws


async def drive(base: str, flow: Flow, clients: int, seconds: float, draws: Draws, phase: str,
                limit: int | None = None, rec: Recorder | None = None) -> tuple[Recorder, float]:
    """``clients`` concurrent loops of ``flow`` against ``base`` for ``seconds``, or until ``limit``
    flows have started, recorded in ``rec`` (or a new recorder); the ``i``-th flow started uses
    ``draws.flow(phase, i)``."""
    rec = rec if rec is not None else Recorder()
    deadline = time.monotonic() + seconds
    indexes = itertools.count()

    def next_flow() -> int | None:
        index = next(indexes)
        done = index >= limit if limit is not None else time.monotonic() >= deadline
        return None if done else index

    async def client(session: aiohttp.ClientSession) -> None:
        while (index := next_flow()) is not None:
            draw = draws.flow(phase, index)
            try:
                await flow(session, base, draw, rec)
                rec.flows += 1
            except (CallFailed, TimeoutError, aiohttp.ClientError, ValueError, KeyError) as error:
                rec.failed(error, draw)

    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.monotonic()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        return rec, time.monotonic() - started


def summary(rec: Recorder, seconds: float, clients: int) -> dict[str, Any]:
    """The figures of one phase as a JSON-ready dict."""
    signs = rec.latencies.get("sign", [])
    return {
        "clients": clients,
        "seconds": round(seconds, 2),
        "flows": rec.flows,
        "errors": rec.errors,
        "first_error": rec.first_error,
        "flows_per_s": round(rec.flows / seconds, 1),
        "endpoints": {name: percentiles(values) for name, values in sorted(rec.latencies.items())},
        "sign_max_ms": round(max(signs), 1) if signs else None,
        "signs_over_1s": sum(ms >= SLOW_CALL_MS for ms in signs),
        "failed_flows": rec.failures,
        "slow_calls": rec.slow_calls,
        "slowest_calls": rec.slowest(),
    }


def percentiles(values: list[float]) -> dict[str, float]:
    """Count, p50, p95, p99 and max of latencies in ms."""
    ordered = sorted(values)

    def at(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 1)

    return {"count": len(values), "p50_ms": round(statistics.median(ordered), 1), "p95_ms": at(0.95),
            "p99_ms": at(0.99), "max_ms": round(ordered[-1], 1)}
