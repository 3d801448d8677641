"""The sandbox clock: the one place the sandbox reads the time from, and a clock QA can move.

Moving it (advance or set) wakes every :meth:`Clock.sleep` at once, so OTP expiry, webhook
retries and scheduled transitions happen when the sandbox time says, not the wall clock.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta


class Clock:
    """Wall-clock time in UTC plus an offset QA controls."""

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start
        self._offset = timedelta(0)
        self._moved = asyncio.Event()
        self.reset()

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def reset(self) -> None:
        """Back to ``start`` (or the wall clock)."""
        self._offset = (self._start - datetime.now(UTC)) if self._start else timedelta(0)
        self._wake_sleepers()

    def advance(self, seconds: float) -> None:
        self._offset += timedelta(seconds=seconds)
        self._wake_sleepers()

    def set(self, moment: datetime) -> None:
        self._offset = moment - datetime.now(UTC)
        self._wake_sleepers()

    @property
    def offset(self) -> timedelta:
        return self._offset

    async def sleep(self, seconds: float) -> None:
        """Wait until the sandbox time is ``seconds`` later than now."""
        due = self.now() + timedelta(seconds=seconds)
        while (remaining := (due - self.now()).total_seconds()) > 0:
            moved = self._moved
            try:
                await asyncio.wait_for(moved.wait(), timeout=remaining)
            except TimeoutError:
                continue

    def _wake_sleepers(self) -> None:
        self._moved.set()
        self._moved = asyncio.Event()


def parse_time(value: str) -> datetime:
    """An ISO 8601 time (``Z`` allowed); without a zone it is UTC. Raises ValueError."""
    moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
