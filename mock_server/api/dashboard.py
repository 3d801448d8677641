"""The dashboard at ``/_mock/``: the sandbox's state as server-rendered HTML for a person.

An overview (namespaces, controls, clock, requests, SMS outbox, webhook log, scenarios, PKI downloads) and
one page per request (status history, documents, contract, SMS, webhook deliveries with a Replay button,
VideoID). The overview's buttons and forms post to :mod:`mock_server.api.dashboard_actions`.
Plain HTML and forms, no external assets: everything works without JavaScript (pages reload
every few seconds); with it, a page follows the namespace's live events and redraws itself in place
instead. Every value is escaped; the namespace is the one the namespace middleware resolved from
``?namespace=``, and every link carries it on.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlencode

from aiohttp import web

from mock_server import scenario_library
from mock_server.api import control, videoid_page
from mock_server.api.keys import TENANT, TENANTS, sandbox_of, webhooks_of
from mock_server.api.routing import add
from mock_server.domain import views
from mock_server.domain.ids import parse_number
from mock_server.domain.model import SignatureRequest, Status
from mock_server.domain.service import Sandbox
from mock_server.scenarios import Scenario
from mock_server.sms import OutboxMessage
from mock_server.tail import KINDS as LIVE_KINDS
from mock_server.tenancy import DEFAULT, Tenant
from mock_server.webhooks import Attempt, WebhookDispatcher, WebhookEvent

INDEX = control.PREFIX
REQUEST_PAGE = control.DASHBOARD_REQUEST
REPLAY = control.PREFIX + "/dashboard/webhooks/{id}/replay"
# The buttons and forms that drive the namespace (mock_server.api.dashboard_actions).
RESET = control.PREFIX + "/dashboard/reset"
CLOCK = control.PREFIX + "/dashboard/clock"
LOAD_SCENARIO = control.PREFIX + "/dashboard/scenarios/load"
UNLOAD_SCENARIO = control.PREFIX + "/dashboard/scenarios/unload"
FLUSH_WEBHOOKS = control.PREFIX + "/dashboard/webhooks/flush"
DEFAULT_REFRESH_S = 5
MAX_REFRESH_S = 3600
# The overview shows the newest entries of the outbox and the webhook log (they keep up to
# --max-log-entries); the JSON under /_mock/sms and /_mock/webhooks has them all.
OVERVIEW_ROWS = 50
REQUEST_ROWS = 50  # requests per page of the overview
_PAGE = re.compile(r"[0-9]{1,6}")
_MAX_SEARCH = 200
_REFRESH = re.compile(r"[0-9]{1,4}")
_FAILED = {Status.CANCELLED, Status.VIDEOERROR}
_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#1f2937;background:#f8fafc;font-size:15px}
header{background:#1e3a5f;color:#fff;padding:.6rem 1.5rem;display:flex;flex-wrap:wrap;gap:.4rem 1.5rem;
align-items:baseline}
header a{color:#bfdbfe} header h1{font-size:1.15rem;margin:0} header .here{color:#fff;font-weight:bold}
main{max-width:92rem;margin:0 auto;padding:.5rem 1.5rem 2rem}
h2{font-size:1.1rem;margin:1.6rem 0 .5rem;border-bottom:2px solid #cbd5e1;padding-bottom:.2rem}
h3{font-size:1rem;margin:1rem 0 .3rem}
table{border-collapse:collapse;margin:.3rem 0 .8rem;background:#fff}
th,td{padding:.25rem .6rem;border:1px solid #e2e8f0;text-align:left;vertical-align:top}
th{background:#f1f5f9;font-weight:600} td.num{text-align:right}
code,pre,.mono{font-family:ui-monospace,monospace;font-size:.88em}
pre{background:#fff;border:1px solid #e2e8f0;padding:.5rem;overflow-x:auto;max-width:80rem}
.badge{display:inline-block;padding:0 .45rem;border-radius:.7rem;background:#e2e8f0;font-size:.85em}
.ok{background:#bbf7d0} .bad{background:#fecaca} .wait{background:#fde68a}
.otp{font-family:ui-monospace,monospace;font-size:1.15em;font-weight:bold;letter-spacing:.08em}
.note{color:#475569} .message{background:#e0f2fe;padding:.5rem .8rem;border-radius:4px}
.test{background:#fde68a;padding:.1rem .5rem;border-radius:4px;color:#1f2937}
.event{background:#fff;border:1px solid #e2e8f0;border-radius:4px;padding:.2rem .8rem .5rem;margin:.6rem 0}
form{display:inline} button{padding:.25rem .8rem;cursor:pointer}
"""


class Html(str):
    """Markup built by this module: put in a page as is, where any other value is escaped."""


def _e(value: object) -> Html:
    """``value`` escaped for HTML text and attribute values (markup passes through)."""
    if isinstance(value, Html):
        return value
    return Html(html.escape("-" if value is None else str(value)))


def _link(href: str, text: object) -> Html:
    return Html(f'<a href="{html.escape(href)}">{_e(text)}</a>')


def _badge(text: object, kind: str = "") -> Html:
    return Html(f'<span class="{" ".join(filter(None, ("badge", kind)))}">{_e(text)}</span>')


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]], empty: str = "None yet.") -> Html:
    """A table; cells are escaped unless they are :class:`Html`, numbers are right-aligned."""
    body = "".join(
        "<tr>" + "".join(
            f'<td class="num">{_e(cell)}</td>' if isinstance(cell, int | float) else f"<td>{_e(cell)}</td>"
            for cell in row
        ) + "</tr>"
        for row in rows
    )
    if not body:
        return Html(f'<p class="note">{_e(empty)}</p>')
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    return Html(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def _fields(rows: Iterable[tuple[str, object]]) -> Html:
    """A two-column table of named values (the name as a row heading)."""
    body = "".join(f'<tr><th scope="row">{_e(name)}</th><td>{_e(value)}</td></tr>' for name, value in rows)
    return Html(f"<table><tbody>{body}</tbody></table>")


def _when(moment: datetime | None) -> str:
    return moment.isoformat(sep=" ", timespec="seconds") if moment else "-"


def _status(status: Status) -> Html:
    kind = "ok" if status == Status.ISSUED else "bad" if status in _FAILED else ""
    return _badge(status.value, kind)


def _button(view: View, action: str, label: str, **hidden: str) -> Html:
    """A form of one button that POSTs to ``action`` (with ``hidden`` fields) in the view's namespace."""
    fields = "".join(f'<input type="hidden" name="{_e(k)}" value="{_e(v)}">' for k, v in hidden.items())
    return Html(f'<form method="post" action="{html.escape(view.url(action))}">{fields}'
                f"<button>{_e(label)}</button></form>")


def _state(state: str) -> Html:
    return _badge(state, {"delivered": "ok", "failed": "bad", "pending": "wait"}.get(state, ""))


def _request_path(pk: int) -> str:
    return REQUEST_PAGE.format(pk=pk)


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


def view_of(request: web.Request) -> View:
    """The view a dashboard call asks for; a bad ``refresh`` is a 400 like any control API parameter."""
    text = request.query.get("refresh")
    if text is None:
        return View(request[TENANT].namespace, DEFAULT_REFRESH_S)
    if not _REFRESH.fullmatch(text) or int(text) > MAX_REFRESH_S:
        raise control.ControlError(400, f"refresh must be a number of seconds from 0 (off) to {MAX_REFRESH_S}")
    return View(request[TENANT].namespace, int(text))


def _header(view: View, tenants: Sequence[Tenant], here: str, sticky: Mapping[str, str]) -> Html:
    names = " ".join(
        Html(f'<span class="here">{_e(t.namespace or "default")} ({len(t.sandbox.state.requests)})</span>')
        if t.namespace == view.namespace else
        _link(View(t.namespace, view.refresh_s).url(INDEX + "/"),
              f"{t.namespace or 'default'} ({len(t.sandbox.state.requests)})")
        for t in tenants
    )
    periods = " ".join(
        Html(f'<span class="here">{_e(label)}</span>') if seconds == view.refresh_s
        else _link(View(view.namespace, seconds).url(here, **sticky), label)
        for seconds, label in ((DEFAULT_REFRESH_S, f"{DEFAULT_REFRESH_S} s"), (30, "30 s"), (0, "off"))
    )
    return Html(
        f'<header><h1>{_link(view.url(INDEX + "/"), "oneshot-mock dashboard")}</h1>'
        f'<span class="test">TEST sandbox</span>'
        f"<span>Namespaces: {names}</span><span>Auto-refresh: {periods}</span></header>"
    )


def _document(title: str, view: View, tenants: Sequence[Tenant], here: str, body: str,
              sticky: Mapping[str, str] | None = None) -> str:
    # The refresh reloads the page without one-off parameters (a replay's message), keeping ``sticky``
    # ones (a search, a page of requests).
    sticky = sticky or {}
    refresh = ""
    if view.refresh_s:
        # With JavaScript the page follows the event stream instead; without, it reloads itself.
        url = html.escape(view.url(here, **sticky))
        refresh = (f'<noscript><meta http-equiv="refresh" content="{view.refresh_s}; url={url}"></noscript>'
                   f"<script>{_live_updates(view)}</script>")
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8>"
        f'<meta name="viewport" content="width=device-width, initial-scale=1">{refresh}'
        f"<title>{_e(title)} - oneshot-mock</title><style>{_STYLE}</style></head>"
        f"<body>{_header(view, tenants, here, sticky)}<main>{body}</main></body></html>"
    )


def _live_updates(view: View) -> str:
    """A script that redraws the page's main part, fetched again, after each burst of the namespace's
    live events (``GET /_mock/events``), and not while a person is typing in one of its fields."""
    query = control.namespace_query(view.namespace)
    events = json.dumps(control.PREFIX + "/events" + ("?" + urlencode(query) if query else ""))
    return (
        "addEventListener('DOMContentLoaded',()=>{"
        f"const stream=new EventSource({events});let timer=null;"
        "const redraw=async()=>{timer=null;"
        "if(document.activeElement&&document.activeElement.closest('main form')){timer=setTimeout(redraw,1000);return;}"
        "const answer=await fetch(location.href,{credentials:'same-origin'});if(!answer.ok)return;"
        "const fresh=new DOMParser().parseFromString(await answer.text(),'text/html').querySelector('main');"
        "if(fresh){document.querySelector('main').replaceWith(fresh);document.body.dataset.redrawn=Date.now();}};"
        f"for(const kind of {json.dumps(list(LIVE_KINDS))})"
        "stream.addEventListener(kind,()=>{if(!timer)timer=setTimeout(redraw,250);});});"
    )


# The overview ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestSearch:
    """Which requests the overview lists: those ``text`` finds (pk, signer, status), one page of them."""

    text: str = ""
    page: int = 1

    def query(self) -> dict[str, str]:
        """The query parameters that ask for this search again (none for the default one)."""
        return {k: v for k, v in (("q", self.text), ("page", str(self.page) if self.page > 1 else "")) if v}

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


def _requests_section(view: View, sandbox: Sandbox, search: RequestSearch) -> Html:
    everyone = sandbox.state.requests.values()
    matching = [r for r in everyone if search.finds(r)] if search.text else list(everyone)
    matching.sort(key=lambda r: (r.created_at, r.pk), reverse=True)
    pages = max(1, -(-len(matching) // REQUEST_ROWS))
    page = min(search.page, pages)
    shown = matching[(page - 1) * REQUEST_ROWS:page * REQUEST_ROWS]
    rows = [
        (_link(view.url(_request_path(r.pk)), r.pk), views.signer_name(r) or "-", _status(r.status),
         _when(r.created_at), len(r.documents), r.videoid.mode if r.videoid else "-")
        for r in shown
    ]
    count = (f"{len(matching)} of {len(everyone)} match" if search.text else str(len(everyone)))
    hidden = "".join(f'<input type="hidden" name="{_e(k)}" value="{_e(v)}">' for k, v in view.url_query().items())
    form = (f'<form method="get" action="{html.escape(INDEX + "/")}">{hidden}<label>Find '
            f'<input type="search" name="q" value="{_e(search.text)}" placeholder="pk, signer or status"></label> '
            f"<button>Search</button></form>")
    paging = ""
    if pages > 1:
        def to(number: int, label: str) -> Html:
            return _link(view.url(INDEX + "/", **RequestSearch(search.text, number).query()) + "#requests", label)
        paging = (f'<p class="paging">{to(page - 1, "Newer") if page > 1 else ""} Page {page} of {pages} '
                  f"{to(page + 1, 'Older') if page < pages else ''}</p>")
    empty = f"No request matches {search.text!r}." if search.text else "No requests yet."
    return Html(f'<h2 id="requests">Requests ({count})</h2><p>{form}</p>'
                + _table(["pk", "signer", "status", "created", "documents", "VideoID"], rows, empty) + paging)


def _newest(items: Sequence, what: str, json_path: str) -> tuple[list, Html]:
    """The newest :data:`OVERVIEW_ROWS` items, newest first, and a note when some are left out."""
    shown = list(reversed(items[-OVERVIEW_ROWS:]))
    note = (Html(f'<p class="note">The newest {OVERVIEW_ROWS} of {len(items)} {what}; '
                 f"<code>{_e(json_path)}</code> has them all.</p>") if len(items) > OVERVIEW_ROWS else Html(""))
    return shown, note


def _delivery(message: OutboxMessage, now: datetime) -> str:
    if message.delivered_at is None:
        return "dropped (scenario)"
    if message.delivered_at > now:
        return f"due {_when(message.delivered_at)}"
    return _when(message.delivered_at)


def _outbox_section(view: View, sandbox: Sandbox) -> Html:
    now = sandbox.clock.now()
    shown, note = _newest(sandbox.otp.messages(undelivered=True), "messages", "/_mock/sms?include=undelivered")
    rows = [
        (_when(m.sent_at), _link(view.url(_request_path(m.request)), m.request), m.to, m.channel,
         Html(f'<span class="otp">{_e(m.otp)}</span>'), m.text, _delivery(m, now))
        for m in shown
    ]
    return Html('<h2 id="sms">SMS outbox</h2>' + note
                + _table(["sent", "request", "to", "channel", "OTP", "text", "delivered"], rows, "No messages yet."))


def _last_result(event: WebhookEvent) -> str:
    return _attempt_result(event.attempts[-1]) if event.attempts else "-"


def _attempt_result(attempt: Attempt) -> str:
    return f"HTTP {attempt.status}" if attempt.status is not None else attempt.error or "no answer"


def _next_attempt(dispatcher: WebhookDispatcher, event: WebhookEvent) -> str:
    """When a retry is due (sandbox time); "queued" for a pending event waiting its turn, else "-"."""
    due = dispatcher.next_attempt_at(event.id)
    if due is not None:
        return _when(due)
    return "queued" if event.state == "pending" else "-"


def _webhook_log_section(view: View, dispatcher: WebhookDispatcher) -> Html:
    shown, note = _newest(dispatcher.events(), "events", "/_mock/webhooks")
    rows = [
        (_when(e.created_at), Html(f"<code>{_e(e.id)}</code>"), _link(view.url(_request_path(e.request)), e.request),
         e.name, e.target, _state(e.state), len(e.attempts), _last_result(e), _next_attempt(dispatcher, e))
        for e in shown
    ]
    flush = _button(view, FLUSH_WEBHOOKS, "Deliver pending events now")
    return Html(f'<h2 id="webhooks">Webhook log</h2><p>{flush}</p>' + note
                + _table(["created", "id", "request", "event", "target", "state", "attempts", "last result",
                          "next attempt at"], rows,
                         "No webhook events yet."))


def _scenarios_section(view: View, scenarios: Iterable[Scenario]) -> Html:
    rows = [
        (s.name, s.description, s.activation, s.source, len(s.rules), sum(r.hits for r in s.rules),
         _button(view, UNLOAD_SCENARIO, "Unload", name=s.name))
        for s in scenarios
    ]
    options = "".join(f"<option>{_e(name)}</option>" for name in scenario_library.names())
    action = html.escape(view.url(LOAD_SCENARIO))
    return Html('<h2 id="scenarios">Scenarios</h2>'
                + _table(["name", "description", "activation", "source", "rules", "hits", ""], rows,
                         "No scenarios loaded.")
                + f'<p><form method="post" action="{action}"><label>From the library '
                f'<select name="library">{options}</select></label> <button>Load</button></form> '
                f'<form method="post" action="{action}" enctype="multipart/form-data"><label>From a file '
                f'<input type="file" name="file" required accept=".yaml,.yml,.json"></label> '
                f"<button>Load file</button></form></p>")


def _clock_section(view: View, sandbox: Sandbox) -> Html:
    offset = sandbox.clock.offset.total_seconds()
    action = html.escape(view.url(CLOCK))
    return Html('<h2 id="clock">Clock</h2>'
                + _table(["now (sandbox time)", "offset from the wall clock"],
                         [(_when(sandbox.clock.now()), f"{offset:+.0f} s")])
                + f'<p><form method="post" action="{action}"><label>Advance by '
                f'<input name="advance_s" type="number" step="any" required size="8"> s</label> '
                f"<button>Advance</button></form> "
                f'<form method="post" action="{action}"><label>Set to '
                f'<input name="set" required size="26" placeholder="YYYY-MM-DDTHH:MM:SS+00:00"></label> '
                f"<button>Set</button></form></p>")


def _pki_section() -> Html:
    links = [
        (_link(control.PREFIX + "/pki/ca.pem", "ca.pem"), "Root, issuing CA and TSA certificates (root first)"),
        (_link(control.PREFIX + "/pki/crl", "crl"), "The issuing CA's CRL (DER)"),
        (_link(control.PREFIX + "/pki/certificates", "certificates"), "Every one-shot certificate issued (JSON)"),
    ]
    return Html('<h2 id="pki">PKI downloads</h2>' + _table(["download", "what"], links))


def _controls_section(view: View, done: str | None) -> Html:
    message = f'<p class="message">{_e(done)}</p>' if done else ""
    reset = _button(view, RESET, "Reset this namespace")
    return Html(f'<h2 id="controls">Controls</h2>{message}<p>{reset} <span class="note">Back to the start '
                "state (default tokens, settings, seed file), as <code>POST /_mock/reset</code>: this "
                "namespace only.</span></p>")


def index_page(view: View, tenant: Tenant, tenants: Sequence[Tenant], done: str | None = None,
               search: RequestSearch = RequestSearch()) -> str:
    """The overview of one namespace, its requests as ``search`` finds them; ``done`` says what the
    last action did."""
    sandbox = tenant.sandbox
    body = (_controls_section(view, done) + _clock_section(view, sandbox) + _requests_section(view, sandbox, search)
            + _outbox_section(view, sandbox) + _webhook_log_section(view, tenant.webhooks)
            + _scenarios_section(view, tenant.scenarios.scenarios.values()) + _pki_section())
    return _document("Dashboard", view, tenants, INDEX + "/", body, search.query())


# A request ------------------------------------------------------------------------------------------


def _summary_section(found: SignatureRequest) -> Html:
    identity = found.identity
    rows = [
        ("Status", _status(found.status)), ("Signer", views.signer_name(found) or "-"),
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
    return _fields(rows)


def _history_section(found: SignatureRequest) -> Html:
    rows = [(i, _status(c.status), c.previous.value if c.previous else "-", _when(c.at))
            for i, c in enumerate(found.history, 1)]
    return Html('<h2 id="history">Status history</h2>' + _table(["#", "status", "previous", "at"], rows))


def _download(view: View, path: str, text: str) -> Html:
    # The vendor API takes the namespace from the X-Mock-Namespace header only: a browser link would
    # address the default namespace, so other namespaces get the path to fetch with the header.
    return _link(path, text) if view.namespace == DEFAULT else Html(f"<code>{_e(path)}</code>")


def _documents_section(view: View, found: SignatureRequest) -> Html:
    pk = found.pk
    rows = [
        (Html(f"<code>{_e(d.uid)}</code>"), d.filename, "hash" if d.hash_file is not None else "pdf",
         len(d.data), d.page_count, "yes" if d.signed is not None else "no",
         Html(_download(view, f"/api/v1/document/{pk}/original/{quote(d.uid)}", "original")
              + (" " + _download(view, f"/api/v1/document/{pk}/signed/{quote(d.uid)}", "signed")
                 if d.signed is not None else "")))
        for d in found.documents.values()
    ]
    contract = "signed contract" if found.contract_signed else "contract (signed once ISSUED)"
    note = (Html("") if view.namespace == DEFAULT else Html(
        f'<p class="note">Downloads use the vendor API, which takes the namespace from a header: '
        f"<code>curl -H 'X-Mock-Namespace: {_e(view.namespace)}' &lt;sandbox&gt;&lt;path&gt;</code></p>"))
    return Html('<h2 id="documents">Documents</h2>' + note
                + _table(["uid", "filename", "kind", "bytes", "pages", "signed", "download"], rows,
                         "No documents uploaded.")
                + f'<p id="contract">Contract: {_download(view, f"/api/v1/document/{pk}/contract", contract)}</p>')


def _sms_section(sandbox: Sandbox, found: SignatureRequest) -> Html:
    now = sandbox.clock.now()
    rows = [(_when(m.sent_at), m.to, m.channel, Html(f'<span class="otp">{_e(m.otp)}</span>'), m.text,
             _delivery(m, now))
            for m in sandbox.otp.messages(found.pk, undelivered=True)]
    return Html('<h2 id="sms">SMS</h2>'
                + _table(["sent", "to", "channel", "OTP", "text", "delivered"], rows, "No OTP sent yet."))


def _event_block(view: View, event: WebhookEvent) -> Html:
    attempts = [(i, _when(a.at), a.target, a.status, a.error, a.latency_ms) for i, a in enumerate(event.attempts, 1)]
    replay = (f'<form method="post" action="{html.escape(view.url(REPLAY.format(id=quote(event.id))))}">'
              f'<button type="submit" title="POST this event to its target again, now">Replay</button></form>')
    payload = json.dumps(json.loads(event.body), indent=2, ensure_ascii=False)
    return Html(
        f'<div class="event" id="{_e(event.id)}"><h3>{_e(event.name)} {_state(event.state)} {replay}</h3>'
        f'<p class="mono">{_e(event.id)} · {_e(event.format)} format · created {_e(_when(event.created_at))} · '
        f"to {_e(event.target)}</p>"
        + _table(["attempt", "at", "target", "HTTP status", "error", "ms"], attempts, "No attempt yet.")
        + f"<details><summary>Payload</summary><pre>{_e(payload)}</pre></details></div>"
    )


def _webhooks_section(view: View, dispatcher: WebhookDispatcher, found: SignatureRequest) -> Html:
    events = dispatcher.events(found.pk)
    blocks = "".join(_event_block(view, e) for e in events) or '<p class="note">No webhook events.</p>'
    return Html(f'<h2 id="webhooks">Webhook deliveries ({len(events)})</h2>{blocks}')


def _videoid_section(found: SignatureRequest) -> Html:
    videoid = found.videoid
    if videoid is None:
        return Html("")
    rows: list[tuple[str, object]] = [("VideoID pk", videoid.pk), ("Mode", videoid.mode)]
    if videoid.mode == "eidas":
        page = f"{videoid_page.PREFIX}/{quote(videoid.link_id)}"
        rows.append(("Identification page", _link(page, page)))
    summary = views.videoid_summary(found) or {}
    rows += [(key.replace("_", " ").capitalize(), summary[key])
             for key in ("evidences", "evidences_complete", "video", "validated", "reason")]
    return Html('<h2 id="videoid">VideoID</h2>' + _fields(rows))


def request_page(view: View, tenant: Tenant, tenants: Sequence[Tenant], found: SignatureRequest,
                 replayed: WebhookEvent | None) -> str:
    """One request: summary, history, documents and contract, SMS, webhooks, VideoID."""
    message = ""
    if replayed is not None and replayed.attempts:
        message = (f'<p class="message">Webhook <code>{_e(replayed.id)}</code> sent again: '
                   f"{_e(_attempt_result(replayed.attempts[-1]))}.</p>")
    body = (
        f"{message}<h2>Request {found.pk}</h2>" + _summary_section(found) + _history_section(found)
        + _documents_section(view, found) + _sms_section(tenant.sandbox, found)
        + _webhooks_section(view, tenant.webhooks, found) + _videoid_section(found)
    )
    return _document(f"Request {found.pk}", view, tenants, _request_path(found.pk), body)


def not_found_page(view: View, tenants: Sequence[Tenant], what: str) -> str:
    """A 404 a person can leave: what was not found, in which namespace, and the way back."""
    namespace = view.namespace or "default"
    return notice_page(view, tenants, "Not found",
                       f"{what} does not exist in namespace {namespace} (a reset removes everything).")


def notice_page(view: View, tenants: Sequence[Tenant], title: str, text: str) -> str:
    """A page that says ``text`` (why an action was refused, what was not found) and the way back."""
    body = (f"<h2>{_e(title)}</h2><p>{_e(text)}</p>"
            f"<p>{_link(view.url(INDEX + '/'), 'Back to the dashboard')}</p>")
    return _document(title, View(view.namespace, 0), tenants, INDEX + "/", body)


# Handlers -------------------------------------------------------------------------------------------


def html_response(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html")


async def show_index(request: web.Request) -> web.Response:
    """The overview of the namespace ``?namespace=`` names."""
    return html_response(index_page(view_of(request), request[TENANT], request.app[TENANTS].existing(),
                                    request.query.get("done"), search_of(request)))


async def show_request(request: web.Request) -> web.Response:
    """A request's page; an HTML 404 when the namespace has no such request."""
    view, tenants = view_of(request), request.app[TENANTS].existing()
    pk = request.match_info["pk"]
    found = sandbox_of(request).state.requests.get(parse_number(pk))
    if found is None:
        return html_response(not_found_page(view, tenants, f"Request {pk}"), status=404)
    replayed = webhooks_of(request).event(request.query.get("replayed", ""))
    return html_response(request_page(view, request[TENANT], tenants, found, replayed))


async def replay_webhook(request: web.Request) -> web.Response:
    """The Replay button: the dispatcher's replay (as POST /_mock/webhooks/{id}/replay), then back."""
    view = view_of(request)
    event = webhooks_of(request).event(request.match_info["id"])
    if event is None:
        what = f"Webhook event {request.match_info['id']}"
        return html_response(not_found_page(view, request.app[TENANTS].existing(), what), status=404)
    await webhooks_of(request).replay(event.id)
    location = view.url(_request_path(event.request), replayed=event.id) + "#webhooks"
    return web.Response(status=303, headers={"Location": location}, text="303: See Other")


def setup(app: web.Application) -> None:
    """Register the dashboard's routes (with the control API: same guard, same namespaces)."""
    add(app, "GET", INDEX, show_index)
    add(app, "GET", REQUEST_PAGE, show_request)
    add(app, "POST", REPLAY, replay_webhook)
