"""A server process started exactly as given (command, environment, directory), for configuration tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path


def environment_without_oneshot(**extra: str) -> dict[str, str]:
    """This process's environment minus any ``ONESHOT_MOCK_*`` variable (a developer's own must not leak in)."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith("ONESHOT_MOCK_")}
    return {**clean, **extra}


@contextlib.contextmanager
def serving(command: Sequence[str], env: Mapping[str, str], probe: str, log: Path,
            cwd: Path | None = None) -> Iterator[subprocess.Popen]:
    """Run ``command`` until the block ends, entering it once ``probe`` answers 2xx."""
    with log.open("wb") as sink:
        process = subprocess.Popen(list(command), env=dict(env), cwd=cwd, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"server exited with {process.returncode}: {log.read_text()}")
            try:
                urllib.request.urlopen(probe, timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
