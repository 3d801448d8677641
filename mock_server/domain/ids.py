"""The one seeded random source behind every pk, uid, OTP, serial and fake identity."""

from __future__ import annotations

import random
import uuid


class RandomSource:
    """Deterministic for a given seed; :meth:`reset` replays the same sequence."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._rng = random.Random(seed)

    def reset(self) -> None:
        self._rng = random.Random(self.seed)

    def getstate(self) -> tuple:
        """Where the sequence stands (for persistence)."""
        return self._rng.getstate()

    def setstate(self, state: tuple) -> None:
        """Continue the sequence from ``state``."""
        self._rng.setstate(state)

    def integer(self, low: int, high: int) -> int:
        """Uniform in ``[low, high]``."""
        return self._rng.randint(low, high)

    def uuid(self) -> str:
        """A version-4 UUID with dashes (document and image uids)."""
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def hex_uid(self) -> str:
        """32 hex digits without dashes (token and metadata uids)."""
        return uuid.UUID(int=self._rng.getrandbits(128), version=4).hex

    def digits(self, count: int) -> str:
        """A string of ``count`` decimal digits (OTPs, scratchcards)."""
        return "".join(str(self._rng.randrange(10)) for _ in range(count))

    def serial(self) -> int:
        """A positive 63-bit integer for certificate and time-stamp serial numbers."""
        return self._rng.getrandbits(63) | 1
