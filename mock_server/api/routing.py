"""Route registration and responses common to every API family."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def add(app: web.Application, method: str, path: str, handler: Handler) -> None:
    """Register ``path`` with and without a trailing slash (clients send both); a GET answers HEAD
    too (RFC 9110: the same headers, no body; aiohttp leaves the body out)."""
    methods = (method, "HEAD") if method == "GET" else (method,)
    for variant in (path, path + "/"):
        for each in methods:
            app.router.add_route(each, variant, handler)


def download(data: bytes, content_type: str, filename: str) -> web.Response:
    """A binary answer with its own content type (clients tell success from error by it)."""
    safe = filename.replace('"', "").replace("\r", "").replace("\n", "")
    return web.Response(
        body=data,
        content_type=content_type,
        headers={"Content-Disposition": f'attachment; filename="{safe}"'},
    )
