"""The signing worker processes: a pool that dies with the sandbox, even on ``kill -9``."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

_PARENT_CHECK_S = 1.0
# Signing is the one CPU-heavy job: below the event loop's priority, it takes the cores the loop
# leaves idle, and a burst of signatures cannot stall the sandbox's other endpoints.
_WORKER_NICENESS = 10


def signing_pool(workers: int) -> ProcessPoolExecutor:
    """A spawn-context process pool of low-priority workers that exit once the sandbox process is gone."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker, initargs=(os.getpid(),))


def _start_worker(parent: int) -> None:
    os.nice(_WORKER_NICENESS)
    _watch_parent(parent)


def _watch_parent(parent: int) -> None:
    # A SIGKILLed parent runs no shutdown, and an idle worker blocked on its call queue never
    # notices: without this, every kill -9 would leave the workers behind for good.
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
