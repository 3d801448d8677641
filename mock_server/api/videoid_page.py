"""The eIDAS VideoID link page: what the signer would open, with the identification's outcomes
as buttons (plain HTML forms, no scripts, no external assets), and, when the control API is served,
a link back to the request's dashboard page."""

from __future__ import annotations

import html
from urllib.parse import urlencode

from aiohttp import web

from mock_server.api.control import DASHBOARD_REQUEST, namespace_query
from mock_server.api.keys import CONFIG, TENANTS
from mock_server.api.routing import add
from mock_server.domain import views
from mock_server.domain.errors import VendorError
from mock_server.domain.model import SignatureRequest, Status
from mock_server.domain.tenancy import Tenant

PREFIX = "/videoid"
_ACTIONS = (
    ("complete", "Complete identification", "VIDEOREVIEW"),
    ("incomplete", "Leave it incomplete", "VIDEOINCOMPLETE"),
    ("error", "Fail the identification", "VIDEOERROR"),
)
_STYLE = """
body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem} .test{background:#fde68a;padding:.4rem .6rem;border-radius:4px}
table{border-collapse:collapse;margin:1rem 0} td{padding:.25rem .75rem;border-bottom:1px solid #ddd}
form{display:inline-block;margin:.25rem} button{padding:.5rem .9rem;font-size:1rem;cursor:pointer}
.status{font-weight:bold} .message{background:#e0f2fe;padding:.5rem;border-radius:4px}
"""


def _page(found: SignatureRequest, link: str, back: str | None, message: str = "") -> str:
    identity = found.identity
    rows = [
        ("Request", found.pk), ("Status", found.status.value),
        ("Signer", views.signer_name(found) or "-"),
        ("Identity document", identity.serial_number or "-"), ("E-mail", identity.email),
        ("Mobile phone", identity.mobile_phone_number), ("Registration Authority", found.registration_authority),
    ]
    table = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
    waiting = found.status in (Status.VIDEOPENDING, Status.VIDEOINCOMPLETE)
    buttons = "".join(
        f'<form method="post" action="{PREFIX}/{link}/{action}">'
        f'<button type="submit" name="action" value="{action}" title="→ {status}"'
        f'{"" if waiting else " disabled"}>{label}</button></form>'
        for action, label, status in _ACTIONS
    )
    note = f'<p class="message">{html.escape(message)}</p>' if message else ""
    back_link = f'<p><a href="{html.escape(back)}">This request on the sandbox dashboard</a></p>' if back else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>VideoID - oneshot-mock</title>"
        f"<style>{_STYLE}</style></head><body><h1>Video identification</h1>"
        '<p class="test">oneshot-mock sandbox: TEST identification, nobody is filmed.</p>'
        f"{note}<table>{table}</table>{buttons}{back_link}</body></html>"
    )


def _find(request: web.Request) -> tuple[Tenant, SignatureRequest]:
    # A browser opening the link sends no namespace header: the link itself is the key.
    for tenant in request.app[TENANTS].existing():
        found = tenant.sandbox.videoid.by_link(request.match_info["link"])
        if found is not None:
            return tenant, found
    raise web.HTTPNotFound(text="No such VideoID link", content_type="text/plain")


def _dashboard_page(request: web.Request, tenant: Tenant, found: SignatureRequest) -> str | None:
    if not request.app[CONFIG].control_api:
        return None
    query = namespace_query(tenant.namespace)
    return DASHBOARD_REQUEST.format(pk=found.pk) + (f"?{urlencode(query)}" if query else "")


def _render(request: web.Request, tenant: Tenant, found: SignatureRequest, message: str = "") -> str:
    return _page(found, request.match_info["link"], _dashboard_page(request, tenant, found), message)


async def show(request: web.Request) -> web.Response:
    tenant, found = _find(request)
    message = {"done": "Identification recorded."}.get(request.query.get("result", ""), "")
    return web.Response(text=_render(request, tenant, found, message), content_type="text/html")


async def act(request: web.Request) -> web.Response:
    tenant, found = _find(request)
    outcome = request.match_info["action"]
    if outcome not in {a for a, _, _ in _ACTIONS}:
        raise web.HTTPNotFound(text="No such action", content_type="text/plain")
    try:
        tenant.sandbox.videoid.identify(found, outcome)
    except VendorError as refused:
        page = _render(request, tenant, found, str(refused.details))
        return web.Response(text=page, content_type="text/html", status=412)
    raise web.HTTPSeeOther(f"{PREFIX}/{request.match_info['link']}?result=done")


def setup(app: web.Application) -> None:
    add(app, "GET", PREFIX + "/{link}", show)
    add(app, "POST", PREFIX + "/{link}/{action}", act)
