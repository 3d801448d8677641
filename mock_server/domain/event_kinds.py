"""The kinds of live event (``GET /_mock/events?kind=``, ``oneshot-mock tail --kind``). Standard library
only: ``tail`` reads them without importing the rest of the sandbox."""

from __future__ import annotations

# What the stream tells of: status changes, SMS sent, webhook attempts, scenario matches, clock moves.
KINDS = ("status", "sms", "webhook", "scenario", "clock")


def parse_kinds(text: str) -> tuple[str, ...]:
    """Comma-separated event kinds, checked: ``ValueError`` names what is not one."""
    kinds = tuple(dict.fromkeys(kind.strip() for kind in text.split(",") if kind.strip()))
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"expected one or more of {', '.join(KINDS)}, not {', '.join(unknown) or 'none'}")
    return kinds
