"""The sandbox clock: the one place the sandbox reads the time from, and a clock QA can move.

Moving it (advance or set) wakes every :meth:`Clock.sleep` at once, so OTP expiry, webhook
retries and scheduled transitions happen when the sandbox time says, not the wall clock.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

# Where the sandbox time may be moved to: certificates, time-stamps and dates can still be made there
# (datetime and X.509 stop at year 9999, and a one-shot certificate is valid for a day after signing).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


class ClockRangeError(ValueError):
    """A move that would take the sandbox time outside [EARLIEST, LATEST]."""


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
        """Move the time by ``seconds`` (back if negative); :class:`ClockRangeError` if it would leave the range."""
        try:
            offset = self._offset + timedelta(seconds=seconds)
        except OverflowError:
            raise ClockRangeError(self._range_text()) from None
        self._use(offset)

    def set(self, moment: datetime) -> None:
        """Set the time (timezone-aware); :class:`ClockRangeError` if it is outside the range."""
        self._use(moment - datetime.now(UTC))

    def _use(self, offset: timedelta) -> None:
        try:
            moment = datetime.now(UTC) + offset
        except OverflowError:
            moment = None
        if moment is None or not EARLIEST <= moment <= LATEST:
            raise ClockRangeError(self._range_text())
        self._offset = offset
        self._wake_sleepers()

    @staticmethod
    def _range_text() -> str:
        return f"the sandbox clock stays between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}"

    @property
    def offset(self) -> timedelta:
        return self._offset

    def set_offset(self, offset: timedelta) -> None:
        """Run ``offset`` ahead of the wall clock (a restored clock)."""
        self._offset = offset
        self._wake_sleepers()

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
