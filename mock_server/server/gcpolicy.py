"""Garbage-collection pauses that do not grow with what the sandbox stores.

CPython's full collection walks every tracked object, and a sandbox that has served thousands of
flows holds hundreds of thousands of them (requests, histories, certificates, the SMS outbox):
each full collection then stalls the event loop for 100-200 ms, which every call in flight pays.
Freezing what survived a collection of the middle generation moves it out of the collector's
reach, so that a full collection only walks what was created since the last one of those (3 ms
under load, against 10-45 ms when only the survivors of full collections were frozen: one of
those every 15-25 s of load moved the noisy benchmark's p99 from 21 ms to 30-44 ms). Cycles
that become garbage after surviving two collections wait for the next reset: 5,000 flows grow
memory by the same 20 MB either way. A reset lets the frozen objects go back to the collector,
since a reset sandbox's old state may hold reference cycles that only it can free.
"""

from __future__ import annotations

import gc
from typing import Any


def install() -> None:
    """Freeze the survivors of every collection of the two older generations, in this process, from now on."""
    if _freeze_survivors not in gc.callbacks:
        gc.callbacks.append(_freeze_survivors)


def release() -> None:
    """Hand the frozen objects back to the collector (after a reset dropped a whole state)."""
    gc.unfreeze()


def _freeze_survivors(phase: str, info: dict[str, Any]) -> None:
    if phase == "stop" and info["generation"] >= 1:
        gc.freeze()
