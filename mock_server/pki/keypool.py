"""A pool of one-shot RSA keys, generated ahead of time off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from mock_server.pki.signing import generate_key

Runner = Callable[..., Awaitable]
log = logging.getLogger(__name__)


class KeyPool:
    """Keeps up to ``size`` keys ready; :meth:`take` never generates on the event loop."""

    def __init__(self, run: Runner, size: int) -> None:
        self._run = run
        self._ready: asyncio.Queue[bytes] = asyncio.Queue(maxsize=max(size, 1))
        self._filler: asyncio.Task | None = None

    def start(self) -> None:
        """Begin filling the pool in the background."""
        if self._filler is None:
            self._filler = asyncio.get_running_loop().create_task(self._fill())

    async def stop(self) -> None:
        if self._filler is not None:
            self._filler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._filler
            self._filler = None

    async def take(self) -> bytes:
        """A fresh PKCS#8 DER key: from the pool, or generated now in the executor."""
        try:
            return self._ready.get_nowait()
        except asyncio.QueueEmpty:
            return await self._run(generate_key)

    async def _fill(self) -> None:
        while True:
            try:
                key = await self._run(generate_key)
            except Exception:  # a broken or restarting pool must not end the filling for good
                log.warning("key generation failed; retrying in a second", exc_info=True)
                await asyncio.sleep(1)
                continue
            await self._ready.put(key)
