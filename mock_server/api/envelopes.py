"""Which API family's error envelope answers a path: the one rule the error middleware and the
OpenAPI document share."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from mock_server.api import control, legacy, namirial
from mock_server.domain.errors import VendorError

Renderer = Callable[[VendorError], web.Response]

_BY_PREFIX: list[tuple[str, Renderer]] = [
    (control.PREFIX + "/", control.render_error),
    (namirial.PREFIX + "/", namirial.render_error),
    (legacy.PREFIX + "/", legacy.render_error),
]


def renderer_for(path: str) -> Renderer:
    """The ``render_error`` of the family ``path`` belongs to (legacy for anything else)."""
    for prefix, renderer in _BY_PREFIX:
        if (path + "/").startswith(prefix):  # the prefix itself too: /_mock is the dashboard
            return renderer
    return legacy.render_error
