"""The one seeded random source behind every pk, uid, OTP, serial and fake identity."""

from __future__ import annotations

import random
import uuid

# More digits than any pk, RA or serial the sandbox hands out: such a string names nothing.
_MAX_DIGITS = 18


def parse_number(text: object) -> int | None:
    """``text`` as a non-negative integer when it is ASCII digits that could name something (a pk,
    an RA), else None: a huge or exotic string never reaches ``int()`` and its digit limit."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text if 0 <= text < 10**_MAX_DIGITS else None
    if not isinstance(text, str) or not (0 < len(text) <= _MAX_DIGITS and text.isascii() and text.isdigit()):
        return None
    return int(text)


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
