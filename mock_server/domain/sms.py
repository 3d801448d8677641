"""One-time passwords and the SMS outbox they are "sent" to."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from mock_server.domain.changes import ChangeLog
from mock_server.domain.clock import Clock
from mock_server.domain.ids import RandomSource
from mock_server.domain.scenarios import current_effects

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
    delivered_at: datetime | None  # None: dropped, never reaches the phone


@dataclass
class IssuedOtp:
    """A live code of a request."""

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
    outbox_cap: int = 10_000  # oldest messages go first past this


class OtpDesk:
    """Issues, sends and checks OTPs."""

    def __init__(self, rng: RandomSource, clock: Clock, policy: OtpPolicy, changes: ChangeLog) -> None:
        self._rng = rng
        self._changes = changes
        self._clock = clock
        self.policy = policy
        self._codes: dict[int, IssuedOtp] = {}
        self.outbox: list[OutboxMessage] = []
        # The outbox by request, oldest first: clients read their OTP from it after every send.
        self._by_request: dict[int, list[OutboxMessage]] = {}

    def reset(self) -> None:
        self._codes.clear()
        self.outbox.clear()
        self._by_request.clear()

    def code_of(self, request: int) -> IssuedOtp | None:
        """The live code of ``request``, if any."""
        return self._codes.get(request)

    def restore(self, codes: dict[int, IssuedOtp], outbox: list[OutboxMessage]) -> None:
        """Take back what :meth:`snapshot` gave."""
        self._codes, self.outbox = dict(codes), []
        self._by_request.clear()
        self._append(list(outbox))

    def forget(self, requests: set[int]) -> None:
        """Drop the codes and messages of ``requests`` (evicted)."""
        for request in requests:
            self._codes.pop(request, None)
            self._by_request.pop(request, None)
        self.outbox = [m for m in self.outbox if m.request not in requests]

    def too_soon(self, request: int) -> bool:
        """Whether a code for ``request`` was issued less than the resend interval ago."""
        current = self._codes.get(request)
        return current is not None and self._clock.now() - current.issued_at < self.policy.resend_interval

    def issue(self, request: int, phone: str, channel: str, language: str) -> OutboxMessage:
        """Create a code for ``request`` (replacing any earlier one) and put it in the outbox.

        A scenario may drop the message, send it twice or deliver it late.
        """
        now = self._clock.now()
        code = self.policy.fixed_code or self._rng.digits(6)
        self._codes[request] = IssuedOtp(code=code, issued_at=now)
        text = MESSAGES.get(language.upper(), MESSAGES["ES"]).format(otp=code)
        effect = current_effects().sms
        delivered_at: datetime | None = now
        if effect == "drop":
            delivered_at = None
        elif isinstance(effect, dict):
            delivered_at = now + timedelta(seconds=effect["delay_s"])
        message = OutboxMessage(request, phone, channel, text, code, now, delivered_at)
        self._append([message, message] if effect == "duplicate" else [message])
        return message

    def _append(self, messages: list[OutboxMessage]) -> None:
        self.outbox.extend(messages)
        for message in messages:
            self._by_request.setdefault(message.request, []).append(message)
        excess = max(0, len(self.outbox) - self.policy.outbox_cap)
        for message in self.outbox[:excess]:
            self._changes.request(message.request)
            own = self._by_request[message.request]
            del own[0]  # the oldest message of its request, as it is the oldest of all
            if not own:
                del self._by_request[message.request]
        del self.outbox[:excess]

    def redeem(self, request: int, code: str) -> bool:
        """True (and the code is used up) when ``code`` is the live code of ``request``.

        A wrong code counts as an attempt; after ``max_attempts`` the code is dead.
        """
        current = self._codes.get(request)
        if current is None or current_effects().otp_always_invalid:
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

    def messages(self, request: int | None = None, *, undelivered: bool = False) -> list[OutboxMessage]:
        """The messages phones received so far (with ``undelivered``, also the dropped and the
        late ones), oldest first, optionally for one request."""
        now = self._clock.now()
        source = self.outbox if request is None else self._by_request.get(request, [])
        return [m for m in source if undelivered or (m.delivered_at is not None and m.delivered_at <= now)]
