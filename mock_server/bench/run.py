"""The benchmark's phases, the targets they are held to, and the report."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import operator
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mock_server.bench import servers
from mock_server.bench.driving import drive, percentiles, summary
from mock_server.bench.flows import (
    BROWSING_PAUSE_S,
    SLOW_CALL_MS,
    Recorder,
    async_flow,
    browsing_calls,
    classic_flow,
    hash_flow,
    hello,
)
from mock_server.bench.inputs import Draws
from mock_server.bench.persistence import STORED_REQUESTS, persistence_phase
from mock_server.bench.suite import xdist_phase
from mock_server.server.loop import event_loop_factory
from mock_server.server.workers import SIGNING_PRIORITIES

BROWSING_CLIENTS = 64
MEMORY_FLOWS = 30_000
SEQUENTIAL_FLOWS = 2000
NOISY_CLIENTS = 8
NOISY_NEIGHBOURS = 2
# Past the phase's length: in-flight flows finish under the same load; then the loops stop by themselves.
_NOISY_MARGIN_S = 20.0
_HELLO_S = 4.0
_HELLO_ROUNDS = 4
_HELLO_WARM_UP_S = 0.5
_WARM_UP_S = 3.0
_FAILURES_SHOWN = 10
_RELATIONS = {">=": operator.ge, "<": operator.lt, "<=": operator.le}
_TARGETS = {
    "classic_flows_per_s": (">=", 150.0),
    "hash_flows_per_s": (">=", 250.0),
    "hello_ratio": (">=", 0.85),
    "mixed_non_signing_p99_ms": ("<", 25.0),
    "rss_growth_mb": ("<", 50.0),
    "sequential_sign_max_ms": ("<", SLOW_CALL_MS),
    "noisy_sign_p99_ms": ("<", 1000.0),
    "noisy_sign_max_ms": ("<", 2000.0),
    "noisy_non_signing_p99_ms": ("<", 25.0),
    "xdist_ratio": ("<=", 1.2),
    "data_dir_ratio_empty": (">=", 0.8),
    "data_dir_ratio_full": (">=", 0.8),
    "data_dir_hello_p50_ms": ("<", 2.0),
    "data_dir_restart_s": ("<", 2.0),
}


async def hello_phase(base: str, draws: Draws, clients: int, length: float) -> dict[str, Any]:
    """The sandbox's hello throughput against the bare aiohttp baseline's, ``length`` seconds each."""
    # In alternating rounds: one run after the other, the machine's drift moved the ratio by 20 %.
    calls, seconds, errors = {"sandbox": 0, "bare": 0}, {"sandbox": 0.0, "bare": 0.0}, 0
    with servers.bare_hello() as bare:
        for url in (bare.url, base):  # first connections, first requests: not measured
            await drive(url, hello, clients, _HELLO_WARM_UP_S, draws, "hello")
        for _ in range(_HELLO_ROUNDS):
            for name, url in (("bare", bare.url), ("sandbox", base)):
                rec, elapsed = await drive(url, hello, clients, length / _HELLO_ROUNDS, draws, "hello")
                calls[name] += rec.flows
                seconds[name] += elapsed
                errors += rec.errors
    rate, bare_rate = calls["sandbox"] / seconds["sandbox"], calls["bare"] / seconds["bare"]
    return {"clients": clients, "sandbox_per_s": round(rate), "bare_aiohttp_per_s": round(bare_rate),
            "errors": errors, "ratio": round(rate / bare_rate, 3)}


async def sequential_phase(base: str, draws: Draws, flows: int) -> dict[str, Any]:
    """``flows`` classic flows one after the other from one client: every signature's own latency."""
    rec, elapsed = await drive(base, classic_flow, 1, 0, draws, "sequential", limit=flows)
    return summary(rec, elapsed, 1)


async def mixed_phase(base: str, draws: Draws, clients: int, seconds: float, phase: str = "mixed") -> dict[str, Any]:
    """Paced non-signing clients while ``clients`` classic flows keep the signing workers busy."""
    (browsing, browse_s), (signing, sign_s) = await asyncio.gather(
        drive(base, browsing_calls, BROWSING_CLIENTS, seconds, draws, f"{phase}-browsing"),
        drive(base, classic_flow, clients, seconds, draws, f"{phase}-signing"),
    )
    non_signing = [v for name, values in browsing.latencies.items() for v in values]
    return {
        "non_signing": summary(browsing, browse_s, BROWSING_CLIENTS),
        "pause_s": BROWSING_PAUSE_S,
        "calls_per_s": round(len(non_signing) / browse_s),
        "p99_ms": percentiles(non_signing)["p99_ms"],
        "signing_load": summary(signing, sign_s, clients),
    }


async def noisy_phase(base: str, draws: Draws, seconds: float) -> dict[str, Any]:
    """The mixed phase with :data:`NOISY_CLIENTS` signing clients, beside CPU-bound busy loops."""
    with servers.busy_loops(NOISY_NEIGHBOURS, seconds + _NOISY_MARGIN_S):
        mixed = await mixed_phase(base, draws, NOISY_CLIENTS, seconds, "noisy")
    sign = mixed["signing_load"]["endpoints"].get("sign")
    return {"busy_loops": NOISY_NEIGHBOURS, "sign_p99_ms": sign["p99_ms"] if sign else None,
            "sign_max_ms": sign["max_ms"] if sign else None, **mixed}


async def memory_phase(base: str, pid: int | None, draws: Draws, clients: int, total: int) -> dict[str, Any]:
    """RSS before and after ``total`` more flows (half classic, half hash; each deletes its documents)."""
    before = servers.rss_mb(pid) if pid else None
    rec = Recorder()
    started = time.monotonic()
    for flow, phase, count in ((classic_flow, "memory-classic", total // 2),
                               (hash_flow, "memory-hash", total - total // 2)):
        await drive(base, flow, clients, 0, draws, phase, limit=count, rec=rec)
    seconds = time.monotonic() - started
    after = servers.rss_mb(pid) if pid else None
    return {
        "flows": rec.flows, "errors": rec.errors, "seconds": round(seconds, 1),
        "documents": "deleted by every flow",
        "before": before, "after": after,
        "growth_mb": round(after["total_mb"] - before["total_mb"], 1) if before and after else None,
        "load": summary(rec, seconds, clients),
    }


async def benchmark(base: str, pid: int | None, draws: Draws, clients: int, seconds: float,
                    memory_flows: int = MEMORY_FLOWS, sequential_flows: int = SEQUENTIAL_FLOWS,
                    stored_requests: int | None = STORED_REQUESTS) -> dict[str, Any]:
    """Every phase against the sandbox at ``base`` (process ``pid``, if local); with ``stored_requests``,
    the persistence phase too, on a sandbox of its own."""
    at_start = servers.rss_mb(pid) if pid else None
    hello_ = await hello_phase(base, draws, clients, min(_HELLO_S, seconds))
    report: dict[str, Any] = {"cores": os.cpu_count(), "seed": draws.seed, "hello": hello_}
    for flow, phase in ((classic_flow, "warm-up-classic"), (hash_flow, "warm-up-hash")):
        # Starts the signing workers, fills allocator pools.
        await drive(base, flow, clients, min(_WARM_UP_S, seconds), draws, phase)
    for name, flow, length in (("classic", classic_flow, seconds), ("hash", hash_flow, seconds),
                               ("async", async_flow, seconds * 2 / 3)):
        rec, elapsed = await drive(base, flow, clients, length, draws, name)
        report[name] = summary(rec, elapsed, clients)
    report["sequential"] = await sequential_phase(base, draws, sequential_flows)
    report["mixed"] = await mixed_phase(base, draws, clients, seconds)
    report["noisy"] = await noisy_phase(base, draws, seconds)
    report["memory"] = {"at_start": at_start, **await memory_phase(base, pid, draws, clients, memory_flows)}
    report["xdist"] = await asyncio.to_thread(xdist_phase, draws)
    report["persistence"] = (await persistence_phase(draws, clients, seconds, stored_requests)
                             if stored_requests is not None else None)
    report["sign_max_ms"] = _sign_maxima(report)
    report["slow_calls"] = _slow_calls(report)
    report["failed_flows"] = [flow for _, figures in _summaries(report) for flow in figures["failed_flows"]]
    report["targets"] = _judge(report)
    return report


def _summaries(report: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name in ("classic", "hash", "async", "sequential"):
        yield name, report[name]
    for name in ("mixed", "noisy"):
        yield f"{name} non-signing", report[name]["non_signing"]
        yield f"{name} signing", report[name]["signing_load"]
    yield "memory", report["memory"]["load"]


def _sign_maxima(report: dict[str, Any]) -> dict[str, float | None]:
    maxima = {name: figures["sign_max_ms"] for name, figures in _summaries(report) if "non-signing" not in name}
    measured = [value for value in maxima.values() if value is not None]
    return {**maxima, "overall": max(measured) if measured else None}


def _slow_calls(report: dict[str, Any]) -> dict[str, Any]:
    phases = [figures for _, figures in _summaries(report)]
    slowest = sorted((call for figures in phases for call in figures["slowest_calls"]), key=lambda call: -call["ms"])
    return {"over_ms": SLOW_CALL_MS, "count": sum(figures["slow_calls"] for figures in phases),
            "slowest": slowest[:10]}


def _judge(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    values = {
        "classic_flows_per_s": report["classic"]["flows_per_s"],
        "hash_flows_per_s": report["hash"]["flows_per_s"],
        "hello_ratio": report["hello"]["ratio"],
        "mixed_non_signing_p99_ms": report["mixed"]["p99_ms"],
        "rss_growth_mb": report["memory"]["growth_mb"],
        "sequential_sign_max_ms": report["sequential"]["sign_max_ms"],
        "noisy_sign_p99_ms": report["noisy"]["sign_p99_ms"],
        "noisy_sign_max_ms": report["noisy"]["sign_max_ms"],
        "noisy_non_signing_p99_ms": report["noisy"]["p99_ms"],
        "xdist_ratio": report["xdist"]["ratio"],
        **_persistence_values(report),
    }
    judged = {}
    for name, (relation, target) in _TARGETS.items():
        value = values[name]
        met = None if value is None else _RELATIONS[relation](value, target)
        judged[name] = {"value": value, "target": f"{relation} {target}", "met": met}
    return judged


def _persistence_values(report: dict[str, Any]) -> dict[str, float | None]:
    """The data dir's figures against the in-memory classic phase of the same run."""
    phase = report["persistence"]
    if phase is None:
        return dict.fromkeys(("data_dir_ratio_empty", "data_dir_ratio_full", "data_dir_hello_p50_ms",
                              "data_dir_restart_s"))
    in_memory = report["classic"]["flows_per_s"]
    return {
        "data_dir_ratio_empty": round(phase["empty"]["flows_per_s"] / in_memory, 3),
        "data_dir_ratio_full": round(phase["full"]["flows_per_s"] / in_memory, 3),
        "data_dir_hello_p50_ms": max(phase["empty"]["hello"]["p50_ms"], phase["full"]["hello"]["p50_ms"]),
        "data_dir_restart_s": phase["restart_s"],
    }


def render(report: dict[str, Any]) -> str:
    """The report as a human-readable table."""
    lines = [f"oneshot-mock benchmark on {report['cores']} cores, seed {report['seed']}"]
    hello_ = report["hello"]
    lines.append(f"hello: sandbox {hello_['sandbox_per_s']}/s, bare aiohttp {hello_['bare_aiohttp_per_s']}/s, "
                 f"ratio {hello_['ratio']} ({hello_['clients']} clients)")
    for name in ("classic", "hash", "async"):
        lines += _phase_lines(name, report[name])
    lines += _phase_lines("sequential", report["sequential"])
    for name, title in (("mixed", "mixed"), ("noisy", f"noisy ({report['noisy']['busy_loops']} busy loops beside)")):
        phase = report[name]
        lines += _phase_lines(f"{title}: non-signing calls ({phase['pause_s']} s between calls), "
                              f"{phase['calls_per_s']} calls/s, p99 {phase['p99_ms']} ms", phase["non_signing"])
        lines += _phase_lines(f"{title}: signing load", phase["signing_load"])
    memory = report["memory"]
    lines.append(f"memory: {memory['at_start']} at start; {memory['before']} -> {memory['after']} over "
                 f"{memory['flows']} more flows in {memory['seconds']} s (growth {memory['growth_mb']} MB), "
                 f"{memory['errors']} errors")
    lines.append(_xdist_line(report["xdist"]))
    lines += _persistence_lines(report["persistence"])
    maxima = report["sign_max_ms"]
    lines.append("sign max ms: " + ", ".join(f"{name} {value}" for name, value in maxima.items()))
    slow = report["slow_calls"]
    lines.append(f"calls over {slow['over_ms']:.0f} ms: {slow['count']}")
    for call in slow["slowest"]:
        lines.append(f"  {call['ms']:>9} ms {call['endpoint']} ({call.get('phase')} #{call.get('index')}, "
                     f"{call.get('document')}): {json.dumps(call.get('identity'), ensure_ascii=False)}")
    failed = report["failed_flows"]
    if failed:
        lines.append(f"failed flows (the first {_FAILURES_SHOWN} of the first few kept per phase):")
    for flow in failed[:_FAILURES_SHOWN]:
        lines.append(f"  {flow['phase']} #{flow['index']} ({flow['document']}, common name "
                     f"{flow['common_name_chars']} chars, {flow['common_name_utf8_bytes']} UTF-8 bytes): "
                     f"{flow['error'][:100]}")
        lines.append(f"    {json.dumps(flow['identity'], ensure_ascii=False)}")
    lines.append("targets:")
    for name, judged in report["targets"].items():
        verdict = {True: "met", False: "MISSED", None: "not measured"}[judged["met"]]
        lines.append(f"  {name:26} {judged['value']!s:>8} {judged['target']:>10}  {verdict}")
    return "\n".join(lines)


def _phase_lines(title: str, phase: dict[str, Any]) -> list[str]:
    lines = [f"{title}: {phase['flows']} in {phase['seconds']} s with {phase['clients']} clients = "
             f"{phase['flows_per_s']}/s, {phase['errors']} errors"
             + (f" (first: {phase['first_error']})" if phase["first_error"] else "")]
    if phase["sign_max_ms"] is not None:
        lines[0] += f"; sign max {phase['sign_max_ms']} ms, {phase['signs_over_1s']} over 1 s"
    lines.append(f"  {'endpoint':24} {'count':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for endpoint, row in phase["endpoints"].items():
        lines.append(f"  {endpoint:24} {row['count']:>7} {row['p50_ms']:>8} {row['p95_ms']:>8} {row['p99_ms']:>8} "
                     f"{row['max_ms']:>8}")
    return lines


def _persistence_lines(phase: dict[str, Any] | None) -> list[str]:
    if phase is None:
        return ["persistence: not measured (--url, or --stored-requests 0)"]
    lines = []
    for key, title in (("empty", "empty data dir"), ("full", f"{phase['stored_requests']} stored requests")):
        lines += _phase_lines(f"persistence, {title}: classic flows, hello p50 {phase[key]['hello']['p50_ms']} ms",
                              phase[key])
    lines.append(f"persistence: {phase['fill']['requests']} requests stored in {phase['fill']['seconds']} s; restart "
                 f"{phase['restart_s']} s with {phase['restored_requests']} requests; "
                 f"{phase['size_on_disk_mb']} MB on disk")
    return lines


def _xdist_line(xdist: dict[str, Any]) -> str:
    if "not_measured" in xdist:
        return f"xdist: not measured ({xdist['not_measured']})"
    serial, parallel = xdist["serial"], xdist["xdist"]
    return (f"xdist: {xdist['tests']} tests, serially {serial['seconds']} s ({serial['outcome']}), "
            f"-n {xdist['workers']} {parallel['seconds']} s ({parallel['outcome']}): ratio {xdist['ratio']}")


@contextlib.contextmanager
def _target(url: str | None, workers: int | None, data_dir: Path | None,
            signing_priority: str | None) -> Iterator[servers.Served]:
    if url:
        yield servers.Served(url.rstrip("/"), None)
        return
    with servers.sandbox(workers, data_dir, signing_priority) as served:
        yield served


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mock_server.bench", description=__doc__)
    parser.add_argument("--url", help="benchmark a running sandbox instead of starting one (no memory figures)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients of the flow phases")
    parser.add_argument("--duration", type=float, default=12.0, help="seconds of each flow phase (default 12)")
    parser.add_argument("--workers", type=int, default=None, help="signing workers of the started sandbox")
    parser.add_argument("--signing-priority", choices=SIGNING_PRIORITIES, default=None,
                        help="the started sandbox's --signing-priority (default: serve's own)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="run the started sandbox with --data-dir (measures persistence's cost)")
    parser.add_argument("--memory-flows", type=int, default=MEMORY_FLOWS,
                        help=f"flows between the two memory readings (default {MEMORY_FLOWS})")
    parser.add_argument("--sequential-flows", type=int, default=SEQUENTIAL_FLOWS,
                        help=f"classic flows of the one-client sequential phase (default {SEQUENTIAL_FLOWS})")
    parser.add_argument("--stored-requests", type=int, default=STORED_REQUESTS,
                        help=f"requests the persistence phase stores before its second reading (default "
                             f"{STORED_REQUESTS}; 0 skips the phase)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of every identity, document and pause the flows draw (default 0)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    draws = Draws(args.seed)
    with _target(args.url, args.workers, args.data_dir, args.signing_priority) as served, \
            asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        stored = args.stored_requests if args.stored_requests > 0 and not args.url else None
        report = runner.run(benchmark(served.url, served.pid, draws, args.clients, args.duration,
                                      args.memory_flows, args.sequential_flows, stored))
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else render(report))
