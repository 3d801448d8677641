"""Shared fixtures: a sandbox per test driven over real HTTP, and independent validators."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestClient
from yarl import URL

from mock_server.server.app import create_app
from mock_server.server.config import Config
from mock_server.server.processes import free_port
from mock_server.server.slow_clients import Deadlines, SandboxSite
from mock_server.server.workers import signing_pool
from tests.helpers import SandboxClient
from tests.receivers import Receiver

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("ONESHOT_MOCK_CORPUS", REPO.parent / "shared" / "corpus" / "pdf"))
ROOT_PEM = REPO / "fixtures" / "pki" / "root.pem"

MakeClient = Callable[..., Awaitable[SandboxClient]]


@pytest.fixture(scope="session")
def executor():
    """One signing process pool for the whole run (spawning one per test costs seconds)."""
    pool = signing_pool(2)
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)


class SandboxTestServer(BaseTestServer):
    """The sandbox served as ``serve`` serves it (on a SandboxSite, with its connection deadlines),
    on ``config.port`` of 127.0.0.1, for aiohttp's TestClient."""

    def __init__(self, app: web.Application, config: Config) -> None:
        super().__init__(host="127.0.0.1", port=config.port)
        self.app = app
        self._deadlines = Deadlines.of(config)
        self._base: URL | None = None

    async def _make_runner(self, **kwargs) -> web.AppRunner:
        return web.AppRunner(self.app, **kwargs)

    async def start_server(self, loop=None, **kwargs) -> None:
        if self.runner:
            return
        self.runner = await self._make_runner(handler_cancellation=True)
        await self.runner.setup()
        site = SandboxSite(self.runner, self._deadlines, host=self.host, port=self.port or 0)
        await site.start()
        self.port, self.scheme = site.port, "http"
        self._base = URL(f"http://{self.host}:{self.port}")

    def make_url(self, path) -> URL:
        url = URL(path)
        assert self._base is not None and not url.absolute
        return self._base.join(url)


@pytest.fixture
async def make_client(aiohttp_client, executor) -> AsyncIterator[MakeClient]:
    """Start a sandbox with some config fields changed; returns a :class:`SandboxClient`."""

    async def make(**changes) -> SandboxClient:
        # A known port, so the CRL and OCSP URLs in issued certificates reach this very server.
        port = free_port()
        config = replace(Config(seed=1234, port=port), **changes)
        client: TestClient = await aiohttp_client(SandboxTestServer(create_app(config, executor), config))
        return SandboxClient(client)

    yield make


@pytest.fixture
async def sandbox(make_client) -> SandboxClient:
    return await make_client()


@pytest.fixture
async def start_receiver() -> AsyncIterator[Callable[..., Awaitable[Receiver]]]:
    """Start receivers on 127.0.0.1 (a free port, or ``port``); every one is stopped at the end.

    Ask for it before the sandbox in a test's arguments, so that receivers outlive the sandbox.
    """
    runners: list[tuple[Receiver, web.AppRunner]] = []

    async def start(port: int = 0) -> Receiver:
        receiver = Receiver()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", receiver.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        runners.append((receiver, runner))
        await site.start()
        receiver.port = site._server.sockets[0].getsockname()[1]
        return receiver

    yield start
    for receiver, runner in runners:
        receiver.released.set()
        await runner.cleanup()


@pytest.fixture
async def receiver(start_receiver) -> Receiver:
    return await start_receiver()


@pytest.fixture
def openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        pytest.skip("openssl not installed")
    return path


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"PDF corpus not found at {CORPUS}")
    return CORPUS


@pytest.fixture(scope="session")
def nss_db(tmp_path_factory) -> Path:
    """An NSS database trusting the sandbox root, for poppler's pdfsig."""
    if not (shutil.which("pdfsig") and shutil.which("certutil")):
        pytest.skip("pdfsig/certutil not installed (poppler-utils, libnss3-tools)")
    db = tmp_path_factory.mktemp("nssdb")
    subprocess.run(["certutil", "-N", "-d", f"sql:{db}", "--empty-password"], check=True)
    subprocess.run(
        ["certutil", "-A", "-d", f"sql:{db}", "-n", "oneshot-mock-root", "-t", "CT,C,C", "-i", str(ROOT_PEM)],
        check=True,
    )
    return db
