"""``python -m mock_server.bench``: classic-flow throughput of a sandbox under concurrent clients.

Starts ``oneshot-mock serve`` on a free loopback port (or uses ``--url``), runs N clients
through complete classic flows (create, upload a 1-page PDF, OTP, sign, download) for a
fixed time, and prints flows/s and latency percentiles per endpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import aiohttp

from mock_server.contract import ContractFacts, render_contract

TOKEN = "6d1cae4d55be4cdf9cac50ee36f73406"


class Recorder:
    """Latencies per endpoint, and counts of flows and errors."""

    def __init__(self) -> None:
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.flows = 0
        self.errors = 0

    async def call(self, session: aiohttp.ClientSession, endpoint: str, method: str, url: str,
                   **kwargs) -> bytes:
        started = time.perf_counter()
        async with session.request(method, url, **kwargs) as response:
            body = await response.read()
        self.latencies[endpoint].append((time.perf_counter() - started) * 1000)
        if response.status >= 400:
            raise RuntimeError(f"{endpoint}: HTTP {response.status} {body[:200]!r}")
        return body


async def classic_flow(session: aiohttp.ClientSession, base: str, pdf: bytes, index: int, rec: Recorder) -> None:
    """One complete classic flow."""
    form = aiohttp.FormData({
        "token": TOKEN, "given_name": f"Bench{index}", "surname_1": "Client", "serial_number": f"{index:08d}B",
        "email": "bench@example.com", "mobile_phone_number": f"+346{index % 10**8:08d}", "env": "sandbox",
    })
    pk = json.loads(await rec.call(session, "create_request", "POST", f"{base}/api/v1/request", data=form))["details"]
    upload = aiohttp.FormData()
    upload.add_field("file", pdf, filename="bench.pdf", content_type="application/pdf")
    body = await rec.call(session, "upload_document", "POST", f"{base}/api/v1/document/{pk}", data=upload)
    uid = json.loads(body)["details"]
    await rec.call(session, "generate_otp", "POST", f"{base}/api/v1/otp/{pk}")
    outbox = json.loads(await rec.call(session, "_mock_sms", "GET", f"{base}/_mock/sms?request={pk}"))
    secret = outbox["messages"][-1]["otp"]
    await rec.call(session, "sign", "POST", f"{base}/api/v1/sign/{pk}", json={"secret": secret})
    await rec.call(session, "retrieve_document", "GET", f"{base}/api/v1/document/{pk}/signed/{uid}")
    await rec.call(session, "delete_all_documents", "DELETE", f"{base}/api/v1/documents/{pk}")


async def run_load(base: str, clients: int, duration: float) -> tuple[Recorder, float]:
    """Drive ``clients`` concurrent flow loops against ``base`` for ``duration`` seconds."""
    pdf = render_contract(ContractFacts(0, "BENCH", "IDC ES 0", "b@example.com", "+34600000000", "P", "9999", "-"))
    rec = Recorder()
    deadline = time.monotonic() + duration
    counter = iter(range(10**9))

    async def client(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < deadline:
            try:
                await classic_flow(session, base, pdf, next(counter), rec)
                rec.flows += 1
            except (RuntimeError, aiohttp.ClientError):
                rec.errors += 1

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.monotonic()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        elapsed = time.monotonic() - started
    return rec, elapsed


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(rec: Recorder, elapsed: float, clients: int) -> dict:
    """The figures as a JSON-ready dict."""
    return {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "flows": rec.flows,
        "errors": rec.errors,
        "flows_per_second": round(rec.flows / elapsed, 2),
        "endpoints": {
            name: {
                "count": len(values),
                "p50_ms": round(statistics.median(values), 1),
                "p95_ms": round(_percentile(values, 0.95), 1),
                "p99_ms": round(_percentile(values, 0.99), 1),
            }
            for name, values in sorted(rec.latencies.items())
        },
    }


@contextlib.contextmanager
def local_server(workers: int | None, extra: list[str]) -> Iterator[str]:
    """``oneshot-mock serve`` on a free loopback port, stopped on exit."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = [sys.executable, "-m", "mock_server", "serve", "--port", str(port), "--log-format", "json"]
    if workers:
        args += ["--workers", str(workers)]
    args += extra
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(base + "/_mock/health", timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError("the sandbox did not start")
        time.sleep(2)  # let the signing workers start and the key pool fill
        yield base
    finally:
        process.terminate()
        process.wait(timeout=15)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mock_server.bench", description=__doc__)
    parser.add_argument("--url", help="benchmark a running sandbox instead of starting one")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    parser.add_argument("--workers", type=int, default=None, help="signing workers of the started sandbox")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="run the started sandbox with --data-dir (measures persistence's cost)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    with contextlib.ExitStack() as stack:
        extra = ["--data-dir", str(args.data_dir)] if args.data_dir else []
        base = args.url or stack.enter_context(local_server(args.workers, extra))
        rec, elapsed = asyncio.run(run_load(base.rstrip("/"), args.clients, args.duration))
    figures = report(rec, elapsed, args.clients)
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"classic flows: {figures['flows']} in {figures['seconds']} s with {args.clients} clients "
          f"= {figures['flows_per_second']} flows/s, {figures['errors']} errors")
    print(f"{'endpoint':24} {'count':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for name, row in figures["endpoints"].items():
        print(f"{name:24} {row['count']:>7} {row['p50_ms']:>8} {row['p95_ms']:>8} {row['p99_ms']:>8}")


if __name__ == "__main__":
    main()
