"""Webhooks: every status change of a request with a target, delivered, retried and logged.

Per request, deliveries are strictly ordered: event N+1 waits until event N succeeded or
was given up. Failures retry on an exponential schedule; every attempt is kept for the
control API. Payloads follow the vendor's legacy or newer (Namirial) format.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from cryptography import x509

from mock_server.domain.lifecycle import (
    CertificateRevoked,
    Event,
    RequestsEvicted,
    SandboxReset,
    StatusChanged,
    WebhookAttempted,
)
from mock_server.domain.model import IssuedCertificate, SignatureRequest, Status
from mock_server.domain.ports import WebhookSource
from mock_server.domain.scenarios import current_effects

log = logging.getLogger(__name__)

RETRY_SCHEDULE = (1.0, 5.0, 30.0, 120.0, 600.0)
_NEW_EVENT_TYPES = {
    Status.CREATED: "REQUEST_CREATED",
    Status.VIDEOPENDING: "REQUEST_CREATED",
    Status.ENROLLREADY: "REQUEST_APPROVED",
    Status.ISSUED: "REQUEST_ENROLLED",
    Status.VIDEOREVIEW: "VIDEOID_UPDATED",
    Status.VIDEOINCOMPLETE: "VIDEOID_UPDATED",
    Status.VIDEOERROR: "VIDEOID_FAILED",
}


@dataclass
class Attempt:
    """One POST of an event to its target."""

    at: datetime
    target: str
    status: int | None
    error: str | None
    latency_ms: float

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class WebhookEvent:
    """An event for one target, with every delivery attempt made so far."""

    id: str
    request: int
    name: str
    target: str
    format: str
    body: bytes
    created_at: datetime
    state: str = "pending"  # then "delivered", "failed" once every retry is spent, or "dropped"
    attempts: list[Attempt] = field(default_factory=list)
    effect: Any = None  # a scenario's webhook action for this event


@dataclass(frozen=True)
class WebhookSettings:
    """How deliveries are made."""

    secret: str | None = None
    default_format: str = "legacy"
    retry_scale: float = 1.0
    timeout: float = 5.0
    drain_seconds: float = 5.0
    log_cap: int = 10_000  # past this, the oldest finished events leave the log (pending ones never do)


class WebhookDispatcher:
    """Subscribes to the sandbox's events and delivers them in the background."""

    def __init__(self, sandbox: WebhookSource, settings: WebhookSettings) -> None:
        self._sandbox = sandbox
        self.settings = settings
        self.log: list[WebhookEvent] = []
        self._by_request: dict[int, list[WebhookEvent]] = {}
        self._queues: dict[int, deque[WebhookEvent]] = {}
        self._workers: dict[int, asyncio.Task] = {}
        self._wake = asyncio.Event()
        # When each event waiting for a retry tries next (sandbox time): not saved, as a restart
        # starts every pending delivery over.
        self._retry_at: dict[str, datetime] = {}
        self._arrivals: dict[int, asyncio.Event] = {}
        self._session: aiohttp.ClientSession | None = None
        sandbox.events.subscribe(self.on_event)
        sandbox.retention.hold_while(lambda pk: bool(self._queues.get(pk)))

    # Events -> queued deliveries ------------------------------------------------

    def on_event(self, event: Event) -> None:
        """Queue ``event`` for the target of its request (called synchronously by the sandbox)."""
        if isinstance(event, SandboxReset):
            self._reset()
            return
        if isinstance(event, RequestsEvicted):
            gone = set(event.pks)
            self.log = [e for e in self.log if e.request not in gone]
            for pk in gone:
                self._by_request.pop(pk, None)
            return
        if not isinstance(event, StatusChanged | CertificateRevoked):
            return
        target, fmt = self._target(event.request)
        if target is None:
            return
        name, payload = _payload(event, fmt, self._sandbox.clock.now())
        if payload is None:
            return
        queued = WebhookEvent(
            id=self._event_id(event.request, name),
            request=event.request.pk,
            name=name,
            target=target,
            format=fmt,
            body=json.dumps(payload).encode(),
            created_at=self._sandbox.clock.now(),
            effect=current_effects().webhook,
        )
        self.log.append(queued)
        self._by_request.setdefault(queued.request, []).append(queued)
        self._sandbox.changes.request(queued.request)
        self._trim_log()
        if queued.effect == "drop":
            queued.state = "dropped"
            return
        self._queues.setdefault(queued.request, deque()).append(queued)
        self._arrivals.setdefault(queued.request, asyncio.Event()).set()
        self._ensure_worker(queued.request)

    def _event_id(self, request: SignatureRequest, name: str) -> str:
        """The same id for the same event of the same request, whenever it is made: a request
        signed again after a restart from a data dir repeats its events under the ids they had,
        so that a receiver can tell them apart from new ones."""
        settings = self._sandbox.settings
        identity = f"{settings.seed}/{settings.namespace}/{request.pk}/{len(request.history)}/{name}"
        return f"msg_{hashlib.sha256(identity.encode()).hexdigest()[:32]}"

    def _target(self, request: SignatureRequest) -> tuple[str | None, str]:
        """The request's async callback, else its VideoID webhook_url, else its Registration
        Authority's webhook; the RA's format, else the request's (the newer API family's
        requests say "new"), else the sandbox's default."""
        authority = self._sandbox.registration_authority(request.registration_authority)
        fmt = authority.get("webhook_format") or request.webhook_format or self.settings.default_format
        videoid_url = request.videoid.webhook_url if request.videoid else None
        return request.callback or videoid_url or authority.get("webhook_url") or None, fmt

    def _trim_log(self) -> None:
        """Drop the oldest finished events past the cap; pending ones are never lost."""
        excess = len(self.log) - self.settings.log_cap
        if excess <= 0:
            return
        kept = []
        for event in self.log:
            if excess > 0 and event.state != "pending":
                excess -= 1
                self._by_request[event.request].remove(event)
                self._sandbox.changes.request(event.request)
                continue
            kept.append(event)
        self.log = kept

    def _ensure_worker(self, pk: int) -> None:
        if self._session is None or pk in self._workers:
            return  # not started yet: start() picks the queue up
        task = asyncio.get_running_loop().create_task(self._drain_queue(pk))
        self._workers[pk] = task
        task.add_done_callback(lambda _: self._workers.pop(pk, None))

    async def _drain_queue(self, pk: int) -> None:
        queue = self._queues.get(pk)
        while queue:
            if queue[0].effect == "reorder":
                await self._let_next_overtake(pk, queue)
            await self._deliver_with_retries(queue[0])
            queue.popleft()
        self._queues.pop(pk, None)

    async def _let_next_overtake(self, pk: int, queue: deque[WebhookEvent]) -> None:
        """A "reorder" event waits for the next event of its request (or a flush), then goes after it."""
        queue[0].effect = None
        flushed = self._wake
        arrival = self._arrivals.setdefault(pk, asyncio.Event())
        while len(queue) == 1 and not flushed.is_set():
            arrival.clear()
            waits = {asyncio.ensure_future(arrival.wait()), asyncio.ensure_future(flushed.wait())}
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()
        if len(queue) > 1:
            queue[0], queue[1] = queue[1], queue[0]

    async def _deliver_with_retries(self, event: WebhookEvent) -> None:
        try:
            # What the event tells of is saved before a receiver hears of it (a data dir's commit;
            # a sync sign's ISSUED event is made before the sign call's own commit).
            await self._sandbox.commit()
        except Exception:  # a failing disk must not silence webhooks: delivered unsaved, and logged
            log.exception("could not save the state behind webhook %s before delivering it", event.id)
        effect = event.effect if isinstance(event.effect, dict) else {}
        if "delay_s" in effect:
            await self._sandbox.clock.sleep(effect["delay_s"])
        simulated_failures = effect.get("times", 1) if "fail_status" in effect else 0
        for delay in (0.0, *RETRY_SCHEDULE):
            if delay:
                wait = delay * self.settings.retry_scale
                self._retry_at[event.id] = self._sandbox.clock.now() + timedelta(seconds=wait)
                try:
                    await self._sleep(wait)
                finally:
                    self._retry_at.pop(event.id, None)
            if simulated_failures:
                simulated_failures -= 1
                self._record(event, Attempt(self._sandbox.clock.now(), event.target, effect["fail_status"],
                                            "scenario: simulated receiver failure", 0.0))
                continue
            if (await self._attempt(event)).succeeded:
                event.state = "delivered"
                if event.effect == "duplicate":
                    await self._attempt(event)
                return
        event.state = "failed"
        self._sandbox.changes.request(event.request)
        log.warning("webhook %s to %s given up after %d attempts", event.id, event.target, len(event.attempts))

    async def _sleep(self, seconds: float) -> None:
        """Wait for the next retry in sandbox time, or less when someone flushes."""
        waits = {asyncio.ensure_future(self._sandbox.clock.sleep(seconds)), asyncio.ensure_future(self._wake.wait())}
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def _attempt(self, event: WebhookEvent) -> Attempt:
        if self._session is None:
            raise RuntimeError("deliveries only run once start() opened the HTTP session")
        started = time.perf_counter()
        status, error = None, None
        try:
            async with self._session.post(
                event.target, data=event.body, headers=self._headers(event),
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
            ) as response:
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as failure:
            error = f"{type(failure).__name__}: {failure}".strip()
        attempt = Attempt(self._sandbox.clock.now(), event.target, status, error,
                          round((time.perf_counter() - started) * 1000, 1))
        self._record(event, attempt)
        return attempt

    def _record(self, event: WebhookEvent, attempt: Attempt) -> None:
        event.attempts.append(attempt)
        # Marked after each attempt, for the state set right after it too (the same turn of the loop).
        self._sandbox.changes.request(event.request)
        self._sandbox.events.publish(WebhookAttempted(event.request, event.id, event.name, attempt.target,
                                                      attempt.at, attempt.status, attempt.error, attempt.latency_ms))

    def _headers(self, event: WebhookEvent) -> dict[str, str]:
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "webhook-id": event.id, "webhook-timestamp": timestamp}
        if self.settings.secret:
            headers["webhook-signature"] = sign_payload(self.settings.secret, event.id, timestamp, event.body)
        return headers

    # Control ------------------------------------------------------------------------

    def events(self, request: int | None = None) -> list[WebhookEvent]:
        """The logged events, or those of ``request``, oldest first."""
        return list(self.log) if request is None else list(self._by_request.get(request, ()))

    def next_attempt_at(self, event_id: str) -> datetime | None:
        """When the event ``event_id``, waiting for a retry, tries next; None if it is not waiting."""
        return self._retry_at.get(event_id)

    def event(self, event_id: str) -> WebhookEvent | None:
        """The logged event ``event_id``, if the log still holds it."""
        return next((e for e in self.log if e.id == event_id), None)

    async def replay(self, event_id: str) -> Attempt:
        """POST one logged event again, now, whatever its state."""
        event = self.event(event_id)
        if event is None:
            raise LookupError(f"no webhook event {event_id}")
        attempt = await self._attempt(event)
        if attempt.succeeded:
            event.state = "delivered"
        return attempt

    def flush(self) -> int:
        """Wake every delivery waiting for a retry; returns how many events are pending."""
        self._wake.set()
        self._wake = asyncio.Event()
        return sum(len(q) for q in self._queues.values())

    def _reset(self) -> None:
        for task in self._workers.values():
            task.cancel()
        self._workers.clear()
        self._retry_at.clear()
        self._queues.clear()
        self._arrivals.clear()
        self.log.clear()
        self._by_request.clear()

    def pending(self) -> int:
        """How many events wait for delivery."""
        return sum(len(queue) for queue in self._queues.values())

    def restore(self, events: list[WebhookEvent]) -> None:
        """Take back a persisted log; its pending events are queued again, in order."""
        self._reset()
        self.log = list(events)
        for event in self.log:
            self._by_request.setdefault(event.request, []).append(event)
        for event in self.log:
            if event.state == "pending":
                self._queues.setdefault(event.request, deque()).append(event)

    # Lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the HTTP client and start delivering what was queued before (seed file)."""
        self._session = aiohttp.ClientSession()
        for pk in list(self._queues):
            self._ensure_worker(pk)

    async def close(self) -> None:
        """Give pending deliveries a moment, report what is left, stop."""
        if self._workers:
            self.flush()
            await asyncio.wait(list(self._workers.values()), timeout=self.settings.drain_seconds)
        pending = [e.id for queue in self._queues.values() for e in queue]
        if pending:
            log.warning("shutting down with %d webhook deliveries pending: %s", len(pending), ", ".join(pending))
        await self.stop()

    async def stop(self) -> None:
        """Stop delivering at once, whatever is pending (its namespace is gone)."""
        workers = list(self._workers.values())
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        if self._session is not None:
            await self._session.close()


def sign_payload(secret: str, message_id: str, timestamp: str, body: bytes) -> str:
    """The Standard Webhooks signature: ``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body``.

    A ``whsec_``-prefixed secret is base64 (as Standard Webhooks libraries expect); any other
    secret is used as its UTF-8 bytes.
    """
    key = base64.b64decode(secret[len("whsec_"):]) if secret.startswith("whsec_") else secret.encode()
    signed = message_id.encode() + b"." + timestamp.encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def _payload(event: Event, fmt: str, now: datetime) -> tuple[str, dict[str, Any] | None]:
    """The event's name and body in ``fmt``; None when the format has no such event."""
    request = event.request
    if isinstance(event, CertificateRevoked):
        if fmt == "legacy":
            return "CERTIFICATE_REVOKED", None  # the legacy format only knows status changes
        return "CERTIFICATE_REVOKED", _new_payload("CERTIFICATE_REVOKED", request, now, [event.certificate])
    change = event.change
    if fmt == "legacy":
        return change.status.value, {
            "status": change.status.value,
            "date": change.at.strftime("%Y-%m-%dT%H:%M:%S.%f"),
            "previous_status": change.previous.value if change.previous else None,
            "request": request.pk,
            "registration_authority": request.registration_authority,
        }
    event_type = _NEW_EVENT_TYPES.get(change.status)
    if change.status == Status.CANCELLED:
        refused = request.videoid is not None and request.videoid.refused
        event_type = "VIDEOID_REFUSED" if refused else "REQUEST_CANCELED"
    certificates = [request.certificate] if change.status == Status.ISSUED and request.certificate else []
    return str(event_type), _new_payload(str(event_type), request, change.at, certificates)


def _new_payload(event_type: str, request: SignatureRequest, at: datetime,
                 certificates: list[IssuedCertificate]) -> dict[str, Any]:
    return {
        "event_type": event_type,
        "sent_at": at.strftime("%Y%m%d%H%M%S"),
        "request": {
            "status": request.status.value,
            "profile": request.profile,
            "registration_authority": request.registration_authority,
            "scratchcard": request.scratchcard,
            "pk": request.pk,
        },
        "certificates": [_certificate(c) for c in certificates],
    }


def _certificate(certificate: IssuedCertificate) -> dict[str, str]:
    cert = x509.load_der_x509_certificate(certificate.der)
    return {
        "status": "REVOKED" if certificate.revoked_at else "VALID",
        "serial_number": format(certificate.serial, "x"),
        "valid_from": cert.not_valid_before_utc.strftime("%Y%m%d %H:%M:%S"),
        "valid_to": cert.not_valid_after_utc.strftime("%Y%m%d %H:%M:%S"),
    }
