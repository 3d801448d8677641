"""The control API under ``/_mock/``: what a test or a QA person inspects and drives."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiohttp import web

from mock_server import __version__
from mock_server.api import parsing
from mock_server.api.faults import known_operations
from mock_server.api.keys import FEED, TENANT, TENANTS, across_namespaces, sandbox_of, scenarios_of, webhooks_of
from mock_server.api.routing import add
from mock_server.domain import views
from mock_server.domain.clock import ClockRangeError, parse_time
from mock_server.domain.errors import CATALOGUE, VendorError, status_line
from mock_server.domain.ids import parse_number
from mock_server.domain.model import SignatureRequest
from mock_server.domain.scenarios import Scenario, ScenarioError, check_operations, parse_scenario
from mock_server.domain.service import Sandbox
from mock_server.domain.tenancy import DEFAULT, NamespaceRefused
from mock_server.domain.webhooks import Attempt, WebhookEvent
from mock_server.storage import archive
from mock_server.storage.rows import load_namespace, namespace_rows
from mock_server.storage.schema import DataDirError

PREFIX = "/_mock"
# A request's dashboard page; the VideoID link page links to it too.
DASHBOARD_REQUEST = PREFIX + "/dashboard/requests/{pk}"


def namespace_query(namespace: str) -> dict[str, str]:
    """The query that addresses ``namespace`` on a ``/_mock/`` URL: none for the default one."""
    return {"namespace": namespace} if namespace != DEFAULT else {}


def owns(path: str) -> bool:
    """Whether ``path`` is the control API's: ``/_mock`` itself (the dashboard) or under ``/_mock/``."""
    return path == PREFIX or path.startswith(PREFIX + "/")


class ControlError(Exception):
    """A control API fault, rendered as ``{"error": ...}``."""

    def __init__(self, http_status: int, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status


def render_error(error: VendorError) -> web.Response:
    """Catalogue errors reaching the control API (unknown routes, bodies) as plain JSON."""
    return web.json_response({"error": error.details, "status": error.http_status}, status=error.http_status)


async def health(request: web.Request) -> web.Response:
    sandbox = sandbox_of(request)
    return web.json_response({
        "status": "ok",
        "version": __version__,
        "namespace": request[TENANT].namespace,
        "seed": sandbox.rng.seed,
        "requests": len(sandbox.state.requests),
        "time": sandbox.clock.now().isoformat(),
        "event_streams": request.app[FEED].streams,
    })


async def reset(request: web.Request) -> web.Response:
    sandbox_of(request).reset()
    return web.json_response({"status": "reset", "namespace": request[TENANT].namespace})


async def export_state(request: web.Request) -> web.Response:
    """The namespace's whole state as a zip (:mod:`mock_server.storage.archive`)."""
    tenant = request[TENANT]
    tables, blobs = namespace_rows(tenant)  # on the loop: a consistent snapshot
    filename = f"oneshot-mock-{tenant.namespace or 'default'}.zip"
    # Zipping every blob takes as long as the namespace is big: not on the loop.
    body = await asyncio.to_thread(archive.pack, archive.Archive(tenant.namespace, tables, blobs))
    return web.Response(body=body,
                        content_type=archive.MEDIA_TYPE,
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})


async def import_state(request: web.Request) -> web.Response:
    """Replace the namespace's state with an archive's; a bad archive changes nothing."""
    try:
        found = await asyncio.to_thread(archive.unpack, await request.read())
        held = load_namespace(request[TENANT], found.tables, found.blobs)
    except (archive.ArchiveError, DataDirError) as refused:
        raise ControlError(400, f"not a usable state archive: {refused}") from None
    return web.json_response({"status": "imported", "namespace": request[TENANT].namespace,
                              "from_namespace": found.namespace, "requests": held})


@across_namespaces
async def namespaces(request: web.Request) -> web.Response:
    return web.json_response({"namespaces": [
        {"namespace": tenant.namespace, "requests": len(tenant.sandbox.state.requests)}
        for tenant in request.app[TENANTS].existing()
    ]})


@across_namespaces
async def delete_namespace_route(request: web.Request) -> web.Response:
    name = request.match_info["namespace"]
    held = await delete_namespace(request, name)
    return web.json_response({"status": "deleted", "namespace": name, "requests": held})


async def delete_namespace(request: web.Request, namespace: str) -> int:
    """Delete ``namespace`` with everything it holds, in memory and in the data dir, and end the
    event streams that follow it; how many requests it held."""
    try:
        tenant = await request.app[TENANTS].delete(namespace)
    except NamespaceRefused as refused:
        raise ControlError(400, str(refused)) from None
    except LookupError as missing:
        raise ControlError(404, str(missing.args[0])) from None
    request.app[FEED].end_namespace(namespace)
    return len(tenant.sandbox.state.requests)


def _summary(found: SignatureRequest) -> dict[str, Any]:
    return {
        "pk": found.pk,
        "status": found.status.value,
        "signer": views.signer_name(found),
        "created_at": found.created_at.isoformat(),
        "documents": len(found.documents),
    }


async def list_requests(request: web.Request) -> web.Response:
    requests = sandbox_of(request).state.requests.values()
    return web.json_response({"requests": [_summary(r) for r in requests]})


async def get_request(request: web.Request) -> web.Response:
    pk = request.match_info["pk"]
    found = sandbox_of(request).state.requests.get(parse_number(pk))
    if found is None:
        raise ControlError(404, f"request {pk} not found")
    return web.json_response({
        **await sandbox_of(request).request_detail(found),
        "history": views.history(found),
        "documents": [views.document_summary(d) for d in found.documents.values()],
        "contract_signed": found.contract_signed,
        "identity_images": sorted(found.identity_images),
        "videoid": views.videoid_summary(found),
    })


def _request_filter(request: web.Request) -> int | None:
    """The ``?request=`` pk a listing is narrowed to, if any."""
    wanted = request.query.get("request")
    if wanted is None:
        return None
    number = parse_number(wanted)
    if number is None:
        raise ControlError(400, "request must be a request pk")
    return number


async def sms(request: web.Request) -> web.Response:
    wanted = _request_filter(request)
    undelivered = request.query.get("include") == "undelivered"
    messages = sandbox_of(request).otp.messages(wanted, undelivered=undelivered)
    return web.json_response({"messages": [views.outbox_message(m) for m in messages]})


async def ca_pem(request: web.Request) -> web.Response:
    return web.Response(
        body=sandbox_of(request).pki.ca_bundle_pem(),
        content_type="application/x-pem-file",
        headers={"Content-Disposition": 'attachment; filename="oneshot-mock-test-ca.pem"'},
    )


async def tsa(request: web.Request) -> web.Response:
    reply = await sandbox_of(request).trust.timestamp(await request.read())
    return web.Response(body=reply, content_type="application/timestamp-reply")


async def crl(request: web.Request) -> web.Response:
    return web.Response(
        body=await sandbox_of(request).trust.crl(),
        content_type="application/pkix-crl",
        headers={"Content-Disposition": 'attachment; filename="oneshot-mock-issuing-ca.crl"'},
    )


async def ocsp(request: web.Request) -> web.Response:
    return await _ocsp_reply(request, await request.read())


async def ocsp_get(request: web.Request) -> web.Response:
    """RFC 6960 A.1: the DER request as base64 in the path (aiohttp has undone its URL encoding)."""
    try:
        der = base64.b64decode(request.match_info["request"], validate=True)
    except (binascii.Error, ValueError):
        der = b""  # the responder's malformedRequest answer
    return await _ocsp_reply(request, der)


async def _ocsp_reply(request: web.Request, der: bytes) -> web.Response:
    reply = await sandbox_of(request).trust.ocsp(der)
    return web.Response(body=reply, content_type="application/ocsp-response")


async def revoke(request: web.Request) -> web.Response:
    body = await parsing.read_json(request)
    serial, pk = body.get("serial"), body.get("request")
    try:
        if pk is not None:
            number = parse_number(pk)
            if number is None:
                raise ValueError(pk)
            certificate = sandbox_of(request).trust.revoke(request_pk=number)
        elif serial is not None:
            number = serial if isinstance(serial, int) else int(str(serial), 16)
            certificate = sandbox_of(request).trust.revoke(serial=number)
        else:
            raise ControlError(400, 'give "serial" (hex string or integer) or "request" (pk)')
    except (TypeError, ValueError, OverflowError):
        raise ControlError(400, "serial must be hex or an integer, request a pk") from None
    except LookupError as missing:
        raise ControlError(404, str(missing)) from None
    return web.json_response(views.certificate_status(certificate))


async def certificates(request: web.Request) -> web.Response:
    issued = sandbox_of(request).state.certificates.values()
    return web.json_response({"certificates": [views.certificate_status(c) for c in issued]})


def _attempt(attempt: Attempt) -> dict[str, Any]:
    return {
        "at": attempt.at.isoformat(),
        "target": attempt.target,
        "status": attempt.status,
        "error": attempt.error,
        "latency_ms": attempt.latency_ms,
    }


def _webhook(event: WebhookEvent, next_attempt_at: datetime | None) -> dict[str, Any]:
    return {
        "id": event.id,
        "request": event.request,
        "event": event.name,
        "target": event.target,
        "format": event.format,
        "state": event.state,
        "created_at": event.created_at.isoformat(),
        "payload": json.loads(event.body),
        "attempts": [_attempt(a) for a in event.attempts],
        "next_attempt_at": next_attempt_at.isoformat() if next_attempt_at else None,
    }


async def webhooks(request: web.Request) -> web.Response:
    dispatcher = webhooks_of(request)
    events = dispatcher.events(_request_filter(request))
    return web.json_response({"webhooks": [_webhook(e, dispatcher.next_attempt_at(e.id)) for e in events]})


async def replay_webhook(request: web.Request) -> web.Response:
    try:
        attempt = await webhooks_of(request).replay(request.match_info["id"])
    except LookupError as missing:
        raise ControlError(404, str(missing)) from None
    return web.json_response(_attempt(attempt))


async def flush_webhooks(request: web.Request) -> web.Response:
    return web.json_response({"pending": webhooks_of(request).flush()})


async def identify(request: web.Request) -> web.Response:
    outcome = request.match_info["outcome"]
    if outcome not in ("complete", "incomplete", "error"):
        raise ControlError(404, "outcome is complete, incomplete or error")
    desk = sandbox_of(request).videoid
    found = sandbox_of(request).state.requests.get(parse_number(request.match_info["pk"]))
    if found is None or found.videoid is None:
        raise ControlError(404, f"VideoID request {request.match_info['pk']} not found")
    desk.identify(found, outcome)
    return web.json_response({"request": found.pk, "status": found.status.value,
                              "videoid": views.videoid_summary(found)})


async def errors(request: web.Request) -> web.Response:
    return web.json_response({"errors": [
        {"key": spec.key, "http_status": spec.http_status, "status": spec.status_text or status_line(spec.http_status),
         "details": spec.details}
        for spec in CATALOGUE.values()
    ]})


def _clock(sandbox: Sandbox) -> web.Response:
    return web.json_response({"now": sandbox.clock.now().isoformat(),
                              "offset_s": sandbox.clock.offset.total_seconds()})


async def get_clock(request: web.Request) -> web.Response:
    return _clock(sandbox_of(request))


async def move_clock(request: web.Request) -> web.Response:
    apply_clock_move(sandbox_of(request), await parsing.read_json(request))
    return _clock(sandbox_of(request))


def apply_clock_move(sandbox: Sandbox, body: Mapping[str, Any]) -> None:
    """Move ``sandbox``'s clock as ``body`` says: ``advance_s`` seconds, or ``set`` to an ISO time."""
    if "advance_s" in body:
        try:
            sandbox.advance_clock(float(body["advance_s"]))
        except ClockRangeError as outside:
            raise ControlError(400, str(outside)) from None
        except (TypeError, ValueError):
            raise ControlError(400, "advance_s must be a number of seconds") from None
    elif "set" in body:
        try:
            sandbox.set_clock(parse_time(str(body["set"])))
        except ClockRangeError as outside:
            raise ControlError(400, str(outside)) from None
        except ValueError:
            raise ControlError(400, f"set must be an ISO 8601 time, not {body['set']!r}") from None
    else:
        raise ControlError(400, 'give {"advance_s": seconds} or {"set": "<ISO time>"}')


def _scenario(scenario: Scenario) -> dict[str, Any]:
    return {
        "name": scenario.name,
        "description": scenario.description,
        "activation": scenario.activation,
        "source": scenario.source,
        "rules": [{"index": r.index, "match": r.match, "when": r.when, "then": r.then,
                   "matches": r.matches, "hits": r.hits} for r in scenario.rules],
    }


async def list_scenarios(request: web.Request) -> web.Response:
    return web.json_response({"scenarios": [_scenario(s) for s in scenarios_of(request).scenarios.values()]})


async def load_scenario(request: web.Request) -> web.Response:
    text = (await request.read()).decode("utf-8", errors="replace")
    scenario = add_scenario(request, text, "request body", "POST /_mock/scenarios")
    return web.json_response(_scenario(scenario), status=201)


def add_scenario(request: web.Request, text: str, where: str, source: str) -> Scenario:
    """Load the scenario YAML ``text`` into the request's namespace, checked as a file would be;
    ``where`` names the text in error messages, ``source`` is what the scenario lists."""
    try:
        document = parse_scenario(text, where)
        check_operations(document, where, known_operations(request.app))
    except ScenarioError as bad:
        raise ControlError(400, str(bad)) from None
    return scenarios_of(request).add(document, source)


async def delete_scenario(request: web.Request) -> web.Response:
    try:
        scenarios_of(request).remove(request.match_info["name"])
    except LookupError as missing:
        raise ControlError(404, str(missing)) from None
    return web.json_response({"deleted": request.match_info["name"]})


def setup(app: web.Application) -> None:
    """Register the control routes."""
    add(app, "GET", PREFIX + "/health", health)
    add(app, "GET", PREFIX + "/errors", errors)
    add(app, "GET", PREFIX + "/scenarios", list_scenarios)
    add(app, "POST", PREFIX + "/scenarios", load_scenario)
    add(app, "DELETE", PREFIX + "/scenarios/{name}", delete_scenario)
    add(app, "GET", PREFIX + "/clock", get_clock)
    add(app, "POST", PREFIX + "/clock", move_clock)
    add(app, "POST", PREFIX + "/reset", reset)
    add(app, "GET", PREFIX + "/state", export_state)
    add(app, "PUT", PREFIX + "/state", import_state)
    add(app, "GET", PREFIX + "/namespaces", namespaces)
    add(app, "DELETE", PREFIX + "/namespaces/{namespace}", delete_namespace_route)
    add(app, "GET", PREFIX + "/requests", list_requests)
    add(app, "GET", PREFIX + "/requests/{pk}", get_request)
    add(app, "GET", PREFIX + "/sms", sms)
    add(app, "GET", PREFIX + "/pki/ca.pem", ca_pem)
    add(app, "GET", PREFIX + "/pki/crl", crl)
    add(app, "POST", PREFIX + "/pki/ocsp", ocsp)
    add(app, "GET", PREFIX + "/pki/ocsp/{request:.+}", ocsp_get)
    add(app, "POST", PREFIX + "/pki/revoke", revoke)
    add(app, "GET", PREFIX + "/pki/certificates", certificates)
    add(app, "POST", PREFIX + "/tsa", tsa)
    add(app, "POST", PREFIX + "/videoid/{pk}/{outcome}", identify)
    add(app, "GET", PREFIX + "/webhooks", webhooks)
    add(app, "POST", PREFIX + "/webhooks/flush", flush_webhooks)
    add(app, "POST", PREFIX + "/webhooks/{id}/replay", replay_webhook)
