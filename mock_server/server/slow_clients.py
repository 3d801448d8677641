"""Deadlines against slow and half-open clients: the request head, the request body, keep-alive idling.

What aiohttp (3.14) gives, and what is added here:

- **Idle**: aiohttp's own ``keepalive_timeout``. Its timer runs from the connection's opening and from
  the end of each response, and closes the connection if no complete request head has arrived by then.
  Passed to aiohttp as a handler argument, so ``run_app``, ``AppRunner`` and the test server all apply it.
- **Head**: aiohttp has no head-read timeout of its own (the idle timer above is the only bound, and it is
  as long as the keep-alive time). :class:`GuardedRequestHandler` arms a timer when the connection opens
  and, on a kept-alive connection, when the first byte of the next head arrives (the time before that is
  idling); the timer is cancelled once aiohttp's parser has produced the request, and closes the
  transport if it fires first. Counting from the first byte on later requests, not from the previous
  response, keeps ``--idle-timeout`` meaningful when it is longer than ``--header-timeout``.
- **Body**: while a handler runs and its body is incomplete, a watchdog checks that body bytes keep
  arriving. No byte for ``body_timeout`` while the server is reading (aiohttp pauses reading when the
  application does not consume: not the client's fault) fails the body stream with :class:`BodyTimeout`,
  which every body read in the application (JSON, forms, multipart, raw) then raises: the error
  middleware answers the ``api.408.body_timeout`` envelope and the connection is closed. A body nobody
  reads is drained and dropped by aiohttp (``lingering_time``), which treats the timeout as "give up".
  A body still incomplete ``body_deadline`` seconds after it started, however it trickles, fails the
  same way (``api.408.body_deadline``); time the server spent not reading does not count.

- **Malformed requests**: a request line, header or chunking aiohttp's parser refuses is answered by
  ``RequestHandler.handle_error``; overridden here to answer the ``api.400.malformed_http`` envelope
  of the family the request line's path names, with one WARNING line instead of a traceback.

Private aiohttp API used, because aiohttp offers no hook for these (each is a long-standing internal,
and tests/test_slow_clients.py fails if one changes): ``Application._make_handler`` (the one place every
runner gets its protocol factory from), ``Server._loop``/``Server._kwargs`` (to build the handler as
``Server.__call__`` does), ``RequestHandler._waiter`` (aiohttp's own "waiting for a head" test, the one its
keep-alive timer uses) and ``RequestHandler._request_count`` (messages parsed so far).
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.streams import StreamReader

from mock_server.api.envelopes import renderer_for
from mock_server.domain.errors import VendorError, vendor_error
from mock_server.server.config import Config

log = logging.getLogger("mock_server.server.slow_clients")
# aiohttp's own limit on a request line, and the bytes kept to find its path.
_HEAD_KEPT = 8190
# How much of a refused request's reason and path is shown.
_SHOWN = 160


class BodyTimeout(VendorError, TimeoutError):
    """A request body stalled. A :class:`VendorError`, so the error middleware answers it in the
    envelope; a :class:`TimeoutError`, so that aiohttp's draining of an unread body gives up on it
    quietly instead of logging an unhandled exception."""

    def __init__(self, seconds: float, key: str = "api.408.body_timeout") -> None:
        error = vendor_error(key, seconds=f"{seconds:g}")
        super().__init__(error.spec, error.details)


def handler_args(config: Config) -> dict[str, Any]:
    """The per-connection settings, as ``web.Application(handler_args=...)``: they reach every
    request handler however the application is served."""
    return {
        "keepalive_timeout": config.idle_timeout,
        "header_timeout": config.header_timeout,
        "body_timeout": config.body_timeout,
        "body_deadline": config.body_deadline,
    }


class GuardedRequestHandler(web.RequestHandler):
    """aiohttp's protocol plus a request-head deadline and a request-body progress watchdog."""

    def __init__(self, manager: web.Server, *, loop: asyncio.AbstractEventLoop, header_timeout: float | None = None,
                 body_timeout: float | None = None, body_deadline: float | None = None, **kwargs: Any) -> None:
        super().__init__(manager, loop=loop, **kwargs)
        self._guard_loop = loop
        self._header_timeout = header_timeout
        self._body_timeout = body_timeout
        self._body_deadline = body_deadline
        self._body_started = self._body_checked = 0.0
        self._head_timer: asyncio.TimerHandle | None = None
        self._heads_parsed = 0
        self._body: StreamReader | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_progress = 0.0
        # The first bytes of the latest request head, for the envelope of a head the parser refuses.
        self._head_start = b""
        self._head_of = -1

    # --- the request head -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        # The first bytes of a head: on a new connection (before aiohttp awaits its first message) or
        # while aiohttp waits for the next one (a body arriving meanwhile is no head).
        if data and self._head_of != self._request_count and (self._request_count == 0 or self._waiting_for_head()):
            self._head_start, self._head_of = bytes(data[:_HEAD_KEPT]), self._request_count
        if self._body is not None:
            self._body_progress = self._guard_loop.time()
        if self._head_timer is None and data and self._waiting_for_head():
            self._arm_head_timer()  # the first byte of the next head on a kept-alive connection
        super().data_received(data)
        if self._head_timer is not None and self._request_count != self._heads_parsed:
            self._head_timer.cancel()
            self._head_timer = None

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """A request the HTTP parser refused (bad request line, headers or chunking): one WARNING
        line, and the 400 in the envelope of the family its path names; anything else as aiohttp does."""
        if not isinstance(exc, HttpProcessingError) or request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        reason = (exc.message or type(exc).__name__).splitlines()[0].rstrip(":")[:_SHOWN]
        path = request_path(self._head_start)
        log.warning("malformed HTTP request from %s to %s: %s", request.remote,
                    path[:_SHOWN] if path else "an unknown path", reason)
        response = renderer_for(path or "/")(vendor_error("api.400.malformed_http", error=reason))
        response.force_close()
        return response

    def connection_lost(self, exc: BaseException | None) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None
        self._body = None
        super().connection_lost(exc)

    def _waiting_for_head(self) -> bool:
        # The test aiohttp's keep-alive timer uses: start() awaits its next message.
        return self._waiter is not None and not self._waiter.done()

    def _arm_head_timer(self) -> None:
        if self._header_timeout:
            self._heads_parsed = self._request_count
            self._head_timer = self._guard_loop.call_later(self._header_timeout, self._head_deadline)

    def _head_deadline(self) -> None:
        self._head_timer = None
        if self._request_count != self._heads_parsed or self.transport is None:
            return
        log.info("closing connection from %s: no complete request head within %gs",
                 self.peername, self._header_timeout)
        self.force_close()

    # --- the request body -------------------------------------------------------------------------

    def watch_body(self, payload: StreamReader) -> None:
        """Watch a handler's body until it is complete: called as each request starts."""
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        self._body = None
        if not (self._body_timeout or self._body_deadline) or payload.is_eof() or payload.exception() is not None:
            return
        self._body = payload
        self._body_progress = self._body_started = self._body_checked = self._guard_loop.time()
        self._schedule_body_check()

    def _schedule_body_check(self) -> None:
        # Checked a few times per period, so that time spent paused by the server is not the client's.
        period = min(limit for limit in (self._body_timeout, self._body_deadline) if limit)
        self._body_timer = self._guard_loop.call_later(min(period / 4, 1.0), self._check_body)

    def _check_body(self) -> None:
        self._body_timer = None
        payload, transport = self._body, self.transport
        if payload is None or transport is None or payload.is_eof() or payload.exception() is not None:
            self._body = None
            return
        now = self._guard_loop.time()
        if not transport.is_reading():  # type: ignore[attr-defined]
            # The application is not consuming: the server is the slow one, not the client.
            self._body_progress = now
            self._body_started += now - self._body_checked
        self._body_checked = now
        if self._body_deadline and now - self._body_started >= self._body_deadline:
            log.info("request body from %s not complete after %gs: abandoned", self.peername, self._body_deadline)
            self._body = None
            payload.set_exception(BodyTimeout(self._body_deadline, "api.408.body_deadline"))
            return
        if not self._body_timeout or now - self._body_progress < self._body_timeout:
            self._schedule_body_check()
            return
        log.info("request body from %s stalled for %gs: abandoned", self.peername, self._body_timeout)
        self._body = None
        payload.set_exception(BodyTimeout(self._body_timeout))


def request_path(head: bytes) -> str | None:
    """The path of the request line ``head`` starts with (RFC 9112: method, target, version, single
    spaces), when the target is a path; only to choose the envelope of a request refused as malformed."""
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    if len(parts) < 2 or not parts[1].startswith(b"/"):
        return None
    return urlsplit(parts[1].decode("latin-1")).path


class GuardedServer(web.Server):
    """aiohttp's low-level server, making :class:`GuardedRequestHandler` protocols."""

    def __init__(self, handler: Any, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        make_request = self.request_factory

        def request_factory(message: Any, payload: StreamReader, protocol: Any, writer: Any, task: Any) -> Any:
            if isinstance(protocol, GuardedRequestHandler):
                protocol.watch_body(payload)
            return make_request(message, payload, protocol, writer, task)

        self.request_factory = request_factory

    def __call__(self) -> GuardedRequestHandler:
        # What Server.__call__ does, with the guarded class.
        return GuardedRequestHandler(self, loop=self._loop, **self._kwargs)


with warnings.catch_warnings():
    # aiohttp discourages subclassing Application (it warns at class creation); this subclass adds
    # no state and overrides only the factory of the server every runner asks it for.
    warnings.simplefilter("ignore", DeprecationWarning)

    class SandboxApplication(web.Application):
        """``web.Application`` served by :class:`GuardedServer`, whoever runs it."""

        def _make_handler(self, **kwargs: Any) -> web.Server:
            server = super()._make_handler(**kwargs)
            return GuardedServer(server.request_handler, request_factory=server.request_factory,
                                 handler_cancellation=server.handler_cancellation, loop=server._loop,
                                 **server._kwargs)
