"""The signing worker processes: a pool that dies with the sandbox, even on ``kill -9``."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

_PARENT_CHECK_S = 1.0
SIGNING_PRIORITIES = ("normal", "low", "idle")
_LOW_NICENESS = 10


def signing_pool(workers: int, priority: str = "normal") -> ProcessPoolExecutor:
    """A spawn-context process pool of signing workers at ``priority`` (one of :data:`SIGNING_PRIORITIES`)
    that exit once the sandbox process is gone."""
    if priority not in SIGNING_PRIORITIES:
        raise ValueError(f"unknown signing priority {priority!r}; expected one of {', '.join(SIGNING_PRIORITIES)}")
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start_worker, initargs=(os.getpid(), priority))


def _start_worker(parent: int, priority: str) -> None:
    _set_priority(priority)
    _watch_parent(parent)


def _set_priority(priority: str) -> None:
    # normal: a worker's CPU share is any process's, so a busy CI machine slows signing in
    # proportion instead of starving it (under SCHED_IDLE two busy loops took sign from 0.09 s to
    # 1.35 s). low and idle give the CPU away to everything else, for machines where the sandbox must
    # not compete (idle falls back to low where SCHED_IDLE is missing or refused).
    if priority == "idle":
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return
        except (AttributeError, OSError):
            priority = "low"
    if priority == "low":
        os.nice(_LOW_NICENESS)


def _watch_parent(parent: int) -> None:
    # A SIGKILLed parent runs no shutdown, and an idle worker blocked on its call queue never
    # notices: without this, every kill -9 would leave the workers behind for good.
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
