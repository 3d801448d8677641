"""The processes a benchmark measures: the sandbox and the bare baseline, on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from mock_server.server.processes import free_port, wait_until_ready

_START_TIMEOUT_S = 30.0
# A CPU-bound neighbour: spins until the deadline given as its argument, so that it stops by itself
# even if the benchmark dies before it can kill it.
_BUSY_LOOP = """
import sys, time
deadline = time.monotonic() + float(sys.argv[1])
while time.monotonic() < deadline:
    pass
"""


@dataclass(frozen=True)
class Served:
    """A server the benchmark started: where it answers, and its process id (for its memory)."""

    url: str
    pid: int | None


@contextlib.contextmanager
def sandbox(workers: int | None, data_dir: Path | None, signing_priority: str | None = None,
            options: Sequence[str] = ()) -> Iterator[Served]:
    """``oneshot-mock serve``, as configured out of the box (bar ``options``), on a free loopback port;
    stopped on exit."""
    args = ["-m", "mock_server", "serve", *options]
    if workers:
        args += ["--workers", str(workers)]
    if data_dir is not None:
        args += ["--data-dir", str(data_dir)]
    if signing_priority:
        args += ["--signing-priority", signing_priority]
    with _process(args, "/_mock/health") as served:
        yield served


@contextlib.contextmanager
def bare_hello() -> Iterator[Served]:
    """The baseline app of :mod:`mock_server.bench.baseline`, stopped on exit."""
    with _process(["-m", "mock_server.bench.baseline"], "/api/v1/hello") as served:
        yield served


@contextlib.contextmanager
def _process(args: list[str], ready_path: str) -> Iterator[Served]:
    port = free_port()
    process = subprocess.Popen([sys.executable, *args, "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url + ready_path, process, _START_TIMEOUT_S)
        yield Served(url, process.pid)
    finally:
        stop(process)


@contextlib.contextmanager
def busy_loops(count: int, seconds: float) -> Iterator[list[subprocess.Popen]]:
    """``count`` CPU-bound processes at normal priority, each stopping by itself after ``seconds``;
    killed on exit."""
    # No start_new_session: they share the benchmark's session, hence the sandbox's, as a CI job's
    # other processes do. In another session Linux's autogroup scheduling would give the sandbox's
    # group its own share of the CPU and hide them.
    processes: list[subprocess.Popen] = []
    try:
        for _ in range(count):
            processes.append(subprocess.Popen([sys.executable, "-c", _BUSY_LOOP, str(seconds)],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        yield processes
    finally:
        for process in processes:
            process.kill()
            process.wait()


def stop(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within 15 s."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def rss_mb(pid: int) -> dict[str, float]:
    """Resident memory of ``pid`` and of its child processes (the signing workers), in MiB."""
    children = child_pids(pid)
    own = _rss_kib(pid)
    workers = sum(_rss_kib(child) for child in children)
    return {"sandbox_mb": round(own / 1024, 1), "workers_mb": round(workers / 1024, 1),
            "total_mb": round((own + workers) / 1024, 1)}


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux's ``/proc``)."""
    return [p for p in _pids() if _parent(p) == pid]


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: fields start after the last ')'.
    return int(stat.rsplit(")", 1)[1].split()[1])


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
