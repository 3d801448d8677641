"""Garbage-collection pauses that do not grow with what the sandbox stores.

CPython's full collection walks every tracked object, and a sandbox that has served thousands of
flows holds hundreds of thousands of them (requests, histories, certificates, the SMS outbox):
each full collection then stalls the event loop for 100-200 ms, which every call in flight pays.
Freezing what survived a full collection moves it out of the collector's reach, so the next one
only walks what was created since. A reset lets the frozen objects go back to the collector,
since a reset sandbox's old state may hold reference cycles that only it can free.
"""

from __future__ import annotations

import gc
from typing import Any


def install() -> None:
    """Freeze the survivors of every full collection, in this process, from now on."""
    if _freeze_survivors not in gc.callbacks:
        gc.callbacks.append(_freeze_survivors)


def release() -> None:
    """Hand the frozen objects back to the collector (after a reset dropped a whole state)."""
    gc.unfreeze()


def _freeze_survivors(phase: str, info: dict[str, Any]) -> None:
    if phase == "stop" and info["generation"] == 2:
        gc.freeze()
