"""The ``oneshot_mock`` pytest fixture: a sandbox for a client app's tests, clean for every test.

Installed with the package (entry point ``pytest11``). The sandbox runs in-process, in a background
thread, shared by the session (``oneshot_mock_scope = session``, the default, reset before each test)
or started for each test (``function``); ``--oneshot-mock-url URL`` uses a running sandbox instead.
Under pytest-xdist the session's sandbox is one process for all the workers, each in a namespace of
its own (:mod:`mock_server.testing.xdist_share`). Ini options: ``oneshot_mock_scope``, ``oneshot_mock_seed``,
``oneshot_mock_otp``, ``oneshot_mock_scenarios``.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest

from mock_server.testing.client import ControlClient

if TYPE_CHECKING:
    from aiohttp import web

    from mock_server.testing.xdist_share import SharedRun

SCOPES = ("session", "function")
XDIST_MODES = ("shared", "per-worker")
_TIMEOUT_S = 60.0
# The workerinput key by which the xdist controller hands its workers the shared sandbox's directory.
_SHARED_DIR = "oneshot_mock_shared_dir"
_SHARED_RUN: pytest.StashKey[SharedRun] = pytest.StashKey()


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
        from mock_server.server.config import Config

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
        from mock_server.server.app import create_app
        from mock_server.server.serving import start
        from mock_server.server.slow_clients import Deadlines

        runner, _ = await start(create_app(self.config, self._executor), Deadlines.of(self.config),
                                sock=self._socket)
        return runner


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("oneshot-mock", "oneshot-mock sandbox (the oneshot_mock fixture)")
    group.addoption("--oneshot-mock-url", default=None, metavar="URL",
                    help="use the sandbox running at URL instead of starting one (pytest-xdist workers "
                         "each get their own X-Mock-Namespace in it)")
    group.addoption("--oneshot-mock-admin-token", default=None, metavar="TOKEN",
                    help="the --admin-token of the sandbox at --oneshot-mock-url")
    group.addoption("--oneshot-mock-scope", default=None, choices=SCOPES,
                    help="override the oneshot_mock_scope ini option")
    group.addoption("--oneshot-mock-workers", type=int, default=2, metavar="N",
                    help="signing worker processes of the sandboxes the plugin starts (default 2)")
    parser.addini("oneshot_mock_scope", "session (one sandbox, reset before each test, the default) or "
                  "function (a sandbox per test)", default="session")
    parser.addini("oneshot_mock_seed", "seed of the sandbox's random values: pks, uids, OTPs (default 0)",
                  default="0")
    parser.addini("oneshot_mock_otp", "a fixed OTP code for every request (default: random codes)", default="")
    parser.addini("oneshot_mock_xdist", "under pytest-xdist: shared (one sandbox, a namespace per worker, the "
                  "default) or per-worker (a sandbox per worker, for a client under test that cannot send "
                  "the namespace header)", default="shared")
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
    xdist = str(config.getini("oneshot_mock_xdist")).strip()
    if xdist not in XDIST_MODES:
        raise pytest.UsageError(f"oneshot_mock_xdist must be shared or per-worker, not {xdist!r}")
    if config.getoption("oneshot_mock_workers") < 1:
        raise pytest.UsageError("--oneshot-mock-workers must be at least 1")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller, for each worker it starts: the directory where the workers share a sandbox."""
    config: pytest.Config = node.config
    spec = node.gateway.spec
    # Only local workers can reach a loopback sandbox; per-test sandboxes and an external one need
    # no sharing; the locks behind it are Unix's. Other workers start sandboxes of their own.
    if (not spec.popen or spec.via or config.getoption("oneshot_mock_url")
            or _scope("_oneshot_mock_server", config) == "function" or sys.platform == "win32"
            or str(config.getini("oneshot_mock_xdist")).strip() == "per-worker"):
        return
    if _SHARED_RUN not in config.stash:
        from mock_server.testing.xdist_share import SharedRun

        run = config.stash[_SHARED_RUN] = SharedRun()
        run.start_sandbox(**_sandbox_options(config))
    node.workerinput[_SHARED_DIR] = str(config.stash[_SHARED_RUN].directory)


def pytest_unconfigure(config: pytest.Config) -> None:
    # The xdist controller, once every worker is done: the shared sandbox, if one started, goes with it.
    run = config.stash.get(_SHARED_RUN, None)
    if run is not None:
        run.close()


def _sandbox_options(config: pytest.Config) -> dict[str, Any]:
    """The seed, fixed OTP and signing workers of the sandboxes the plugin starts."""
    return {"seed": int(str(config.getini("oneshot_mock_seed")).strip()),
            "otp": str(config.getini("oneshot_mock_otp")).strip() or None,
            "workers": config.getoption("oneshot_mock_workers")}


def _scope(fixture_name: str, config: pytest.Config) -> str:
    return config.getoption("oneshot_mock_scope") or str(config.getini("oneshot_mock_scope")).strip()


class _Server(NamedTuple):
    base_url: str
    namespace: str | None


@pytest.fixture(scope="session")
def _oneshot_mock_executor(pytestconfig: pytest.Config) -> Iterator[Executor]:
    """One pool of signing workers for every sandbox of the session: spawning them costs seconds."""
    from mock_server.server.workers import signing_pool

    pool = signing_pool(pytestconfig.getoption("oneshot_mock_workers"))
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope=_scope)
def _oneshot_mock_server(request: pytest.FixtureRequest) -> Iterator[_Server]:
    """The sandbox: the external one, the xdist run's shared one, or one started for the session (or the test)."""
    config = request.config
    worker: Any = getattr(config, "workerinput", None)
    # xdist workers sharing a sandbox must not reset each other's state. The name is stable across
    # runs so that repeated runs against an external sandbox reuse their namespaces instead of
    # filling its quota.
    namespace = f"pytest-{worker['workerid']}" if worker is not None else None
    external = config.getoption("oneshot_mock_url")
    if external:
        yield _Server(external.rstrip("/"), namespace)
        return
    options = _sandbox_options(config)
    if worker is not None and _SHARED_DIR in worker:
        from mock_server.testing.xdist_share import shared_sandbox

        yield _Server(shared_sandbox(Path(worker[_SHARED_DIR]), **options), namespace)
        return
    sandbox = ThreadedSandbox(request.getfixturevalue("_oneshot_mock_executor"), seed=options["seed"],
                              otp=options["otp"]).start()
    yield _Server(sandbox.base_url, None)
    sandbox.stop()


@pytest.fixture
def oneshot_mock(request: pytest.FixtureRequest, _oneshot_mock_server: _Server) -> OneShotMock:
    """The sandbox, reset for this test: its URLs, and helpers such as ``latest_otp(pk)``."""
    config = request.config
    sandbox = OneShotMock(_oneshot_mock_server.base_url, namespace=_oneshot_mock_server.namespace,
                          admin_token=config.getoption("oneshot_mock_admin_token"))
    sandbox.reset()
    for path in config.getini("oneshot_mock_scenarios"):
        sandbox.load_scenario(path)
    return sandbox
