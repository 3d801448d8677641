"""``oneshot-mock tail``: follow a sandbox's live events (``GET /_mock/events``) in a terminal, one
readable line each. The standard library only (and the event kinds): it runs beside a sandbox, often
in another environment."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, BinaryIO

NAMESPACE_HEADER = "X-Mock-Namespace"


class TailError(Exception):
    """The stream could not be followed: the sandbox is not reachable, or refused the call."""


def events_url(base_url: str, pk: int | None, kinds: str | None) -> str:
    """The event stream's URL for these filters."""
    query = urllib.parse.urlencode({name: value for name, value in (("pk", pk), ("kind", kinds)) if value})
    return f"{base_url.rstrip('/')}/_mock/events" + (f"?{query}" if query else "")


def follow(url: str, show: Callable[[str], None], *, namespace: str | None = None, admin_token: str | None = None,
           count: int | None = None) -> int:
    """Show a line for each event at ``url`` until ``count`` were shown or the stream ends; how many were."""
    headers = {"Accept": "text/event-stream"}
    if namespace:
        headers[NAMESPACE_HEADER] = namespace
    if admin_token:
        headers["Authorization"] = f"Bearer {admin_token}"
    try:
        stream = urllib.request.urlopen(urllib.request.Request(url, headers=headers))
    except urllib.error.HTTPError as refused:
        raise TailError(f"{url}: {refused.code} {_reason(refused.read())}") from None
    except (urllib.error.URLError, OSError) as fault:
        raise TailError(f"cannot reach {url}: {getattr(fault, 'reason', fault)}") from None
    shown = 0
    with stream:
        for kind, data in _events(stream):
            if kind == "end":
                break
            show(line(kind, data))
            shown += 1
            if count is not None and shown >= count:
                break
    return shown


def _reason(body: bytes) -> str:
    try:
        return str(json.loads(body).get("error", ""))
    except (ValueError, AttributeError):
        return body.decode(errors="replace")[:200]


def _events(stream: BinaryIO) -> Iterator[tuple[str, dict[str, Any]]]:
    """The (event, data) pairs of a Server-Sent Events stream; comments and ids are skipped."""
    kind, data = "message", []
    for raw in stream:
        text = raw.decode("utf-8").rstrip("\r\n")
        if not text:
            if data:
                yield kind, json.loads("\n".join(data))
            kind, data = "message", []
        elif text.startswith("event:"):
            kind = text[len("event:"):].strip()
        elif text.startswith("data:"):
            data.append(text[len("data:"):].strip())


def line(kind: str, data: dict[str, Any]) -> str:
    """One event as a line: its time, kind, request pk and what happened."""
    pk = data.get("pk")
    head = f"{_time(data)} {kind:8} {pk if pk is not None else '-':>8} "
    if kind == "status":
        if "certificate_revoked" in data:
            return head + f"certificate {data['certificate_revoked']} revoked"
        return head + (f"{data['previous']} -> {data['status']}" if data.get("previous") else data["status"])
    if kind == "sms":
        fate = "dropped" if data["delivered_at"] is None else (
            "" if data["delivered_at"] == data["sent_at"] else f"delivered at {data['delivered_at']}")
        return head + f"{data['channel']} to {data['to']}: code {data['otp']}" + (f" ({fate})" if fate else "")
    if kind == "webhook":
        outcome = f"HTTP {data['http_status']}" if data["http_status"] is not None else data["error"]
        return head + f"{data['event']} -> {data['target']}: {outcome} in {data['ms']} ms"
    if kind == "scenario":
        return head + f"{', '.join(data['scenarios'])} fired on {data['operation']}"
    if kind == "clock":
        return head + f"now {data['now']} (offset {data['offset_s']:+.0f} s)"
    return head + json.dumps(data)


def _time(data: dict[str, Any]) -> str:
    moment = data.get("at")
    try:
        return datetime.fromisoformat(moment).strftime("%H:%M:%S") if moment else "--:--:--"
    except ValueError:
        return "--:--:--"
