"""Deadlines against slow and half-open clients: the request head, the request body, keep-alive idling.

The sandbox is served by :class:`SandboxSite`, whose connections are :class:`GuardedRequestHandler`
protocols: aiohttp's own, with deadlines added. Only aiohttp's public API is used: ``web.BaseSite``
and ``web.RequestHandler`` are subclassed through their public methods, each connection's protocol
is made from the runner's public ``server`` (as every aiohttp site does), and what a protocol must
know of its requests (one has begun, one is over, its body) it hears from
:func:`connection_middleware`, the application's first middleware.

- **Idle**: aiohttp's own ``keepalive_timeout``. Its timer runs from the connection's opening and from
  the end of each response, and closes the connection if no complete request head has arrived by then.
- **Head**: aiohttp has no head-read timeout of its own (the idle timer above is the only bound, and it is
  as long as the keep-alive time). A timer is armed when the connection opens and, on a kept-alive
  connection, when the first byte of the next head arrives (the time before that is idling); it is
  cancelled once the request reaches the application, and closes the transport if it fires first
  while no answer is still being sent (a head that waits behind another answer is the server's
  delay). Bytes that come while a request is in the application, or before its body is complete,
  are not a head. Counting from the first byte on
  later requests, not from the previous response, keeps ``--idle-timeout`` meaningful when it is
  longer than ``--header-timeout``.
- **Body**: while a request's body is incomplete, a watchdog checks that body bytes keep arriving.
  No byte for ``body_timeout`` while the server is reading (aiohttp pauses reading when the
  application does not consume: not the client's fault) fails the body stream with :class:`BodyTimeout`,
  which every body read in the application (JSON, forms, multipart, raw) then raises: the error
  middleware answers the ``api.408.body_timeout`` envelope and the connection is closed. A body nobody
  reads is drained and dropped by aiohttp (``lingering_time``), which treats the timeout as "give up".
  A body still incomplete ``body_deadline`` seconds after it started, however it trickles, fails the
  same way (``api.408.body_deadline``); time the server spent not reading does not count.
- **Malformed requests**: a request line, header or chunking aiohttp's parser refuses is answered by
  ``RequestHandler.handle_error``; overridden here to answer the ``api.400.malformed_http`` envelope
  of the family the request line's path names, with one WARNING line instead of a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Deadlines:
    """How long a connection may idle, send a head, stall a body, or send one at all (seconds; 0: no limit)."""

    idle: float
    header: float
    body: float
    body_total: float

    @classmethod
    def of(cls, config: Config) -> Deadlines:
        """The deadlines ``config`` sets."""
        return cls(config.idle_timeout, config.header_timeout, config.body_timeout, config.body_deadline)


class GuardedRequestHandler(web.RequestHandler):
    """aiohttp's protocol plus a request-head deadline and a request-body progress watchdog."""

    def __init__(self, manager: web.Server, deadlines: Deadlines, *, loop: asyncio.AbstractEventLoop,
                 **kwargs: Any) -> None:
        super().__init__(manager, loop=loop, keepalive_timeout=deadlines.idle, **kwargs)
        self._guard_loop = loop
        self._deadlines = deadlines
        self._head_timer: asyncio.TimerHandle | None = None
        self._in_application = False  # a request of this connection is in the application
        self._body: StreamReader | None = None  # the latest request's, while it is incomplete
        self._last_body: StreamReader | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_started = self._body_checked = self._body_progress = 0.0
        # The first bytes of the latest request head, for the envelope of a head the parser refuses.
        self._head_start = b""
        self._head_seen = False

    # --- what the application tells ---------------------------------------------------------------

    def request_started(self, body: StreamReader) -> None:
        """A request reached the application: its head is complete; ``body`` is watched until it is."""
        self._in_application = True
        self._head_seen = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._watch_body(body)

    def request_finished(self) -> None:
        """The application is done with the latest request."""
        self._in_application = False

    # --- the request head -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        if data and self._between_requests():
            if not self._head_seen:  # the first bytes of a head
                self._head_start, self._head_seen = bytes(data[:_HEAD_KEPT]), True
            if self._head_timer is None:
                self._arm_head_timer()  # the first byte of the next head on a kept-alive connection
        elif self._body is not None:
            self._body_progress = self._guard_loop.time()
        super().data_received(data)

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """A request the HTTP parser refused (bad request line, headers or chunking): one WARNING
        line, and the 400 in the envelope of the family its path names; anything else as aiohttp does."""
        if not isinstance(exc, HttpProcessingError):
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
        self._body = self._last_body = None
        super().connection_lost(exc)

    def _between_requests(self) -> bool:
        # Bytes now are a head's: no request is in the application and the latest one's body is whole.
        return not self._in_application and (self._last_body is None or self._last_body.is_eof())

    def _arm_head_timer(self) -> None:
        if self._deadlines.header:
            self._head_timer = self._guard_loop.call_later(self._deadlines.header, self._head_deadline)

    def _head_deadline(self) -> None:
        # Cancelled once a request reaches the application: firing, it finds no complete head.
        self._head_timer = None
        transport = self.transport
        if transport is None:
            return
        if transport.get_write_buffer_size():  # type: ignore[attr-defined]
            self._arm_head_timer()  # an answer is still going out: the head waits for the server
            return
        log.info("closing connection from %s: no complete request head within %gs",
                 self.peername, self._deadlines.header)
        self.force_close()

    # --- the request body -------------------------------------------------------------------------

    def _watch_body(self, payload: StreamReader) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        self._body, self._last_body = None, payload
        limits = (self._deadlines.body, self._deadlines.body_total)
        if not any(limits) or payload.is_eof() or payload.exception() is not None:
            return
        self._body = payload
        self._body_progress = self._body_started = self._body_checked = self._guard_loop.time()
        self._schedule_body_check()

    def _schedule_body_check(self) -> None:
        # Checked a few times per period, so that time spent paused by the server is not the client's.
        period = min(limit for limit in (self._deadlines.body, self._deadlines.body_total) if limit)
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
        total, stall = self._deadlines.body_total, self._deadlines.body
        if total and now - self._body_started >= total:
            log.info("request body from %s not complete after %gs: abandoned", self.peername, total)
            self._body = None
            payload.set_exception(BodyTimeout(total, "api.408.body_deadline"))
            return
        if not stall or now - self._body_progress < stall:
            self._schedule_body_check()
            return
        log.info("request body from %s stalled for %gs: abandoned", self.peername, stall)
        self._body = None
        payload.set_exception(BodyTimeout(stall))


@web.middleware
async def connection_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Tells the connection's protocol when a request begins and ends (the first middleware)."""
    protocol = request.protocol
    if not isinstance(protocol, GuardedRequestHandler):  # served by a plain aiohttp site
        return await handler(request)
    protocol.request_started(request.content)
    try:
        return await handler(request)
    finally:
        protocol.request_finished()


def request_path(head: bytes) -> str | None:
    """The path of the request line ``head`` starts with (RFC 9112: method, target, version, single
    spaces), when the target is a path; only to choose the envelope of a request refused as malformed."""
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    if len(parts) < 2 or not parts[1].startswith(b"/"):
        return None
    return urlsplit(parts[1].decode("latin-1")).path


class SandboxSite(web.BaseSite):
    """A TCP site (``host`` and ``port``, or a bound ``sock``) whose connections are
    :class:`GuardedRequestHandler` protocols with ``deadlines``; ``access_log`` as aiohttp's."""

    __slots__ = ("_access_log", "_deadlines", "_guarded_runner", "_host", "_listening", "_port", "_sock")

    def __init__(self, runner: web.BaseRunner, deadlines: Deadlines, *, host: str | None = None,
                 port: int | None = None, sock: socket.socket | None = None,
                 access_log: logging.Logger | None = None) -> None:
        super().__init__(runner)
        self._guarded_runner = runner
        self._deadlines = deadlines
        self._host, self._port, self._sock = host, port, sock
        self._access_log = access_log
        self._listening: asyncio.Server | None = None

    @property
    def name(self) -> str:
        host = self._host if self._sock is None else self._sock.getsockname()[0]
        return f"http://{host}:{self.port}"

    @property
    def port(self) -> int | None:
        """The port listened on (the one the system chose, for port 0); None before :meth:`start`."""
        if self._listening is None:
            return None
        return self._listening.sockets[0].getsockname()[1]

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._guarded_runner.server
        assert server is not None

        def connection() -> GuardedRequestHandler:
            return GuardedRequestHandler(server, self._deadlines, loop=loop, access_log=self._access_log)

        if self._sock is not None:
            self._listening = await loop.create_server(connection, sock=self._sock)
        else:
            self._listening = await loop.create_server(connection, self._host, self._port)

    async def stop(self) -> None:
        if self._listening is not None:
            self._listening.close()
        await super().stop()
