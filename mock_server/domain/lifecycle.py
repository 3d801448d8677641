"""Which status may follow which, and the one function that moves a request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from mock_server.domain.model import IssuedCertificate, SignatureRequest, Status, StatusChange

S = Status
ALLOWED: dict[Status | None, frozenset[Status]] = {
    None: frozenset({S.CREATED, S.VIDEOPENDING}),
    S.CREATED: frozenset({S.ENROLLREADY, S.CANCELLED}),
    S.VIDEOPENDING: frozenset({S.VIDEOREVIEW, S.VIDEOINCOMPLETE, S.VIDEOERROR, S.CANCELLED}),
    S.VIDEOINCOMPLETE: frozenset({S.VIDEOREVIEW, S.VIDEOERROR, S.CANCELLED}),
    S.VIDEOREVIEW: frozenset({S.ENROLLREADY, S.CANCELLED}),
    S.VIDEOERROR: frozenset({S.CANCELLED}),
    S.ENROLLREADY: frozenset({S.ISSUED, S.CANCELLED}),
    S.ISSUED: frozenset(),
    S.CANCELLED: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A status change the lifecycle forbids: a sandbox bug, never a client error."""


def transition(request: SignatureRequest, status: Status, at: datetime) -> StatusChange:
    """Move ``request`` to ``status`` and record the change in its history."""
    previous = request.history[-1].status if request.history else None
    if status not in ALLOWED[previous]:
        raise IllegalTransition(f"request {request.pk}: {previous} -> {status}")
    change = StatusChange(status=status, previous=previous, at=at)
    request.history.append(change)
    request.status = status
    return change


@dataclass(frozen=True)
class StatusChanged:
    """A request moved to another status."""

    request: SignatureRequest
    change: StatusChange


@dataclass(frozen=True)
class CertificateRevoked:
    """A request's one-shot certificate was revoked."""

    request: SignatureRequest
    certificate: IssuedCertificate


@dataclass(frozen=True)
class SandboxReset:
    """Everything was put back to the start state."""


@dataclass(frozen=True)
class RequestsEvicted:
    """Finished requests went, past the retention: whatever is kept about them goes too."""

    pks: tuple[int, ...]


@dataclass(frozen=True)
class ContractSigned:
    """A request's contract was signed, on its first fetch: a read that changed the state."""

    request: SignatureRequest


@dataclass(frozen=True)
class SmsSent:
    """An OTP message went to the outbox (``delivered_at`` None: a scenario dropped it)."""

    request_pk: int
    to: str
    channel: str
    otp: str
    sent_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True)
class WebhookAttempted:
    """A webhook delivery was tried: the receiver's HTTP status, or why there was none."""

    request_pk: int
    event_id: str
    event: str
    target: str
    at: datetime
    http_status: int | None
    error: str | None
    ms: float


@dataclass(frozen=True)
class ScenarioFired:
    """Rules of loaded scenarios fired on a call."""

    request_pk: int | None
    operation: str
    scenarios: tuple[str, ...]


@dataclass(frozen=True)
class ClockMoved:
    """The sandbox clock was moved (advanced, set back, set)."""

    now: datetime
    offset_s: float


Event = (StatusChanged | CertificateRevoked | SandboxReset | RequestsEvicted | ContractSigned | SmsSent
         | WebhookAttempted | ScenarioFired | ClockMoved)


class EventBus:
    """Hands every domain event, in order, to whoever subscribed (the webhook dispatcher, the
    live event stream); a listener ignores the kinds it has no use for."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[Event], None]] = []

    def subscribe(self, listener: Callable[[Event], None]) -> None:
        self._listeners.append(listener)

    def publish(self, event: Event) -> None:
        for listener in self._listeners:
            listener(event)
