"""A webhook receiver on the loopback: a small aiohttp server that records every request it gets.

The fixtures that start receivers (``start_receiver``, ``receiver``) are in ``tests/conftest.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict


@dataclass
class Delivery:
    """One POST as the receiver saw it."""

    method: str
    path: str
    headers: CIMultiDict[str]
    body: bytes
    at: float  # time.monotonic() on arrival

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def status(self) -> str:
        """The legacy payload's status (the event a delivery carries)."""
        return self.json["status"]

    @property
    def event(self) -> str:
        """The legacy payload's status, or the new payload's event type."""
        payload = self.json
        return payload.get("status") or payload["event_type"]


@dataclass
class Reply:
    """How the receiver answers one delivery: a status, after an optional delay."""

    status: int = 200
    delay: float = 0.0


@dataclass
class Receiver:
    """Records every request; answers from ``script`` (one entry per request), then 200."""

    port: int = 0
    deliveries: list[Delivery] = field(default_factory=list)
    script: deque[int | Reply] = field(default_factory=deque)
    on_delivery: Callable[[Delivery], Awaitable[None]] | None = None
    released: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/oneshot"

    async def handle(self, request: web.Request) -> web.Response:
        delivery = Delivery(request.method, request.path, CIMultiDict(request.headers), await request.read(),
                            time.monotonic())
        self.deliveries.append(delivery)
        reply = self.script.popleft() if self.script else Reply()
        reply = Reply(reply) if isinstance(reply, int) else reply
        if self.on_delivery is not None:
            await self.on_delivery(delivery)
        if reply.delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.released.wait(), reply.delay)
        return web.Response(status=reply.status, text="ok")

    async def wait_for(self, count: int, timeout: float = 15.0) -> list[Delivery]:
        """The first ``count`` deliveries, waiting for them up to ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while len(self.deliveries) < count:
            if time.monotonic() > deadline:
                got = [d.body.decode() for d in self.deliveries]
                raise AssertionError(f"expected {count} deliveries within {timeout} s, got {got}")
            await asyncio.sleep(0.01)
        return self.deliveries[:count]

    def events(self) -> list[str]:
        """The event of every delivery so far (see :attr:`Delivery.event`)."""
        return [d.event for d in self.deliveries]
