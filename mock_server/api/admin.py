"""``--admin-token``: the guard over ``/_mock/``, and the dashboard's sign-in form.

A client sends ``Authorization: Bearer <token>``. A browser cannot, so the dashboard answers a sign-in
form instead of a bare 401; a correct token sets a cookie that stands for it on every ``/_mock/``
page and download. The cookie holds a MAC of the token, not the token; it is ``HttpOnly`` and
``SameSite=Strict``, so another site's page cannot make the browser post the dashboard's forms.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from aiohttp import web

from mock_server.api import control, dashboard, parsing
from mock_server.api.routing import add

SIGN_IN = control.PREFIX + "/dashboard/sign-in"
COOKIE = "oneshot_mock_admin"
INDEX = control.PREFIX + "/"
_DASHBOARD = (control.PREFIX, INDEX)


def session_value(token: str) -> str:
    """What the sign-in cookie holds for ``token``."""
    return hmac.new(token.encode(), b"oneshot-mock dashboard session", hashlib.sha256).hexdigest()


def guard(token: str) -> Any:
    """A middleware requiring the admin token on the control API: the header, or the sign-in cookie."""
    expected = f"Bearer {token}".encode()
    session = session_value(token).encode()

    @web.middleware
    async def guarded(request: web.Request, handler: Any) -> web.StreamResponse:
        if not control.owns(request.path) or request.path == SIGN_IN:
            return await handler(request)
        given = request.headers.get("Authorization", "").encode()
        if hmac.compare_digest(given, expected):
            return await handler(request)
        if hmac.compare_digest(request.cookies.get(COOKIE, "").encode(), session):
            return await handler(request)
        status = 403 if given else 401
        if status == 401 and request.method == "GET" and _is_page(request.path):
            return _sign_in_page(request, request.path_qs, status=401)
        return web.json_response(
            {"error": "the control API needs 'Authorization: Bearer <admin token>'", "status": status},
            status=status, headers={"WWW-Authenticate": "Bearer"} if status == 401 else None,
        )

    return guarded


def setup(app: web.Application, token: str | None) -> None:
    """Register the sign-in form (outside the guard) for the sandbox's ``token``; without one there is
    nothing to sign in to, and the form's URL leads straight on to the page asked for."""

    async def show(request: web.Request) -> web.Response:
        if token is None:
            return _see_other(_local(request.query.get("next", "")))
        return _sign_in_page(request, request.query.get("next", ""))

    async def sign_in(request: web.Request) -> web.Response:
        fields = (await parsing.read_form(request, 0, "api.413.body_too_large")).fields
        target = _local(fields.get("next", ""))
        if token is None:
            return _see_other(target)
        if not hmac.compare_digest(fields.get("token", "").encode(), token.encode()):
            return _sign_in_page(request, target, status=403, problem="That is not this sandbox's admin token.")
        response = _see_other(target)
        response.set_cookie(COOKIE, session_value(token), path=control.PREFIX, httponly=True, samesite="Strict")
        return response

    add(app, "GET", SIGN_IN, show)
    add(app, "POST", SIGN_IN, sign_in)


def _see_other(target: str) -> web.Response:
    return web.Response(status=303, headers={"Location": target}, text="303: See Other")


def _is_page(path: str) -> bool:
    return path in _DASHBOARD or path.startswith(control.PREFIX + "/dashboard/")


def _local(target: str) -> str:
    """``target`` if it is a path of the control API (so never another site), else the overview."""
    return target if control.owns(target.partition("?")[0]) else INDEX


def _sign_in_page(request: web.Request, next_path: str, status: int = 200, problem: str = "") -> web.Response:
    text = dashboard.render_standalone(request, "sign_in.html", problem=problem, action=SIGN_IN, next=_local(next_path))
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return web.Response(text=text, status=status, content_type="text/html", headers=headers)
