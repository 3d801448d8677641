"""The dashboard at ``/_mock/``: the sandbox's state as server-rendered HTML for a person.

An overview (namespaces, controls, clock, requests, SMS outbox, webhook log, scenarios, PKI downloads) and
one page per request (status history, documents, contract, SMS, webhook deliveries with a Replay button,
VideoID). The overview's buttons and forms post to :mod:`mock_server.api.dashboard_actions`.
The pages are Jinja2 templates (``mock_server/api/templates/``) rendered through aiohttp-jinja2 with
autoescape: every value is escaped.
No external assets, and everything works without JavaScript (pages reload every few seconds); with it, a
page follows the namespace's live events and redraws itself in place instead. The namespace is the one
the namespace middleware resolved from ``?namespace=``, and every link carries it on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp_jinja2
import jinja2
from aiohttp import web

from mock_server import scenario_library
from mock_server.api import control, videoid_page
from mock_server.api.keys import TENANT, TENANTS, sandbox_of, webhooks_of
from mock_server.api.routing import add
from mock_server.domain import views
from mock_server.domain.event_kinds import KINDS as LIVE_KINDS
from mock_server.domain.ids import parse_number
from mock_server.domain.model import SignatureRequest, Status
from mock_server.domain.service import Sandbox
from mock_server.domain.sms import OutboxMessage
from mock_server.domain.tenancy import DEFAULT
from mock_server.domain.webhooks import Attempt, WebhookDispatcher, WebhookEvent

INDEX = control.PREFIX
REQUEST_PAGE = control.DASHBOARD_REQUEST
REPLAY = control.PREFIX + "/dashboard/webhooks/{id}/replay"
# The buttons and forms that drive the namespace (mock_server.api.dashboard_actions).
RESET = control.PREFIX + "/dashboard/reset"
CLOCK = control.PREFIX + "/dashboard/clock"
LOAD_SCENARIO = control.PREFIX + "/dashboard/scenarios/load"
UNLOAD_SCENARIO = control.PREFIX + "/dashboard/scenarios/unload"
FLUSH_WEBHOOKS = control.PREFIX + "/dashboard/webhooks/flush"
DELETE_NAMESPACE = control.PREFIX + "/dashboard/namespaces/delete"
DEFAULT_REFRESH_S = 5
MAX_REFRESH_S = 3600
# The overview shows the newest entries of the outbox and the webhook log (they keep up to
# --max-log-entries); the JSON under /_mock/sms and /_mock/webhooks has them all.
OVERVIEW_ROWS = 50
REQUEST_ROWS = 50  # requests per page of the overview
_PERIODS = ((DEFAULT_REFRESH_S, f"{DEFAULT_REFRESH_S} s"), (30, "30 s"), (0, "off"))
_REFRESH = re.compile(r"[0-9]{1,4}")
_PAGE = re.compile(r"[0-9]{1,6}")
_MAX_SEARCH = 200
_PATHS = SimpleNamespace(reset=RESET, clock=CLOCK, load_scenario=LOAD_SCENARIO, unload_scenario=UNLOAD_SCENARIO,
                         flush_webhooks=FLUSH_WEBHOOKS, delete_namespace=DELETE_NAMESPACE)


@dataclass(frozen=True)
class View:
    """What every dashboard URL carries on: the namespace and the auto-refresh period (0: off)."""

    namespace: str
    refresh_s: int

    def url_query(self) -> dict[str, str]:
        """The query every URL of this view carries: the namespace and a non-default refresh."""
        query = control.namespace_query(self.namespace)
        if self.refresh_s != DEFAULT_REFRESH_S:
            query["refresh"] = str(self.refresh_s)
        return query

    def url(self, path: str, **extra: str) -> str:
        """``path`` with :meth:`url_query` and ``extra`` as its query."""
        query = {**self.url_query(), **extra}
        return path + ("?" + urlencode(query) if query else "")

    def with_namespace(self, namespace: str) -> View:
        """The same view of another namespace."""
        return replace(self, namespace=namespace)

    def with_refresh(self, refresh_s: int) -> View:
        """The same view with another auto-refresh period."""
        return replace(self, refresh_s=refresh_s)


def view_of(request: web.Request) -> View:
    """The view a dashboard call asks for; a bad ``refresh`` is a 400 like any control API parameter."""
    text = request.query.get("refresh")
    if text is None:
        return View(request[TENANT].namespace, DEFAULT_REFRESH_S)
    if not _REFRESH.fullmatch(text) or int(text) > MAX_REFRESH_S:
        raise control.ControlError(400, f"refresh must be a number of seconds from 0 (off) to {MAX_REFRESH_S}")
    return View(request[TENANT].namespace, int(text))


@dataclass(frozen=True)
class RequestSearch:
    """Which requests the overview lists: those ``text`` finds (pk, signer, status), one page of them."""

    text: str = ""
    page: int = 1

    def query(self) -> dict[str, str]:
        """The query parameters that ask for this search again (none for the default one)."""
        return {k: v for k, v in (("q", self.text), ("page", str(self.page) if self.page > 1 else "")) if v}

    def at(self, page: int) -> dict[str, str]:
        """:meth:`query` of the same search on ``page``."""
        return replace(self, page=page).query()

    def finds(self, found: SignatureRequest) -> bool:
        """Whether ``found`` matches the text (case-insensitive, anywhere in pk, signer or status)."""
        wanted = self.text.casefold()
        return any(wanted in str(value).casefold()
                   for value in (found.pk, views.signer_name(found) or "", found.status.value))


def search_of(request: web.Request) -> RequestSearch:
    """The search an overview call asks for; a bad ``page`` is a 400 like a bad ``refresh``."""
    page = request.query.get("page", "1")
    if not _PAGE.fullmatch(page) or int(page) < 1:
        raise control.ControlError(400, "page must be a page number from 1")
    return RequestSearch(request.query.get("q", "").strip()[:_MAX_SEARCH], int(page))


# What the templates are given ------------------------------------------------------------------------


def _when(moment: datetime | None) -> str:
    return moment.isoformat(sep=" ", timespec="seconds") if moment else "-"


def _request_path(pk: int) -> str:
    return REQUEST_PAGE.format(pk=pk)


def _attempt_result(attempt: Attempt) -> str:
    return f"HTTP {attempt.status}" if attempt.status is not None else attempt.error or "no answer"


def _last_result(event: WebhookEvent) -> str:
    return _attempt_result(event.attempts[-1]) if event.attempts else "-"


def setup_templates(app: web.Application) -> None:
    """Give ``app`` the dashboard's template environment (aiohttp-jinja2): autoescape on, an
    undefined name an error, not an empty string."""
    environment = aiohttp_jinja2.setup(
        app, loader=jinja2.PackageLoader("mock_server.api", "templates"), default_helpers=False,
        filters={"when": _when}, autoescape=True, trim_blocks=True, lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.globals.update(
        index=INDEX + "/", paths=_PATHS, periods=_PERIODS,
        failed=frozenset({Status.CANCELLED.value, Status.VIDEOERROR.value}),
        kinds=list(LIVE_KINDS), request_page=_request_path, signer_name=views.signer_name,
        attempt_result=_attempt_result, last_result=_last_result,
        replay_path=lambda event_id: REPLAY.format(id=quote(event_id)),
        payload=lambda event: json.dumps(json.loads(event.body), indent=2, ensure_ascii=False),
    )


def _render(request: web.Request, template: str, here: str, *, refreshing: bool = True,
            sticky: Mapping[str, str] | None = None, **context: Any) -> str:
    """A page of the call's view and namespace. Its refresh reloads it without one-off parameters (a
    replay's message), keeping ``sticky`` ones (a search, a page of requests)."""
    view = view_of(request)
    query = control.namespace_query(view.namespace)
    events_url = control.PREFIX + "/events" + ("?" + urlencode(query) if query else "")
    return aiohttp_jinja2.render_string(template, request, {
        "view": view, "tenants": request.app[TENANTS].existing(), "here": here, "refreshing": refreshing,
        "sticky": sticky or {}, "events_url": events_url, **context})


def render_standalone(request: web.Request, template: str, **context: Any) -> str:
    """A page of its own (the sign-in form) from the dashboard's templates, escaped the same way."""
    return aiohttp_jinja2.render_string(template, request, context)


def _newest(items: Sequence[Any]) -> SimpleNamespace:
    """The newest :data:`OVERVIEW_ROWS` items, newest first, and whether some are left out."""
    return SimpleNamespace(shown=list(reversed(items[-OVERVIEW_ROWS:])), total=len(items),
                           left_out=len(items) > OVERVIEW_ROWS)


def _delivery(now: datetime) -> Any:
    def delivery(message: OutboxMessage) -> str:
        if message.delivered_at is None:
            return "dropped (scenario)"
        if message.delivered_at > now:
            return f"due {_when(message.delivered_at)}"
        return _when(message.delivered_at)

    return delivery


def _next_attempt(dispatcher: WebhookDispatcher) -> Any:
    def next_attempt(event: WebhookEvent) -> str:
        """When a retry is due (sandbox time); "queued" for a pending event waiting its turn, else "-"."""
        due = dispatcher.next_attempt_at(event.id)
        if due is not None:
            return _when(due)
        return "queued" if event.state == "pending" else "-"

    return next_attempt


def _requests(sandbox: Sandbox, search: RequestSearch) -> SimpleNamespace:
    everyone = sandbox.state.requests.values()
    matching = [r for r in everyone if search.finds(r)] if search.text else list(everyone)
    matching.sort(key=lambda r: (r.created_at, r.pk), reverse=True)
    pages = max(1, -(-len(matching) // REQUEST_ROWS))
    page = min(search.page, pages)
    return SimpleNamespace(
        shown=matching[(page - 1) * REQUEST_ROWS:page * REQUEST_ROWS], page=page, pages=pages, search=search,
        at=search.at, count=f"{len(matching)} of {len(everyone)} match" if search.text else str(len(everyone)),
        empty=f"No request matches {search.text!r}." if search.text else "No requests yet.",
    )


def index_page(request: web.Request, done: str | None = None, search: RequestSearch = RequestSearch()) -> str:
    """The overview of the call's namespace, its requests as ``search`` finds them; ``done`` says what
    the last action did."""
    tenant = request[TENANT]
    sandbox = tenant.sandbox
    now = sandbox.clock.now()
    return _render(
        request, "overview.html", INDEX + "/", sticky=search.query(), title="Dashboard", done=done,
        now=now, offset_s=sandbox.clock.offset.total_seconds(), requests=_requests(sandbox, search),
        sms=_newest(sandbox.otp.messages(undelivered=True)), delivery=_delivery(now),
        webhooks=_newest(tenant.webhooks.events()), next_attempt=_next_attempt(tenant.webhooks),
        scenarios=list(tenant.scenarios.scenarios.values()), library=scenario_library.names(),
    )


def _summary(found: SignatureRequest) -> list[tuple[str, object]]:
    identity = found.identity
    rows: list[tuple[str, object]] = [
        ("Signer", views.signer_name(found) or "-"),
        ("Identity document", f"{identity.id_document_type} {identity.id_document_country} "
                              f"{identity.serial_number}".strip() or "-"),
        ("E-mail", identity.email), ("Mobile phone", identity.mobile_phone_number),
        ("Registration Authority", found.registration_authority), ("Profile", found.profile),
        ("Environment", found.env), ("Created", _when(found.created_at)),
        ("Mode", "asynchronous" if found.async_mode else "synchronous"), ("Callback", found.callback),
    ]
    if found.failure:
        rows.append(("Failure", found.failure))
    if found.certificate is not None:
        revoked = found.certificate.revoked_at
        rows.append(("Certificate", f"serial {found.certificate.serial:x}"
                                    + (f", revoked {_when(revoked)}" if revoked else "")))
    return rows


def _videoid(found: SignatureRequest) -> list[tuple[str, object]]:
    videoid = found.videoid
    if videoid is None:
        return []
    rows: list[tuple[str, object]] = [("VideoID pk", videoid.pk), ("Mode", videoid.mode)]
    if videoid.mode == "eidas":
        rows.append(("Identification page", f"{videoid_page.PREFIX}/{quote(videoid.link_id)}"))
    summary = views.videoid_summary(found) or {}
    rows += [(key.replace("_", " ").capitalize(), summary[key])
             for key in ("evidences", "evidences_complete", "video", "validated", "reason")]
    return rows


def request_page(request: web.Request, found: SignatureRequest, replayed: WebhookEvent | None) -> str:
    """One request: summary, history, documents and contract, SMS, webhooks, VideoID."""
    tenant = request[TENANT]
    sandbox = tenant.sandbox
    return _render(
        request, "request.html", _request_path(found.pk), title=f"Request {found.pk}", found=found,
        replayed=replayed, summary=_summary(found), default_namespace=tenant.namespace == DEFAULT,
        documents=list(found.documents.values()), sms=sandbox.otp.messages(found.pk, undelivered=True),
        delivery=_delivery(sandbox.clock.now()), events=tenant.webhooks.events(found.pk), videoid=_videoid(found),
    )


def not_found_page(request: web.Request, what: str) -> str:
    """A 404 a person can leave: what was not found, in which namespace, and the way back."""
    namespace = request[TENANT].namespace or "default"
    return notice_page(request, "Not found",
                       f"{what} does not exist in namespace {namespace} (a reset removes everything).")


def notice_page(request: web.Request, title: str, text: str) -> str:
    """A page that says ``text`` (why an action was refused, what was not found) and the way back."""
    return _render(request, "notice.html", INDEX + "/", refreshing=False, title=title, text=text)


# Handlers -------------------------------------------------------------------------------------------


def html_response(text: str, status: int = 200) -> web.Response:
    """``text`` as an HTML answer."""
    return web.Response(text=text, status=status, content_type="text/html")


async def show_index(request: web.Request) -> web.Response:
    """The overview of the namespace ``?namespace=`` names."""
    return html_response(index_page(request, request.query.get("done"), search_of(request)))


async def show_request(request: web.Request) -> web.Response:
    """A request's page; an HTML 404 when the namespace has no such request."""
    pk = request.match_info["pk"]
    found = sandbox_of(request).state.requests.get(parse_number(pk))
    if found is None:
        return html_response(not_found_page(request, f"Request {pk}"), status=404)
    replayed = webhooks_of(request).event(request.query.get("replayed", ""))
    return html_response(request_page(request, found, replayed))


async def replay_webhook(request: web.Request) -> web.Response:
    """The Replay button: the dispatcher's replay (as POST /_mock/webhooks/{id}/replay), then back."""
    event = webhooks_of(request).event(request.match_info["id"])
    if event is None:
        return html_response(not_found_page(request, f"Webhook event {request.match_info['id']}"), status=404)
    await webhooks_of(request).replay(event.id)
    location = view_of(request).url(_request_path(event.request), replayed=event.id) + "#webhooks"
    return web.Response(status=303, headers={"Location": location}, text="303: See Other")


def setup(app: web.Application) -> None:
    """Register the dashboard's routes (with the control API: same guard, same namespaces)."""
    add(app, "GET", INDEX, show_index)
    add(app, "GET", REQUEST_PAGE, show_request)
    add(app, "POST", REPLAY, replay_webhook)
