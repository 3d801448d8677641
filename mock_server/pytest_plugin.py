"""The ``oneshot_mock`` pytest fixture: a sandbox per test session (or per test), reset for every test.

Installed with the package (entry point ``pytest11``). Options (``pytest.ini``/``pyproject.toml``
``[tool.pytest.ini_options]``): ``oneshot_mock_scope`` (``session``, the default, or ``function``),
``oneshot_mock_seed``, ``oneshot_mock_otp`` (a fixed code). ``--oneshot-mock-url URL`` uses a running
sandbox instead of starting one; under pytest-xdist each worker then gets its own namespace.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import Executor
from typing import Any

import pytest
from aiohttp import web

from mock_server.client import ControlClient
from mock_server.config import Config


class OneShotMock(ControlClient):
    """What a test gets: the sandbox's URLs and the control API helpers."""

    @property
    def api_url(self) -> str:
        """The legacy family's base URL (``/api/v1``)."""
        return self.base_url + "/api/v1"

    @property
    def new_api_url(self) -> str:
        """The newer family's base URL (``/oneshot/api/v1``)."""
        return self.base_url + "/oneshot/api/v1"


class ThreadedSandbox:
    """The sandbox served from a background thread with its own event loop (tests may be sync)."""

    def __init__(self, config: Config, executor: Executor) -> None:
        self.config = config
        self._executor = executor
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._serve, name="oneshot-mock", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.config.port}"

    def start(self) -> ThreadedSandbox:
        self._thread.start()
        self._ready.wait(timeout=60)
        if self._failure is not None:
            raise RuntimeError(f"oneshot-mock did not start: {self._failure}") from self._failure
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=60)
        self._loop.close()

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._start())
        except Exception as failure:  # noqa: BLE001 - reported to start() in the test's thread
            self._failure = failure
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        from mock_server.app import create_app

        self._runner = web.AppRunner(create_app(self.config, self._executor), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.config.host, self.config.port).start()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("oneshot-mock")
    group.addoption("--oneshot-mock-url", default=None, metavar="URL",
                    help="use the oneshot-mock sandbox running at URL instead of starting one")
    parser.addini("oneshot_mock_scope", "session (one sandbox, reset per test) or function", default="session")
    parser.addini("oneshot_mock_seed", "seed of the sandbox's random values", default="0")
    parser.addini("oneshot_mock_otp", "a fixed OTP code for every request (default: random)", default="")


def _scope(fixture_name: str, config: pytest.Config) -> str:
    scope = str(config.getini("oneshot_mock_scope")).strip()
    if scope not in ("session", "function"):
        raise pytest.UsageError(f"oneshot_mock_scope must be session or function, not {scope!r}")
    return scope


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def _oneshot_mock_executor() -> Iterator[Executor]:
    """One pool of signing workers for every sandbox the session starts (they take a while to spawn)."""
    from mock_server.workers import signing_pool

    pool = signing_pool(2)
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope=_scope)
def _oneshot_mock_url(request: pytest.FixtureRequest) -> Iterator[str]:
    external = request.config.getoption("--oneshot-mock-url")
    if external:
        yield external.rstrip("/")
        return
    otp = str(request.config.getini("oneshot_mock_otp")).strip() or None
    config = Config(port=_free_port(), seed=int(request.config.getini("oneshot_mock_seed")), otp=otp)
    sandbox = ThreadedSandbox(config, request.getfixturevalue("_oneshot_mock_executor")).start()
    yield sandbox.base_url
    sandbox.stop()


def _namespace(config: pytest.Config) -> str | None:
    # Workers of pytest-xdist sharing one external sandbox must not reset each other's state.
    worker: Any = getattr(config, "workerinput", None)
    if worker is not None and config.getoption("--oneshot-mock-url"):
        return f"pytest-{worker['workerid']}"
    return None


@pytest.fixture
def oneshot_mock(request: pytest.FixtureRequest, _oneshot_mock_url: str) -> OneShotMock:
    """The sandbox, reset for this test: URLs, and helpers such as ``latest_otp(pk)``."""
    sandbox = OneShotMock(_oneshot_mock_url, namespace=_namespace(request.config))
    sandbox.reset()
    return sandbox
