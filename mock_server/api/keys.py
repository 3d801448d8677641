"""Typed application and request keys shared by the HTTP adapters."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web

from mock_server.domain.live import Feed
from mock_server.domain.scenarios import ScenarioBook
from mock_server.domain.service import Sandbox
from mock_server.domain.tenancy import Tenant, Tenants
from mock_server.domain.webhooks import WebhookDispatcher
from mock_server.server.config import Config

Handler = TypeVar("Handler", bound=Callable[[web.Request], Awaitable[web.StreamResponse]])

CONFIG = web.AppKey("config", Config)
TENANTS = web.AppKey("tenants", Tenants)
# The live events every namespace streams.
FEED = web.AppKey("event_feed", Feed)
# The namespace a call addresses, resolved by the namespace middleware.
TENANT = web.RequestKey("tenant", Tenant)
# For the access log and the request journal: what a parser read of the body (JSON or form fields, multipart parts
# listed), the catalogue key of the error answered, and the routes an unknown one came closest to.
class CallNotes:
    """What the layers of one call leave for the journal (one object: a missing request key costs
    a raised KeyError on every call's path)."""

    __slots__ = ("body_seen", "error", "near_misses", "request_pk")

    def __init__(self) -> None:
        self.body_seen: object = None
        self.error: str | None = None
        self.near_misses: tuple[str, ...] = ()
        # Set by handlers that learn a request pk the URL does not carry (create), for the logs.
        self.request_pk: int | None = None


CALL_NOTES = web.RequestKey("call_notes", CallNotes)
_NO_NOTES = CallNotes()  # a call no middleware set up notes for (the parsers' unit use): written, never read


def notes_of(request: web.Request) -> CallNotes:
    """The call's notes for the journal."""
    return request.get(CALL_NOTES, _NO_NOTES)


# The attribute of a handler that shows nothing of a namespace's state (``/hello``): a data dir's
# commit under way does not hold its answer back.
READS_NO_STATE = "reads_no_state"


def reads_no_state(handler: Handler) -> Handler:
    """Mark ``handler`` as showing nothing of the state (see :data:`READS_NO_STATE`)."""
    setattr(handler, READS_NO_STATE, True)
    return handler


def request_pk_of(request: web.Request) -> str | None:
    """The request pk a URL names (``{pk}`` in the legacy family, ``{request_pk}`` in the newer)."""
    return request.match_info.get("pk") or request.match_info.get("request_pk")


def sandbox_of(request: web.Request) -> Sandbox:
    """The sandbox of the namespace the call addresses."""
    return request[TENANT].sandbox


def webhooks_of(request: web.Request) -> WebhookDispatcher:
    """The webhook dispatcher of the namespace the call addresses."""
    return request[TENANT].webhooks


def scenarios_of(request: web.Request) -> ScenarioBook:
    """The scenario book of the namespace the call addresses."""
    return request[TENANT].scenarios


# The attribute of a handler about namespaces themselves (list, delete): it runs in the default
# namespace whatever the call names, so that naming one does not create it.
ACROSS_NAMESPACES = "across_namespaces"


def across_namespaces(handler: Handler) -> Handler:
    """Mark ``handler`` as acting on namespaces, not in one (see :data:`ACROSS_NAMESPACES`)."""
    setattr(handler, ACROSS_NAMESPACES, True)
    return handler
