"""The ``oneshot_mock`` pytest fixture: a sandbox for a client app's tests, clean for every test.

Installed with the package (entry point ``pytest11``). The sandbox runs in-process, in a background
thread, shared by the session (``oneshot_mock_scope = session``, the default, reset before each test)
or started for each test (``function``); ``--oneshot-mock-url URL`` uses a running sandbox instead.
Ini options: ``oneshot_mock_scope``, ``oneshot_mock_seed``, ``oneshot_mock_otp``, ``oneshot_mock_scenarios``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any

import pytest

from mock_server.client import ControlClient

if TYPE_CHECKING:
    from aiohttp import web

SCOPES = ("session", "function")
_TIMEOUT_S = 60.0


class OneShotMock(ControlClient):
    """What a test gets: the sandbox's URLs, ``namespace``/``headers``, and the control API helpers."""

    @property
    def api_url(self) -> str:
        """The legacy family's base URL (``/api/v1``)."""
        return self.base_url + "/api/v1"

    @property
    def new_api_url(self) -> str:
        """The newer family's base URL (``/oneshot/api/v1``)."""
        return self.base_url + "/oneshot/api/v1"


class ThreadedSandbox:
    """The sandbox served by a background thread on its own event loop, so that sync tests can call it."""

    def __init__(self, executor: Executor, seed: int = 0, otp: str | None = None) -> None:
        # aiohttp and the sandbox are imported only when a sandbox starts: this module is loaded by
        # every pytest run of an environment that has the package, most of which never use it.
        from mock_server.config import Config

        # Bound here rather than in the thread: the port is known before the app is built (issued
        # certificates carry it in their CRL and OCSP URLs) and nothing can take it in between.
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.config = Config(host="127.0.0.1", port=self._socket.getsockname()[1], seed=seed, otp=otp)
        self._executor = executor
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._serve, name="oneshot-mock", daemon=True)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return self.config.base_url

    def start(self) -> ThreadedSandbox:
        """Serve until :meth:`stop`; returns once the sandbox accepts connections."""
        self._thread.start()
        if not self._ready.wait(_TIMEOUT_S):
            raise RuntimeError(f"oneshot-mock did not start within {_TIMEOUT_S:.0f} s")
        if self._failure is not None:
            raise RuntimeError(f"oneshot-mock did not start: {self._failure}") from self._failure
        return self

    def stop(self) -> None:
        """Close the sandbox (pending webhooks get their grace period) and its thread."""
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(_TIMEOUT_S)
        if self._thread.is_alive():
            raise RuntimeError(f"oneshot-mock did not stop within {_TIMEOUT_S:.0f} s")
        if self._failure is not None:
            raise RuntimeError(f"oneshot-mock did not stop cleanly: {self._failure}") from self._failure

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            runner = self._loop.run_until_complete(self._start())
        except Exception as failure:  # noqa: BLE001 - start() raises it in the test's thread
            self._failure = failure
            self._socket.close()
            self._loop.close()
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        try:
            self._loop.run_until_complete(runner.cleanup())
        except Exception as failure:  # noqa: BLE001 - stop() raises it in the test's thread
            self._failure = failure
        finally:
            self._loop.close()

    async def _start(self) -> web.AppRunner:
        from aiohttp import web

        from mock_server.app import create_app

        runner = web.AppRunner(create_app(self.config, self._executor), access_log=None)
        await runner.setup()
        await web.SockSite(runner, self._socket).start()
        return runner


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("oneshot-mock", "oneshot-mock sandbox (the oneshot_mock fixture)")
    group.addoption("--oneshot-mock-url", default=None, metavar="URL",
                    help="use the sandbox running at URL instead of starting one (pytest-xdist workers "
                         "then each get their own X-Mock-Namespace)")
    group.addoption("--oneshot-mock-admin-token", default=None, metavar="TOKEN",
                    help="the --admin-token of the sandbox at --oneshot-mock-url")
    group.addoption("--oneshot-mock-scope", default=None, choices=SCOPES,
                    help="override the oneshot_mock_scope ini option")
    parser.addini("oneshot_mock_scope", "session (one sandbox, reset before each test, the default) or "
                  "function (a sandbox per test)", default="session")
    parser.addini("oneshot_mock_seed", "seed of the sandbox's random values: pks, uids, OTPs (default 0)",
                  default="0")
    parser.addini("oneshot_mock_otp", "a fixed OTP code for every request (default: random codes)", default="")
    parser.addini("oneshot_mock_scenarios", "scenario files (YAML or JSON) loaded before each test",
                  type="paths", default=[])


def pytest_configure(config: pytest.Config) -> None:
    # Bad settings stop the run at once, before any test fails for an unrelated-looking reason.
    scope = str(config.getini("oneshot_mock_scope")).strip()
    if scope not in SCOPES:
        raise pytest.UsageError(f"oneshot_mock_scope must be session or function, not {scope!r}")
    seed = str(config.getini("oneshot_mock_seed")).strip()
    if not seed.isdecimal():
        raise pytest.UsageError(f"oneshot_mock_seed must be a non-negative integer, not {seed!r}")


def _scope(fixture_name: str, config: pytest.Config) -> str:
    return config.getoption("oneshot_mock_scope") or str(config.getini("oneshot_mock_scope")).strip()


@pytest.fixture(scope="session")
def _oneshot_mock_executor() -> Iterator[Executor]:
    """One pool of signing workers for every sandbox of the session: spawning them costs seconds."""
    from mock_server.workers import signing_pool

    pool = signing_pool(2)
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope=_scope)
def _oneshot_mock_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """The sandbox's base URL: the external one, or a sandbox started for the session (or the test)."""
    external = request.config.getoption("oneshot_mock_url")
    if external:
        yield external.rstrip("/")
        return
    otp = str(request.config.getini("oneshot_mock_otp")).strip() or None
    seed = int(str(request.config.getini("oneshot_mock_seed")).strip())
    sandbox = ThreadedSandbox(request.getfixturevalue("_oneshot_mock_executor"), seed=seed, otp=otp).start()
    yield sandbox.base_url
    sandbox.stop()


def _namespace(config: pytest.Config) -> str | None:
    # xdist workers sharing one external sandbox must not reset each other's state. In-process
    # sandboxes need none: each worker starts its own. The name is stable across runs so that
    # repeated runs reuse the same namespaces instead of filling the server's quota.
    worker: Any = getattr(config, "workerinput", None)
    if worker is not None and config.getoption("oneshot_mock_url"):
        return f"pytest-{worker['workerid']}"
    return None


@pytest.fixture
def oneshot_mock(request: pytest.FixtureRequest, _oneshot_mock_server: str) -> OneShotMock:
    """The sandbox, reset for this test: its URLs, and helpers such as ``latest_otp(pk)``."""
    config = request.config
    sandbox = OneShotMock(_oneshot_mock_server, namespace=_namespace(config),
                          admin_token=config.getoption("oneshot_mock_admin_token"))
    sandbox.reset()
    for path in config.getini("oneshot_mock_scenarios"):
        sandbox.load_scenario(path)
    return sandbox
