"""``create_app``: the aiohttp application, its middlewares and background resources."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from mock_server import scenario_library
from mock_server.api import (
    admin,
    control,
    dashboard,
    dashboard_actions,
    events,
    journal,
    legacy,
    namirial,
    openapi,
    videoid_page,
)
from mock_server.api.envelopes import renderer_for
from mock_server.api.faults import known_operations, scenario_middleware
from mock_server.api.journal import NEAR_MISS_HEADER, near_misses
from mock_server.api.keys import (
    ACROSS_NAMESPACES,
    CALL_NOTES,
    CONFIG,
    READS_NO_STATE,
    TENANT,
    TENANTS,
    CallNotes,
    notes_of,
    request_pk_of,
)
from mock_server.domain import tenancy
from mock_server.domain.errors import VendorError, vendor_error
from mock_server.domain.ids import parse_number
from mock_server.domain.journal import Journal
from mock_server.domain.lifecycle import SandboxReset
from mock_server.domain.live import Feed
from mock_server.domain.pkspace import PkSpace
from mock_server.domain.retention import RetentionPolicy
from mock_server.domain.scenarios import ScenarioBook, ScenarioError, check_operations, magic_values, parse_scenario
from mock_server.domain.seedfile import SeedData
from mock_server.domain.service import Runner, Sandbox, SandboxSettings
from mock_server.domain.sms import OtpPolicy
from mock_server.domain.tenancy import Tenant, Tenants, namespace_seed
from mock_server.domain.webhooks import WebhookDispatcher, WebhookSettings
from mock_server.pki.authority import PkiMaterial
from mock_server.pki.keypool import KeyPool
from mock_server.pki.signing import warm_up
from mock_server.server import gcpolicy
from mock_server.server.config import Config
from mock_server.server.logs import log_access
from mock_server.server.slow_clients import connection_middleware
from mock_server.server.workers import signing_pool
from mock_server.storage.persistence import DataDir, Persistence

log = logging.getLogger("mock_server")

def _render(path: str, error: VendorError) -> web.Response:
    return renderer_for(path)(error)


@web.middleware
async def access_log_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """One line per request: method, path, status, milliseconds, request pk when known; and the
    call in the request journal."""
    started = time.perf_counter()
    notes = request[CALL_NOTES] = CallNotes()
    response = await handler(request)
    elapsed = (time.perf_counter() - started) * 1000
    pk = request_pk_of(request) or notes.request_pk
    journal.record(request, response, elapsed, notes, pk)
    log_access(request.method, request.path, response.status, elapsed, pk)
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Every failure leaves in an envelope: catalogue errors, unknown routes, bugs."""
    try:
        return await handler(request)
    except VendorError as error:
        return _answer_error(request, error)
    except control.ControlError as error:
        return web.json_response({"error": str(error), "status": error.http_status}, status=error.http_status)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed) as missed:
        name = "404.unknown_route" if isinstance(missed, web.HTTPNotFound) else "405.method_not_allowed"
        response = _answer_error(request, vendor_error(f"api.{name}", method=request.method, path=request.path))
        # The closest documented routes, in a header: the body stays the vendor's.
        notes = notes_of(request)
        notes.near_misses = near_misses(request.app, request.method, request.path)
        if notes.near_misses:
            response.headers[NEAR_MISS_HEADER] = ", ".join(notes.near_misses)
        return response
    except web.HTTPRequestEntityTooLarge:
        return _answer_error(request, vendor_error("api.413.body_too_large",
                                                   limit=request.app[CONFIG].max_body_bytes))
    except (web.HTTPException, asyncio.CancelledError):
        raise
    except Exception:
        reference = uuid.uuid4().hex[:12]
        log.exception("unhandled error (reference %s) on %s %s", reference, request.method, request.path)
        return _answer_error(request, vendor_error("api.500.internal", reference=reference))


def _answer_error(request: web.Request, error: VendorError) -> web.Response:
    notes_of(request).error = error.spec.key
    return _render(request.path, error)


def _scenario_file(path: Path) -> tuple[dict[str, Any], str]:
    path = scenario_library.source(str(path))  # a name of the library the package ships, where no such file is
    try:
        return parse_scenario(path.read_text(encoding="utf-8"), str(path)), str(path)
    except OSError as fault:
        raise ScenarioError(f"{path}: {fault}") from None


def sandbox_settings(config: Config) -> SandboxSettings:
    """The domain's settings from the CLI's."""
    return SandboxSettings(
        seed=config.seed,
        otp=OtpPolicy(
            ttl=timedelta(seconds=config.otp_ttl_seconds),
            resend_interval=timedelta(seconds=config.otp_resend_seconds),
            fixed_code=config.otp,
            outbox_cap=config.max_log_entries,
        ),
        public_url=config.base_url,
        ra_webhooks=config.ra_webhooks,
        videoid_auto_complete=config.videoid_auto_complete,
        clock_start=config.clock_start,
        retention=RetentionPolicy(config.retain_requests, config.retain_for),
    )


def _after_reset(book: ScenarioBook, calls: Journal) -> None:
    book.reset()
    calls.clear()
    gcpolicy.release()


def _tenant_builder(config: Config, pki: PkiMaterial, run: Runner, keys: KeyPool,
                    scenario_files: list[tuple[dict[str, Any], str]], feed: Feed,
                    commit: Callable[[], Awaitable[None]] | None = None) -> Callable[[str], Tenant]:
    seed = SeedData.load(config.seed_file) if config.seed_file else None
    pks = PkSpace()
    webhook_settings = WebhookSettings(
        secret=config.webhook_secret,
        default_format=config.webhook_format,
        retry_scale=config.webhook_retry_scale,
        log_cap=config.max_log_entries,
    )

    def build(namespace: str) -> Tenant:
        settings = replace(sandbox_settings(config), seed=namespace_seed(config.seed, namespace), namespace=namespace)
        sandbox = Sandbox(settings, pki, run, seed, keys, pks)
        book = ScenarioBook(settings.seed, [magic_values(), *scenario_files])
        calls = Journal(config.max_log_entries)
        sandbox.events.subscribe(lambda event: _after_reset(book, calls) if isinstance(event, SandboxReset) else None)
        if commit is not None:
            sandbox.commit = commit
            sandbox.changes.record()
            sandbox.changes.everything()  # the start state (a seed file's requests) is saved too
        tenant = Tenant(namespace, sandbox, WebhookDispatcher(sandbox, webhook_settings), book, calls)
        feed.watch(tenant)
        return tenant

    return build


def persistence_middleware(persistence: Persistence) -> Any:
    """A change is answered only once it is in the data dir; so is a read that shows something not
    saved yet (the contract it signed on first fetch, a background result, another call's change
    whose commit is under way), so nothing a client saw is lost to a kill."""

    def unsaved_read(request: web.Request) -> bool:
        tenant = request.get(TENANT)
        if tenant is None or getattr(request.match_info.handler, READS_NO_STATE, False):
            return False
        return persistence.unsaved(tenant, _shown_pk(request))

    async def stored(request: web.Request) -> web.Response | None:
        """None once what the call changed or read is committed; the 500 to answer when it could not be."""
        reads = request.method in ("GET", "HEAD", "OPTIONS")
        if reads and not unsaved_read(request):
            return None
        tenant = request.get(TENANT)
        if not reads and tenant is not None and request_pk_of(request) is None and notes_of(request).request_pk is None:
            # A change about no request: to tokens, RAOs, images or metadata (compared row by row).
            tenant.sandbox.changes.pieces()
        try:
            await persistence.flush()
        except (OSError, sqlite3.Error) as fault:
            log.exception("could not store the change of %s %s", request.method, request.path)
            return _render(request.path, vendor_error("api.500.not_stored", error=str(fault)))
        return None

    @web.middleware
    async def persist(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException:  # a raised answer (the link page's 303) acknowledges a change too
            refused = await stored(request)
            if refused is not None:
                return refused
            raise
        return await stored(request) or response

    return persist


def _shown_pk(request: web.Request) -> int | None:
    """The one request whose state a read shows (the URL's pk, or the control API's ``?request=``
    filter), or None for a read that may show anything of its namespace."""
    text = request_pk_of(request)
    if text is None and control.owns(request.path):
        text = request.query.get("request")
    return parse_number(text)


@web.middleware
async def namespace_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Route the call to its namespace: the ``X-Mock-Namespace`` header, or ``?namespace=`` on ``/_mock/``."""
    namespace = request.headers.get(tenancy.HEADER)
    if namespace is None and control.owns(request.path):
        namespace = request.query.get("namespace")
    if getattr(request.match_info.handler, ACROSS_NAMESPACES, False):
        namespace = tenancy.DEFAULT
    try:
        request[TENANT] = await request.app[TENANTS].get(namespace or tenancy.DEFAULT)
    except tenancy.NamespaceRefused as refused:
        raise vendor_error("api.400.bad_namespace", reason=str(refused)) from None
    return await handler(request)


def create_app(config: Config, executor: Executor | None = None) -> web.Application:
    """The sandbox application. Signing runs in ``executor`` (a process pool of its own if None)."""
    owned = executor is None
    pool: Executor = executor or signing_pool(config.workers, config.signing_priority)

    async def run(fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    scenario_files = [_scenario_file(p) for p in config.scenarios]
    pki = PkiMaterial.from_dir(config.pki_dir) if config.pki_dir else PkiMaterial.bundled()
    keys = KeyPool(run, sandbox_settings(config).key_pool_size, config.one_shot_key)
    persistence = Persistence(DataDir(config.data_dir)) if config.data_dir else None
    commit = persistence.flush if persistence is not None else None
    feed = Feed(commit)
    tenants = Tenants(_tenant_builder(config, pki, run, keys, scenario_files, feed, commit), config.max_namespaces,
                      persistence)

    middlewares: list[Any] = [connection_middleware, access_log_middleware]
    if persistence is not None:
        persistence.restore(tenants)
        middlewares.append(persistence_middleware(persistence))
    if config.admin_token:
        middlewares.append(admin.guard(config.admin_token))
    middlewares += [error_middleware, namespace_middleware, scenario_middleware]
    app = web.Application(middlewares=middlewares, client_max_size=config.max_body_bytes)
    app[CONFIG] = config
    app[TENANTS] = tenants
    dashboard.setup_templates(app)  # the sign-in page too, which the admin guard may answer anywhere
    journal.setup(app)
    events.setup(app, feed)
    legacy.setup(app)
    namirial.setup(app)
    if config.control_api:
        control.setup(app)
        dashboard.setup(app)
        dashboard_actions.setup(app)
        admin.setup(app, config.admin_token)
    videoid_page.setup(app)
    openapi.setup(app)
    operations = known_operations(app)
    for document, source in scenario_files:
        check_operations(document, source, operations)

    async def background(app: web.Application):
        keys.start()
        await tenants.start()
        if persistence is not None:
            persistence.start()
        # Workers start on first use, each importing pyHanko for about a second: the first
        # uploads and signatures would pay for it. Started now, in the background.
        warming = asyncio.gather(*(run(warm_up) for _ in range(config.workers)),
                                 return_exceptions=True) if owned else None
        yield
        if warming is not None:
            warming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await warming  # retrieved, so a stop during start-up logs no "never retrieved"
        await tenants.close()
        if persistence is not None:
            await persistence.close()
        await keys.stop()
        if owned:
            pool.shutdown(wait=True, cancel_futures=True)

    app.cleanup_ctx.append(background)
    return app
