"""One-shot keys: EC P-256 made on demand, or RSA-2048 from a pool filled off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from mock_server.pki.authority import KEY_TYPES
from mock_server.pki.signing import generate_key

Runner = Callable[..., Awaitable]
log = logging.getLogger(__name__)


class KeyPool:
    """Hands out fresh PKCS#8 DER keys of ``key_type``; :meth:`take` never blocks the event loop.

    An EC key costs microseconds, so it is made when asked for. An RSA-2048 key costs about
    40 ms of CPU: up to ``size`` of them are kept ready, generated in the executor.
    """

    def __init__(self, run: Runner, size: int, key_type: str = "ec-p256") -> None:
        if key_type not in KEY_TYPES:
            raise ValueError(f"unknown key type {key_type!r}; expected one of {', '.join(KEY_TYPES)}")
        self.key_type = key_type
        self._run = run
        self._pooled = key_type.startswith("rsa")
        self._ready: asyncio.Queue[bytes] = asyncio.Queue(maxsize=max(size, 1))
        self._filler: asyncio.Task | None = None

    def start(self) -> None:
        """Begin filling the pool in the background (RSA only)."""
        if self._pooled and self._filler is None:
            self._filler = asyncio.get_running_loop().create_task(self._fill())

    async def stop(self) -> None:
        if self._filler is not None:
            self._filler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._filler
            self._filler = None

    async def take(self) -> bytes:
        """A fresh key: made now (EC), from the pool, or generated now in the executor (RSA)."""
        if not self._pooled:
            return generate_key(self.key_type)
        try:
            return self._ready.get_nowait()
        except asyncio.QueueEmpty:
            return await self._run(generate_key, self.key_type)

    async def _fill(self) -> None:
        while True:
            try:
                key = await self._run(generate_key, self.key_type)
            except Exception:  # a broken or restarting pool must not end the filling for good
                log.warning("key generation failed; retrying in a second", exc_info=True)
                await asyncio.sleep(1)
                continue
            await self._ready.put(key)
