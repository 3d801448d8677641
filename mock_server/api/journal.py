"""The request journal over HTTP: what records each call to either API family (called by the
access log's middleware), the ``/_mock/journal`` routes that query it, and the near-miss hints of
an unknown route."""

from __future__ import annotations

import difflib
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from aiohttp import web

from mock_server.api import parsing
from mock_server.api.control import PREFIX, ControlError, owns
from mock_server.api.keys import CONFIG, TENANT, CallNotes
from mock_server.api.routing import add
from mock_server.domain.ids import parse_number
from mock_server.domain.journal import Expectation, Journal, Query, QueryError

FAMILIES = ("/oneshot/api/v1/", "/api/v1/")
NEAR_MISS_HEADER = "X-Mock-Near-Miss"
Parsed = TypeVar("Parsed")
_SMALL_BODY = 64 * 1024  # JSON answers kept up to this size
_PARAMETER = re.compile(r"\{[^}]+\}")
# A path segment that is an id: a pk, a uid, a hex token.
_ID_SEGMENT = re.compile(r"/(\d+|[0-9a-fA-F-]{16,})(?=/|$)")
_NEAR_MISSES_SHOWN = 3


def _family(path: str) -> str | None:
    return next((prefix for prefix in FAMILIES if path.startswith(prefix)), None)


def record(request: web.Request, response: web.StreamResponse, ms: float, notes: CallNotes,
           pk: str | int | None) -> None:
    """Journal a call to either API family in its namespace, once it is answered (the access log's
    middleware calls it: one layer less on every call's path)."""
    tenant = request.get(TENANT)
    if tenant is None or not request.path.startswith(FAMILIES):
        return
    journal = tenant.journal
    route = request.match_info.route
    body_seen = notes.body_seen
    if body_seen is None and request.body_exists:
        # Not read back here: a client still sending would hold the answer back.
        body_seen = {"not_read": True, "content_type": parsing.media_type(request), "size": request.content_length}
    # The raw header: parsing it (response.content_type) was a quarter of the cost of recording.
    content_type = response.headers.get("Content-Type", "")
    journal.add((  # Entry's fields, in order
        journal.next_id(), time.time(), tenant.sandbox.clock.offset, tenant.namespace,
        route.handler.__name__ if route.resource is not None else None,
        request.method, request.path, request.query_string, request.raw_headers, body_seen,
        response.status, content_type, _answer(response, content_type), ms,
        pk if isinstance(pk, int | None) else parse_number(pk), notes.error, notes.near_misses,
    ))


def _answer(response: web.StreamResponse, content_type: str) -> bytes | dict[str, Any]:
    body = response.body if isinstance(response, web.Response) else None
    if not isinstance(body, bytes):
        return {"content_type": content_type.split(";")[0], "streamed": True}
    if content_type.startswith("application/json") and len(body) <= _SMALL_BODY:
        return body  # parsed and redacted when shown
    # Signed PDFs and videos are not kept: a full journal would hold thousands.
    return {"content_type": content_type.split(";")[0], "size": len(body)}


def _family_of_route(path: str) -> str:
    return _family(path) or (PREFIX if owns(path) else "")


def near_misses(app: web.Application, method: str, path: str) -> tuple[str, ...]:
    """The routes of ``path``'s family (a vendor family, the control API, the rest) closest to
    ``method path``, closest first. Ids in the path and parameters in the routes compare as equal
    (``/sing/35247`` is near ``/sign/{pk}``); a route's trailing-slash twin is not listed again."""
    family = _family_of_route(path)
    by_shape: dict[str, str] = {}
    for route in app.router.routes():
        template = route.resource.canonical if route.resource is not None else ""
        if route.method in ("HEAD", "*") or _family_of_route(template) != family or template.endswith("/"):
            continue
        by_shape.setdefault(f"{route.method} {_PARAMETER.sub('{}', template)}", f"{route.method} {template}")
    asked = f"{method} {_ID_SEGMENT.sub('/{}', path.rstrip('/') or '/')}"
    return tuple(by_shape[shape] for shape in difflib.get_close_matches(asked, sorted(by_shape),
                                                                         n=_NEAR_MISSES_SHOWN, cutoff=0.5))


def _tenant_journal(request: web.Request) -> Journal:
    return request[TENANT].journal


def _parsed(parse: Callable[[Mapping[str, Any]], Parsed], given: Mapping[str, Any]) -> Parsed:
    try:
        return parse(given)
    except QueryError as fault:
        raise ControlError(400, str(fault)) from None


async def list_entries(request: web.Request) -> web.Response:
    """``GET /_mock/journal``: the calls the query string's conditions match, oldest first."""
    found = _tenant_journal(request).find(_parsed(Query.parse, request.query))
    limit = parse_number(request.query.get("limit"))
    shown = found[-limit:] if limit else found
    return web.json_response({"entries": [entry.as_json() for entry in shown], "count": len(found)})


async def find_entries(request: web.Request) -> web.Response:
    """``POST /_mock/journal/find``: the calls the body's conditions match (``body`` conditions too)."""
    found = _tenant_journal(request).find(_parsed(Query.parse, await parsing.read_json(request)))
    return web.json_response({"entries": [entry.as_json() for entry in found], "count": len(found)})


async def count_entries(request: web.Request) -> web.Response:
    """``POST /_mock/journal/count``: how many calls the body's conditions match."""
    query = _parsed(Query.parse, await parsing.read_json(request))
    return web.json_response({"count": len(_tenant_journal(request).find(query))})


async def verify_entries(request: web.Request) -> web.Response:
    """``POST /_mock/journal/verify``: whether as many calls as expected match (200 either way)."""
    given = await parsing.read_json(request)
    query, expectation = _parsed(Query.parse, given), _parsed(Expectation.parse, given)
    return web.json_response(_tenant_journal(request).verify(query, expectation))


async def clear_entries(request: web.Request) -> web.Response:
    """``DELETE /_mock/journal``: forget the namespace's calls."""
    _tenant_journal(request).clear()
    return web.json_response({"status": "cleared"})


def setup(app: web.Application) -> None:
    """The journal's control routes, when the control API is served."""
    if app[CONFIG].control_api:
        add(app, "GET", PREFIX + "/journal", list_entries)
        add(app, "DELETE", PREFIX + "/journal", clear_entries)
        add(app, "POST", PREFIX + "/journal/find", find_entries)
        add(app, "POST", PREFIX + "/journal/count", count_entries)
        add(app, "POST", PREFIX + "/journal/verify", verify_entries)
