"""``GET /_mock/events``: the live events of :mod:`mock_server.domain.live` as Server-Sent Events, for
``oneshot-mock tail`` and the dashboard."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from mock_server.api.control import PREFIX, ControlError
from mock_server.api.keys import CONFIG, FEED, TENANT
from mock_server.api.routing import add
from mock_server.domain.event_kinds import KINDS, parse_kinds
from mock_server.domain.ids import parse_number
from mock_server.domain.live import Feed, Stream


def _frame(event_id: int, kind: str, data: dict[str, Any]) -> bytes:
    return f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(data)}\n\n".encode()


async def events(request: web.Request) -> web.StreamResponse:
    """``GET /_mock/events[?pk=N][&kind=status,sms,...]``: the namespace's live events."""
    try:
        kinds = frozenset(parse_kinds(request.query.get("kind", ",".join(KINDS))))
    except ValueError as fault:
        raise ControlError(400, f"kind: {fault}") from None
    pk = None
    if request.query.get("pk"):
        pk = parse_number(request.query["pk"])
        if pk is None:
            raise ControlError(400, f"pk: a request pk, not {request.query['pk']!r}")
    stream = Stream(request[TENANT].namespace, kinds, pk)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    try:
        await response.write(b": connected\n\n")
        async for batch in request.app[FEED].follow(stream):
            await response.write(b"".join(_frame(*message) for message in batch) or b": keep-alive\n\n")
        await response.write(f"event: end\ndata: {json.dumps({'reason': stream.ended})}\n\n".encode())
    except ConnectionResetError:
        pass  # the reader went
    return response


def setup(app: web.Application, feed: Feed) -> None:
    """The feed, its route when the control API is served, and the end of its streams at shutdown
    (an open stream would otherwise hold a graceful stop back)."""
    app[FEED] = feed

    async def end_streams(_: web.Application) -> None:
        feed.close()

    app.on_shutdown.append(end_streams)
    if app[CONFIG].control_api:
        add(app, "GET", PREFIX + "/events", events)
