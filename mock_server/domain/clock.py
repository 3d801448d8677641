"""The sandbox clock: the one place the sandbox reads the time from."""

from __future__ import annotations

from datetime import UTC, datetime


class Clock:
    """Wall-clock time in UTC; every timestamp the sandbox records comes from here."""

    def now(self) -> datetime:
        return datetime.now(UTC)
