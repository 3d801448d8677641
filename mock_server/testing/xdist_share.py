"""One sandbox process for all the pytest-xdist workers of a run, for the ``oneshot_mock`` fixture.

The xdist controller makes a private directory for the run and holds an exclusive lock on its
``run.lock`` until the run ends. It starts the sandbox at once, in a thread, while xdist starts its
workers: holding ``elect.lock``, it runs ``python -m mock_server.testing.xdist_share DIR SERVE-OPTIONS``
(``oneshot-mock serve`` and a watch on ``run.lock``) and writes its URL, or why it did not start, to
``state.json``; the workers wait on ``elect.lock`` and read it (a worker that gets the lock first starts
the sandbox itself, the same way). The sandbox shuts down as soon as it can take ``run.lock``: once
the controller lets go of it at the end of the run, or dies, even by ``kill -9``, since the kernel
drops a dead process's locks. It holds ``alive.lock`` until it has exited, which is how the controller
knows when it has. Unix only (``fcntl``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mock_server.server.processes import free_port, wait_until_ready

_START_TIMEOUT_S = 60.0
# Longer than a start, which a waiting worker may have to sit through.
_ELECTION_TIMEOUT_S = _START_TIMEOUT_S + 30.0
# A graceful stop gives each namespace's pending webhooks a few seconds; one that takes longer is stuck.
_STOP_TIMEOUT_S = 60.0
_POLL_S = 0.02
# Kept referenced for the worker's life: a collected Popen of a running process warns (ResourceWarning),
# which a project's ``filterwarnings = error`` would turn into a failed test.
_started: list[subprocess.Popen[bytes]] = []


class SharedRun:
    """The controller's side: the run's directory, and the lock whose release stops the sandbox."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="oneshot-mock-xdist-"))
        self._run_lock = (self.directory / "run.lock").open("w")
        fcntl.flock(self._run_lock, fcntl.LOCK_EX)
        self._starter: threading.Thread | None = None

    def start_sandbox(self, *, seed: int, otp: str | None, workers: int) -> None:
        """Start the run's sandbox in the background, once: its start (imports, signing workers)
        then overlaps the xdist workers' own instead of following it in the first test."""
        if self._starter is None:
            self._starter = threading.Thread(target=_elect, args=(self.directory, seed, otp, workers),
                                             name="oneshot-mock-xdist-start", daemon=True)
            self._starter.start()

    def close(self) -> None:
        """Stop the sandbox, if one started, wait until it has exited; remove the directory."""
        if self._starter is not None:
            # A sandbox still starting would otherwise be left to stop on its own, after the
            # directory it watches is gone.
            self._starter.join(_ELECTION_TIMEOUT_S)
        self._run_lock.close()
        try:
            state = _read_state(self.directory)
            if state is not None and "pid" in state:
                _wait_for_exit(self.directory, state["pid"])
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)


def shared_sandbox(directory: Path, *, seed: int, otp: str | None, workers: int) -> str:
    """The base URL of the run's sandbox, started by the controller or by whichever worker asks first;
    ``RuntimeError`` with the reason if it did not start."""
    state = _elect(directory, seed, otp, workers)
    if "error" in state:
        raise RuntimeError(state["error"])
    return state["url"]


def _elect(directory: Path, seed: int, otp: str | None, workers: int) -> dict[str, Any]:
    # One start per run: a sandbox that failed to start is not tried again by every worker, each
    # worker's first test reports the same failure.
    with _locked(directory / "elect.lock", _ELECTION_TIMEOUT_S):
        state = _read_state(directory)
        if state is None:
            try:
                state = _start(directory, seed=seed, otp=otp, workers=workers)
            except RuntimeError as failure:
                state = {"error": str(failure)}
            _write_state(directory, state)
        return state


def _start(directory: Path, *, seed: int, otp: str | None, workers: int) -> dict[str, Any]:
    port = free_port()
    options = ["--host", "127.0.0.1", "--port", str(port), "--seed", str(seed), "--workers", str(workers)]
    if otp:
        options += ["--otp", otp]
    # As the in-process sandboxes: the developer's own ONESHOT_MOCK_* settings (an admin token, a
    # data directory) are for the sandboxes they run, not for the fixture's.
    env = {name: value for name, value in os.environ.items() if not name.startswith("ONESHOT_MOCK_")}
    log = directory / "server.log"
    # Never the worker's stdout: it is xdist's channel to the controller.
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "mock_server.testing.xdist_share", str(directory), *options],
                                   stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, env=env)
    _started.append(process)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(url + "/_mock/health", process, _START_TIMEOUT_S)
    except RuntimeError as failure:
        process.kill()
        raise RuntimeError(f"the shared oneshot-mock did not start ({failure}): {log.read_text()}") from None
    return {"url": url, "pid": process.pid}


def _write_state(directory: Path, state: dict[str, Any]) -> None:
    partial = directory / "state.json.partial"
    partial.write_text(json.dumps(state))
    partial.replace(directory / "state.json")


def _read_state(directory: Path) -> dict[str, Any] | None:
    try:
        return json.loads((directory / "state.json").read_text())
    except FileNotFoundError:
        return None


def _wait_for_exit(directory: Path, pid: int) -> None:
    # The sandbox holds alive.lock until it exits: unlike its pid, that cannot be mistaken for a
    # zombie nobody reaps (its parent was a worker) or for a new process that reuses the number.
    try:
        with _locked(directory / "alive.lock", _STOP_TIMEOUT_S):
            return
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        raise RuntimeError(f"the shared oneshot-mock (pid {pid}) did not stop within {_STOP_TIMEOUT_S:.0f} s: "
                           "killed") from None


@contextlib.contextmanager
def _locked(path: Path, timeout: float) -> Iterator[None]:
    with path.open("a") as lock:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{path} stayed locked for {timeout:.0f} s") from None
                time.sleep(_POLL_S)
        yield


def main(argv: list[str]) -> None:
    """``DIR SERVE-OPTIONS``: ``oneshot-mock serve SERVE-OPTIONS`` until the run behind ``DIR`` ends."""
    from mock_server.server.cli import main as cli

    directory, options = Path(argv[0]), argv[1:]
    # A bare descriptor, never closed: the kernel lets go of the lock only when this process is gone.
    fcntl.flock(os.open(directory / "alive.lock", os.O_WRONLY | os.O_CREAT, 0o600), fcntl.LOCK_EX)
    threading.Thread(target=_stop_with_the_run, args=(directory / "run.lock",), name="run-watch",
                     daemon=True).start()
    cli(["serve", *options])


def _stop_with_the_run(run_lock: Path) -> None:
    with run_lock.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)
    os.kill(os.getpid(), signal.SIGTERM)
    # A shutdown stuck past this must not leave the sandbox behind.
    time.sleep(_STOP_TIMEOUT_S)
    os._exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
