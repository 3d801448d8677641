"""The benchmark's phases, the targets they are held to, and the report."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

from mock_server.bench import servers
from mock_server.bench.flows import (
    BROWSING_PAUSE_S,
    CallFailed,
    Flow,
    Recorder,
    async_flow,
    browsing_calls,
    classic_flow,
    hash_flow,
    hello,
)
from mock_server.loop import event_loop_factory

BROWSING_CLIENTS = 64
MEMORY_FLOWS = 5000
_HELLO_S = 4.0
_HELLO_ROUNDS = 4
_HELLO_WARM_UP_S = 0.5
_WARM_UP_S = 3.0
_TARGETS = {
    "classic_flows_per_s": (">=", 50.0),
    "hash_flows_per_s": (">=", 200.0),
    "mixed_non_signing_p99_ms": ("<", 25.0),
    "hello_ratio": (">=", round(1 / 1.3, 3)),
    "rss_growth_mb": ("<", 50.0),
}
_counter = itertools.count()


async def drive(base: str, flow: Flow, clients: int, seconds: float, think: float = 0.0,
                limit: int | None = None) -> tuple[Recorder, float]:
    """``clients`` concurrent loops of ``flow`` against ``base`` for ``seconds``, or until ``limit``
    flows have started."""
    rec = Recorder()
    deadline = time.monotonic() + seconds
    started_flows = itertools.count(1)

    def more() -> bool:
        return next(started_flows) <= limit if limit is not None else time.monotonic() < deadline

    async def client(session: aiohttp.ClientSession) -> None:
        while more():
            try:
                await flow(session, base, next(_counter), rec)
                rec.flows += 1
            except (CallFailed, TimeoutError, aiohttp.ClientError, ValueError, KeyError) as error:
                rec.failed(error)
            if think:
                await asyncio.sleep(think)

    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.monotonic()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        return rec, time.monotonic() - started


def summary(rec: Recorder, seconds: float, clients: int) -> dict[str, Any]:
    """The figures of one phase as a JSON-ready dict."""
    return {
        "clients": clients,
        "seconds": round(seconds, 2),
        "flows": rec.flows,
        "errors": rec.errors,
        "first_error": rec.first_error,
        "flows_per_s": round(rec.flows / seconds, 1),
        "endpoints": {name: _percentiles(values) for name, values in sorted(rec.latencies.items())},
    }


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))], 1)

    return {"count": len(values), "p50_ms": round(statistics.median(ordered), 1), "p95_ms": at(0.95),
            "p99_ms": at(0.99)}


async def hello_phase(base: str, clients: int, length: float) -> dict[str, Any]:
    """The sandbox's hello throughput against the bare aiohttp baseline's, ``length`` seconds each."""
    # In alternating rounds: one run after the other, the machine's drift moved the ratio by 20 %.
    calls, seconds, errors = {"sandbox": 0, "bare": 0}, {"sandbox": 0.0, "bare": 0.0}, 0
    with servers.bare_hello() as bare:
        for url in (bare.url, base):  # first connections, first requests: not measured
            await drive(url, hello, clients, _HELLO_WARM_UP_S)
        for _ in range(_HELLO_ROUNDS):
            for name, url in (("bare", bare.url), ("sandbox", base)):
                rec, elapsed = await drive(url, hello, clients, length / _HELLO_ROUNDS)
                calls[name] += rec.flows
                seconds[name] += elapsed
                errors += rec.errors
    rate, bare_rate = calls["sandbox"] / seconds["sandbox"], calls["bare"] / seconds["bare"]
    return {"clients": clients, "sandbox_per_s": round(rate), "bare_aiohttp_per_s": round(bare_rate),
            "errors": errors, "ratio": round(rate / bare_rate, 3)}


async def mixed_phase(base: str, clients: int, seconds: float) -> dict[str, Any]:
    """Paced non-signing clients while ``clients`` classic flows keep the signing workers busy."""
    (browsing, browse_s), (signing, sign_s) = await asyncio.gather(
        drive(base, browsing_calls, BROWSING_CLIENTS, seconds),
        drive(base, classic_flow, clients, seconds),
    )
    non_signing = [v for name, values in browsing.latencies.items() for v in values]
    return {
        "non_signing": summary(browsing, browse_s, BROWSING_CLIENTS),
        "pause_s": BROWSING_PAUSE_S,
        "calls_per_s": round(len(non_signing) / browse_s),
        "p99_ms": _percentiles(non_signing)["p99_ms"],
        "signing_load": summary(signing, sign_s, clients),
    }


async def memory_phase(base: str, pid: int | None, clients: int, total: int) -> dict[str, Any]:
    """RSS before and after ``total`` more flows (half classic, half hash; each deletes its documents)."""
    before = servers.rss_mb(pid) if pid else None
    flows = errors = 0
    started = time.monotonic()
    for flow, count in ((classic_flow, total // 2), (hash_flow, total - total // 2)):
        rec, _ = await drive(base, flow, clients, 0, limit=count)
        flows, errors = flows + rec.flows, errors + rec.errors
    after = servers.rss_mb(pid) if pid else None
    return {
        "flows": flows, "errors": errors, "seconds": round(time.monotonic() - started, 1),
        "documents": "deleted by every flow",
        "before": before, "after": after,
        "growth_mb": round(after["total_mb"] - before["total_mb"], 1) if before and after else None,
    }


async def benchmark(base: str, pid: int | None, clients: int, seconds: float,
                    memory_flows: int = MEMORY_FLOWS) -> dict[str, Any]:
    """Every phase against the sandbox at ``base`` (process ``pid``, if local)."""
    at_start = servers.rss_mb(pid) if pid else None
    hello_ = await hello_phase(base, clients, min(_HELLO_S, seconds))
    report: dict[str, Any] = {"cores": os.cpu_count(), "hello": hello_}
    for flow in (classic_flow, hash_flow):  # starts the signing workers, fills allocator pools
        await drive(base, flow, clients, min(_WARM_UP_S, seconds))
    for name, flow, length in (("classic", classic_flow, seconds), ("hash", hash_flow, seconds),
                               ("async", async_flow, seconds * 2 / 3)):
        rec, elapsed = await drive(base, flow, clients, length)
        report[name] = summary(rec, elapsed, clients)
    report["mixed"] = await mixed_phase(base, clients, seconds)
    report["memory"] = {"at_start": at_start, **await memory_phase(base, pid, clients, memory_flows)}
    report["targets"] = _judge(report)
    return report


def _judge(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    values = {
        "classic_flows_per_s": report["classic"]["flows_per_s"],
        "hash_flows_per_s": report["hash"]["flows_per_s"],
        "mixed_non_signing_p99_ms": report["mixed"]["p99_ms"],
        "hello_ratio": report["hello"]["ratio"],
        "rss_growth_mb": report["memory"]["growth_mb"],
    }
    judged = {}
    for name, (relation, target) in _TARGETS.items():
        value = values[name]
        met = None if value is None else (value >= target if relation == ">=" else value < target)
        judged[name] = {"value": value, "target": f"{relation} {target}", "met": met}
    return judged


def render(report: dict[str, Any]) -> str:
    """The report as a human-readable table."""
    lines = [f"oneshot-mock benchmark on {report['cores']} cores"]
    hello_ = report["hello"]
    lines.append(f"hello: sandbox {hello_['sandbox_per_s']}/s, bare aiohttp {hello_['bare_aiohttp_per_s']}/s, "
                 f"ratio {hello_['ratio']} ({hello_['clients']} clients)")
    for name in ("classic", "hash", "async"):
        lines += _phase_lines(name, report[name])
    mixed = report["mixed"]
    lines += _phase_lines(f"mixed: non-signing calls ({mixed['pause_s']} s between calls), "
                          f"{mixed['calls_per_s']} calls/s, p99 {mixed['p99_ms']} ms", mixed["non_signing"])
    lines += _phase_lines("mixed: signing load", mixed["signing_load"])
    memory = report["memory"]
    lines.append(f"memory: {memory['at_start']} at start; {memory['before']} -> {memory['after']} over "
                 f"{memory['flows']} more flows in {memory['seconds']} s (growth {memory['growth_mb']} MB)")
    lines.append("targets:")
    for name, judged in report["targets"].items():
        verdict = {True: "met", False: "MISSED", None: "not measured"}[judged["met"]]
        lines.append(f"  {name:26} {judged['value']!s:>8} {judged['target']:>10}  {verdict}")
    return "\n".join(lines)


def _phase_lines(title: str, phase: dict[str, Any]) -> list[str]:
    lines = [f"{title}: {phase['flows']} in {phase['seconds']} s with {phase['clients']} clients = "
             f"{phase['flows_per_s']}/s, {phase['errors']} errors"
             + (f" (first: {phase['first_error']})" if phase["first_error"] else "")]
    lines.append(f"  {'endpoint':24} {'count':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for endpoint, row in phase["endpoints"].items():
        lines.append(f"  {endpoint:24} {row['count']:>7} {row['p50_ms']:>8} {row['p95_ms']:>8} {row['p99_ms']:>8}")
    return lines


@contextlib.contextmanager
def _target(url: str | None, workers: int | None, data_dir: Path | None) -> Iterator[servers.Served]:
    if url:
        yield servers.Served(url.rstrip("/"), None)
        return
    with servers.sandbox(workers, data_dir) as served:
        yield served


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mock_server.bench", description=__doc__)
    parser.add_argument("--url", help="benchmark a running sandbox instead of starting one (no memory figures)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients of the flow phases")
    parser.add_argument("--duration", type=float, default=12.0, help="seconds of each flow phase (default 12)")
    parser.add_argument("--workers", type=int, default=None, help="signing workers of the started sandbox")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="run the started sandbox with --data-dir (measures persistence's cost)")
    parser.add_argument("--memory-flows", type=int, default=MEMORY_FLOWS,
                        help=f"flows between the two memory readings (default {MEMORY_FLOWS})")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    with _target(args.url, args.workers, args.data_dir) as served, \
            asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        report = runner.run(benchmark(served.url, served.pid, args.clients, args.duration, args.memory_flows))
    print(json.dumps(report, indent=2) if args.json else render(report))
