"""One-time passwords and the SMS outbox they are "sent" to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from mock_server.domain.clock import Clock
from mock_server.domain.ids import RandomSource

MESSAGES = {
    "ES": "Su código de confirmación para la firma es {otp}. No lo comparta con nadie.",
    "EN": "Your signature confirmation code is {otp}. Do not share it with anyone.",
    "PL": "Twój kod potwierdzający podpis to {otp}. Nie udostępniaj go nikomu.",
}
CHANNELS = ("sms", "whatsapp")


@dataclass(frozen=True)
class OutboxMessage:
    """An SMS (or WhatsApp message) the sandbox would have sent."""

    request: int
    to: str
    channel: str
    text: str
    otp: str
    sent_at: datetime


@dataclass
class _Otp:
    code: str
    issued_at: datetime
    failed_attempts: int = 0


@dataclass(frozen=True)
class OtpPolicy:
    """How long codes live, how often they may be resent, how many tries they take."""

    ttl: timedelta = timedelta(minutes=5)
    resend_interval: timedelta = timedelta(minutes=1)
    max_attempts: int = 3
    fixed_code: str | None = None


class OtpDesk:
    """Issues, sends and checks OTPs."""

    def __init__(self, rng: RandomSource, clock: Clock, policy: OtpPolicy) -> None:
        self._rng = rng
        self._clock = clock
        self.policy = policy
        self._codes: dict[int, _Otp] = {}
        self.outbox: list[OutboxMessage] = []

    def reset(self) -> None:
        self._codes.clear()
        self.outbox.clear()

    def too_soon(self, request: int) -> bool:
        """Whether a code for ``request`` was issued less than the resend interval ago."""
        current = self._codes.get(request)
        return current is not None and self._clock.now() - current.issued_at < self.policy.resend_interval

    def issue(self, request: int, phone: str, channel: str, language: str) -> OutboxMessage:
        """Create a code for ``request`` (replacing any earlier one) and put it in the outbox."""
        now = self._clock.now()
        code = self.policy.fixed_code or self._rng.digits(6)
        self._codes[request] = _Otp(code=code, issued_at=now)
        text = MESSAGES.get(language.upper(), MESSAGES["ES"]).format(otp=code)
        message = OutboxMessage(request, phone, channel, text, code, now)
        self.outbox.append(message)
        return message

    def redeem(self, request: int, code: str) -> bool:
        """True (and the code is used up) when ``code`` is the live code of ``request``.

        A wrong code counts as an attempt; after ``max_attempts`` the code is dead.
        """
        current = self._codes.get(request)
        if current is None:
            return False
        if self._clock.now() - current.issued_at > self.policy.ttl:
            del self._codes[request]
            return False
        if code != current.code:
            current.failed_attempts += 1
            if current.failed_attempts >= self.policy.max_attempts:
                del self._codes[request]
            return False
        del self._codes[request]
        return True

    def messages(self, request: int | None = None) -> list[OutboxMessage]:
        """The outbox, oldest first, optionally for one request."""
        return [m for m in self.outbox if request is None or m.request == request]
