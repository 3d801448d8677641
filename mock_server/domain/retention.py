"""How long finished requests stay: a long-running sandbox keeps the newest, not every one ever made.

A request is finished once it is ISSUED or CANCELLED (refused, cancelled, or its signing failed):
nothing can change it any more. The newest ``max_requests`` finished requests stay, and none older
than ``max_age`` in sandbox time; the rest go, oldest first, with their documents, SMS and webhook
log. A finished request something still waits on (a webhook to deliver, a signing to resume) stays
until that is done.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from mock_server.domain.model import SignatureRequest, Status

FINISHED = frozenset({Status.ISSUED, Status.CANCELLED})
# Eviction runs once the count passes the bound by this share: the outbox and the webhook log are
# filtered once per batch rather than once per request.
_SLACK = 0.1


@dataclass(frozen=True)
class RetentionPolicy:
    """The bounds on finished requests (None: no bound)."""

    max_requests: int | None = 1000
    max_age: timedelta | None = None


class Retention:
    """The finished requests in the order they finished, and which of them are due to go."""

    def __init__(self, policy: RetentionPolicy) -> None:
        self.policy = policy
        self._finished: OrderedDict[int, datetime] = OrderedDict()
        self._holds: list[Callable[[int], bool]] = []

    def hold_while(self, busy: Callable[[int], bool]) -> None:
        """Keep any request for which ``busy(pk)`` is true (a module with work pending on it)."""
        self._holds.append(busy)

    def reset(self, requests: Iterable[SignatureRequest] = ()) -> None:
        """Forget everything, then take the finished ones of ``requests`` (a restored state)."""
        self._finished.clear()
        finished = [r for r in requests if r.status in FINISHED and r.history]
        for request in sorted(finished, key=lambda r: r.history[-1].at):
            self._finished[request.pk] = request.history[-1].at

    def finished(self, pk: int, at: datetime) -> None:
        """Note that request ``pk`` reached a final status at ``at``."""
        self._finished[pk] = at
        self._finished.move_to_end(pk)

    def due(self, now: datetime) -> list[int]:
        """The finished requests to evict now, oldest first; they are no longer tracked."""
        policy = self.policy
        limit = policy.max_requests
        over_count = limit is not None and len(self._finished) > limit + int(limit * _SLACK)
        oldest = next(iter(self._finished.values()), None)
        over_age = policy.max_age is not None and oldest is not None and oldest < now - policy.max_age
        if not (over_count or over_age):
            return []
        excess = len(self._finished) - limit if over_count and limit is not None else 0
        cutoff = now - policy.max_age if policy.max_age is not None else None
        due: list[int] = []
        for pk, at in self._finished.items():
            expired = cutoff is not None and at < cutoff
            if len(due) >= excess and not expired:
                break
            if not any(busy(pk) for busy in self._holds):
                due.append(pk)
        for pk in due:
            del self._finished[pk]
        return due
