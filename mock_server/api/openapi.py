"""``GET /openapi.json``: the sandbox's own OpenAPI 3.1 document.

The document is ``mock_server/openapi.yaml`` (package data) completed with the error answers: each
operation's ``x-errors`` names catalogue keys (or key prefixes); every matching catalogue entry becomes
an example of the response for its HTTP status, rendered by the envelope of the operation's family,
and every operation gets a ``default`` response in that envelope (unknown routes, malformed or
oversized bodies, internal errors). The examples are the real answers, so they cannot drift from
the catalogue.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from functools import cache
from http import HTTPStatus
from importlib import resources
from typing import Any

import yaml
from aiohttp import web

from mock_server import __version__
from mock_server.api import control, legacy, namirial
from mock_server.api.envelopes import Renderer, renderer_for
from mock_server.api.keys import reads_no_state
from mock_server.api.routing import add
from mock_server.domain.errors import CATALOGUE, vendor_error

PATH = "/openapi.json"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# The schema and wording of each family's error envelope in the document.
_ENVELOPES: dict[Renderer, tuple[str, str]] = {
    control.render_error: ("ControlError", "the control API's error"),
    namirial.render_error: ("NewerError", "the newer family's error envelope"),
    legacy.render_error: ("LegacyError", "the legacy error envelope"),
}


def _family(path: str) -> tuple[Renderer, str, str]:
    renderer = renderer_for(path)
    return renderer, *_ENVELOPES[renderer]


def catalogue_keys(selectors: Iterable[str]) -> list[str]:
    """The catalogue keys an ``x-errors`` list names: exact keys, or prefixes ending at a dot."""
    wanted = list(selectors)
    return [key for key in CATALOGUE if any(key == s or key.startswith(s + ".") for s in wanted)]


def _rendered(renderer: Renderer, key: str) -> Any:
    body = renderer(vendor_error(key)).body
    return json.loads(body if isinstance(body, bytes) else b"{}")


def _add_errors(path: str, operation: dict[str, Any]) -> None:
    renderer, schema, label = _family(path)
    reference = {"$ref": f"#/components/schemas/{schema}"}
    responses = operation.setdefault("responses", {})
    selectors = operation.get("x-errors", [])
    unknown = [s for s in selectors if not catalogue_keys([s])]
    if unknown:
        raise ValueError(f"{operation.get('operationId')}: x-errors names no catalogue entry: {unknown}")
    for key in catalogue_keys(selectors):
        status = str(CATALOGUE[key].http_status)
        response = responses.setdefault(status, {
            "description": HTTPStatus(int(status)).phrase,
            "content": {"application/json": {"schema": reference}},
        })
        media = response.setdefault("content", {}).setdefault("application/json", {"schema": reference})
        media.setdefault("examples", {})[key] = {"summary": key, "value": _rendered(renderer, key)}
    responses["default"] = {
        "description": f"Any other error, in {label} (GET /_mock/errors lists the catalogue).",
        "content": {"application/json": {"schema": reference}},
    }


@cache
def _document_bytes() -> bytes:
    source = resources.files("mock_server").joinpath("openapi.yaml").read_text(encoding="utf-8")
    return json.dumps(build(yaml.safe_load(source)), ensure_ascii=False).encode()


def build(skeleton: dict[str, Any]) -> dict[str, Any]:
    """The served document from the bundled skeleton: version filled in, error answers added."""
    document = copy.deepcopy(skeleton)
    document["info"]["version"] = __version__
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                _add_errors(path, item[method])
    return document


def document() -> dict[str, Any]:
    """The OpenAPI document the sandbox serves (a fresh copy)."""
    return json.loads(_document_bytes())


@reads_no_state
async def serve(request: web.Request) -> web.Response:
    return web.Response(body=_document_bytes(), content_type="application/json")


def setup(app: web.Application) -> None:
    add(app, "GET", PATH, serve)
