"""The sandbox's live events (status changes, SMS sent, webhook attempts, scenario matches, clock
moves), fanned out from every namespace's event bus to the readers that follow them. No HTTP here:
``mock_server.api.events`` serves them as Server-Sent Events."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from mock_server.domain.lifecycle import (
    CertificateRevoked,
    ClockMoved,
    Event,
    ScenarioFired,
    SmsSent,
    StatusChanged,
    WebhookAttempted,
)
from mock_server.domain.tenancy import Tenant

# A reader this far behind is told so and ended, rather than holding memory for it.
BACKLOG = 1000
KEEP_ALIVE_S = 15.0
Message = tuple[int, str, dict[str, Any]]  # id, kind, data


def live(event: Event) -> tuple[str, int | None, dict[str, Any]] | None:
    """A domain event as the stream shows it: its kind, request pk and data; None for the others."""
    if isinstance(event, StatusChanged):
        change = event.change
        return "status", event.request.pk, {"status": change.status.value, "at": change.at.isoformat(),
                                            "previous": change.previous.value if change.previous else None}
    if isinstance(event, CertificateRevoked):
        return "status", event.request.pk, {"certificate_revoked": format(event.certificate.serial, "x"),
                                            "at": (event.certificate.revoked_at or event.certificate.issued_at)
                                            .isoformat()}
    if isinstance(event, SmsSent):
        return "sms", event.request_pk, {
            "to": event.to, "channel": event.channel, "otp": event.otp, "sent_at": event.sent_at.isoformat(),
            "delivered_at": event.delivered_at.isoformat() if event.delivered_at else None}
    if isinstance(event, WebhookAttempted):
        return "webhook", event.request_pk, {
            "event_id": event.event_id, "event": event.event, "target": event.target, "at": event.at.isoformat(),
            "http_status": event.http_status, "error": event.error, "ms": event.ms}
    if isinstance(event, ScenarioFired):
        return "scenario", event.request_pk, {"operation": event.operation, "scenarios": list(event.scenarios)}
    if isinstance(event, ClockMoved):
        return "clock", None, {"now": event.now.isoformat(), "offset_s": event.offset_s}
    return None


@dataclass(eq=False)  # each stream is itself, in the feed's set
class Stream:
    """What one reader asked for: a namespace's events of some kinds, of one request or all."""

    namespace: str
    kinds: frozenset[str]
    pk: int | None
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(BACKLOG))
    ended: str | None = None  # why the stream ends, once it must

    def wants(self, namespace: str, kind: str, pk: int | None) -> bool:
        """Whether an event of ``kind`` about request ``pk`` in ``namespace`` goes to this reader."""
        return namespace == self.namespace and kind in self.kinds and (self.pk is None or pk == self.pk)


class Feed:
    """Every namespace's live events, fanned out to the streams that asked for them."""

    def __init__(self, commit: Callable[[], Awaitable[None]] | None) -> None:
        # With a data dir, an event is sent once what it tells of is saved, as any read is.
        self._commit = commit
        self._streams: set[Stream] = set()
        self._ids = itertools.count(1)

    def watch(self, tenant: Tenant) -> None:
        """Pass on the events of ``tenant``'s sandbox from now on."""
        tenant.sandbox.events.subscribe(lambda event: self._publish(tenant, event))

    def _publish(self, tenant: Tenant, event: Event) -> None:
        shown = live(event)
        if shown is None or not self._streams:
            return
        kind, pk, data = shown
        namespace = tenant.namespace
        shared = {"kind": kind, "namespace": namespace, "pk": pk, "at": tenant.sandbox.clock.now().isoformat()}
        message: Message = (next(self._ids), kind, {**shared, **data})
        for stream in self._streams:
            if stream.wants(namespace, kind, pk) and stream.ended is None:
                try:
                    stream.queue.put_nowait(message)
                except asyncio.QueueFull:
                    stream.ended = f"the reader fell {BACKLOG} events behind"

    def close(self) -> None:
        """End every stream (the server is stopping)."""
        self._end(self._streams, "the server is stopping")

    def end_namespace(self, namespace: str) -> None:
        """End the streams that follow ``namespace`` (it was deleted)."""
        self._end([stream for stream in self._streams if stream.namespace == namespace],
                  f"namespace {namespace!r} was deleted")

    @staticmethod
    def _end(streams: Iterable[Stream], why: str) -> None:
        for stream in streams:
            stream.ended = why
            with contextlib.suppress(asyncio.QueueFull):
                stream.queue.put_nowait(None)  # wakes a reader waiting for the next event

    @property
    def streams(self) -> int:
        """How many streams are open."""
        return len(self._streams)

    async def follow(self, stream: Stream) -> AsyncIterator[list[Message]]:
        """``stream``'s events in batches as they come (an empty batch: nothing for a while, time
        for a keep-alive), until it must end (:attr:`Stream.ended` says why)."""
        self._streams.add(stream)
        try:
            while stream.ended is None:
                try:
                    first = await asyncio.wait_for(stream.queue.get(), KEEP_ALIVE_S)
                except TimeoutError:
                    yield []
                    continue
                batch = [first]
                while not stream.queue.empty():
                    batch.append(stream.queue.get_nowait())
                if self._commit is not None:
                    await self._commit()
                yield [message for message in batch if message is not None]
        finally:
            self._streams.discard(stream)

