"""Where scenario rules meet HTTP: matching each call, delays, canned answers, transport faults."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any

from aiohttp import web

from mock_server.api.keys import notes_of, request_pk_of, sandbox_of, scenarios_of
from mock_server.api.parsing import media_type
from mock_server.domain.errors import status_line, vendor_error
from mock_server.domain.ids import parse_number
from mock_server.domain.lifecycle import ScenarioFired
from mock_server.domain.model import Status
from mock_server.domain.scenarios import CURRENT_EFFECTS, HEADER, Call, Effects, effects_of

log = logging.getLogger(__name__)
_FORM_TYPES = ("application/json", "application/x-www-form-urlencoded", "application/octet-stream", "")
_SLOW_CHUNKS = 10
_SLOW_PAUSE_S = 0.2


def known_operations(app: web.Application) -> frozenset[str]:
    """What a scenario rule's ``match.operation`` can name: the handler of each route outside ``/_mock``."""
    return frozenset(route.handler.__name__ for route in app.router.routes()
                     if route.resource is not None and not route.resource.canonical.startswith("/_mock"))


@web.middleware
async def scenario_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Fire the loaded scenarios' rules for this call, then answer or hand effects to the domain."""
    book = scenarios_of(request)
    route = request.match_info.route
    if route.resource is None or request.path.startswith("/_mock"):
        return await handler(request)
    operation = route.handler.__name__
    if not book.may_fire(operation, request.headers.get(HEADER, "")):
        return await handler(request)
    call = await _call(request, operation, book.wants_body())
    rules = book.fire(call)
    if not rules:
        return await handler(request)
    sandbox_of(request).events.publish(ScenarioFired(call.request_pk, operation,
                                                     tuple(dict.fromkeys(rule.scenario for rule in rules))))
    fired = [rule.then for rule in rules]

    delays = [then["delay_ms"] for then in fired if "delay_ms" in then]
    for delay in delays:
        low, high = delay if isinstance(delay, list) else (delay, delay)
        await asyncio.sleep(sandbox_of(request).rng.integer(low, high) / 1000)
    for then in fired:
        if "error" in then:
            raise vendor_error(then["error"], pk=call.request_pk or "", **call.fields)
        if "respond" in then:
            return _canned(then["respond"])
    fault = next((then["fault"] for then in fired if "fault" in then), None)
    if fault in ("connection_reset", "empty_response", "malformed_json"):
        return _fault(request, fault)

    effects = effects_of(fired)
    token = CURRENT_EFFECTS.set(effects)
    try:
        response = await handler(request)
    finally:
        CURRENT_EFFECTS.reset(token)
    _schedule_transition(request, effects, call.request_pk)
    if fault == "slow_body" and isinstance(response, web.Response):
        return await _slowly(request, response)
    return response


async def _call(request: web.Request, operation: str, with_body: bool) -> Call:
    pk = parse_number(request_pk_of(request))
    fields: dict[str, str] = {}
    sandbox = sandbox_of(request)
    found = sandbox.state.requests.get(pk) if pk is not None else None
    if found is not None:
        fields.update({k: str(v) for k, v in vars(found.identity).items()})
        fields["registration_authority"] = str(found.registration_authority)
    body_type = media_type(request)
    if with_body and body_type in _FORM_TYPES and request.can_read_body:
        fields.update(await _body_fields(request, body_type))
    requested = frozenset(n.strip() for n in request.headers.get(HEADER, "").split(",") if n.strip())
    return Call(operation, request.method, request.path, fields, pk, requested)


async def _body_fields(request: web.Request, body_type: str) -> dict[str, str]:
    """JSON or url-encoded fields (the body stays readable: aiohttp caches it)."""
    raw = await request.read()
    if body_type == "application/x-www-form-urlencoded":
        return {k: str(v) for k, v in (await request.post()).items()}
    try:
        body = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return {}  # the handler answers the malformed body itself
    return {k: str(v) for k, v in body.items()} if isinstance(body, dict) else {}


def _canned(answer: dict[str, Any]) -> web.Response:
    """A ``respond`` rule's answer: its details in the envelope, its JSON body, or its bytes."""
    status, headers = answer["status"], answer.get("headers")
    if "details" in answer:
        return web.json_response({"status": status_line(status), "details": answer["details"]}, status=status,
                                 headers=headers)
    if "body" in answer:
        return web.json_response(answer["body"], status=status, headers=headers,
                                 content_type=answer.get("content_type", "application/json"))
    return web.Response(body=base64.b64decode(answer["body_base64"]), status=status, headers=headers,
                        content_type=answer.get("content_type", "application/octet-stream"))


def _fault(request: web.Request, fault: str) -> web.StreamResponse:
    if fault == "connection_reset":
        if request.transport is not None:
            request.transport.abort()  # RST: the client sees the connection reset, no answer at all
        return web.Response(status=200, body=b"")
    if fault == "empty_response":
        return web.Response(status=200, body=b"")
    return web.Response(status=200, body=b'{"status": "200 OK", "details": ', content_type="application/json")


async def _slowly(request: web.Request, response: web.Response) -> web.StreamResponse:
    """The same answer, trickled out over about two seconds."""
    body = response.body if isinstance(response.body, bytes) else b""
    slow = web.StreamResponse(status=response.status, headers=response.headers)
    slow.content_length = len(body)
    await slow.prepare(request)
    step = max(1, -(-len(body) // _SLOW_CHUNKS))
    for start in range(0, len(body), step):
        await slow.write(body[start:start + step])
        await asyncio.sleep(_SLOW_PAUSE_S)
    await slow.write_eof()
    return slow


def _schedule_transition(request: web.Request, effects: Effects, pk: int | None) -> None:
    if effects.transition is None:
        return
    sandbox = sandbox_of(request)
    target_pk = pk if pk is not None else notes_of(request).request_pk
    found = sandbox.state.requests.get(target_pk) if target_pk is not None else None
    if found is None:
        log.warning("scenario transition with no request to move (%s %s)", request.method, request.path)
        return
    status, delay = Status(effects.transition["status"]), float(effects.transition.get("after_s", 0))

    async def later() -> None:
        await sandbox.clock.sleep(delay)
        try:
            sandbox.move(found, status)
        except RuntimeError as refused:
            log.warning("scenario transition refused: %s", refused)

    sandbox.spawn(later())
