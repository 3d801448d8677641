"""The signing worker processes: a pool that dies with the sandbox, even on ``kill -9``."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

_PARENT_CHECK_S = 1.0
# Where SCHED_IDLE is missing (not Linux) or refused, the workers fall back to a plain nice level.
_FALLBACK_NICENESS = 10


def signing_pool(workers: int) -> ProcessPoolExecutor:
    """A spawn-context process pool of low-priority workers that exit once the sandbox process is gone."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker, initargs=(os.getpid(),))


def _start_worker(parent: int) -> None:
    _lower_priority()
    _watch_parent(parent)


def _lower_priority() -> None:
    # Signing is the one CPU-heavy job: it takes the cores the event loop leaves idle. At nice 10 a
    # worker could keep a core for a scheduler slice after the loop woke up; under SCHED_IDLE the
    # loop, which every call goes through, gets it at once (figures: README, Benchmark).
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(_FALLBACK_NICENESS)


def _watch_parent(parent: int) -> None:
    # A SIGKILLed parent runs no shutdown, and an idle worker blocked on its call queue never
    # notices: without this, every kill -9 would leave the workers behind for good.
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
