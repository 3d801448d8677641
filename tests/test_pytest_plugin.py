"""The pytest plugin as a client project uses it, and the control client on its own.

Each example project runs in a pytest subprocess, so the plugin loads from its entry point as it does
for a real user. Most use the default session scope: every in-process sandbox costs a start.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mock_server.testing.client import ControlClient, ControlError, WaitTimeout
from tests import example_client
from tests.example_client import call, create, request_otp, sign, upload
from tests.helpers import RunningSandbox, blank_pdf, running_sandbox

pytest_plugins = ["pytester"]

ADMIN_TOKEN = "s3cret"

CLASSIC_FLOW = '''
import threading, time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from client import call, create, request_otp, sign, upload

PDF = (Path(__file__).parent / "doc.pdf").read_bytes()


def test_classic_flow(oneshot_mock):
    pk = create(oneshot_mock.api_url)
    uid = upload(oneshot_mock.api_url, pk, PDF)
    request_otp(oneshot_mock.api_url, pk)
    status, body = sign(oneshot_mock.api_url, pk, oneshot_mock.latest_otp(pk))
    assert status == 200, body
    status, signed = call("GET", f"{oneshot_mock.api_url}/document/{pk}/signed/{uid}")
    assert status == 200 and signed.startswith(b"%PDF") and b"/ByteRange" in signed
    assert oneshot_mock.request(pk)["status"] == "ISSUED"
    assert [m["request"] for m in oneshot_mock.sms(pk)] == [pk]
    assert oneshot_mock.ca_pem().startswith("-----BEGIN CERTIFICATE-----")
    status, body = call("GET", f"{oneshot_mock.new_api_url}/request/{pk}/status")
    assert status == 200 and b"ISSUED" in body, body


class Hook(BaseHTTPRequestHandler):
    """The client app's webhook endpoint."""

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hook_url():
    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()


def test_webhooks_reach_the_app(oneshot_mock, hook_url):
    pk = create(oneshot_mock.api_url, callback=hook_url)
    deadline = time.monotonic() + 10
    while [w["state"] for w in oneshot_mock.webhooks(pk)] != ["delivered", "delivered"]:
        assert time.monotonic() < deadline, oneshot_mock.webhooks(pk)
        time.sleep(0.05)
    assert [(w["event"], w["target"]) for w in oneshot_mock.webhooks(pk)] == [
        ("CREATED", hook_url), ("ENROLLREADY", hook_url)]
'''

# {servers}: how many sandboxes the two tests must have seen (1 shared, 2 per-test ones).
ISOLATION = '''
import urllib.request
from client import create

URLS, FIRST = [], []


def reachable(url):
    try:
        urllib.request.urlopen(url + "/_mock/health", timeout=5).close()
        return True
    except OSError:
        return False


def test_first(oneshot_mock):
    URLS.append(oneshot_mock.base_url)
    FIRST.append(create(oneshot_mock.api_url))
    assert [r["pk"] for r in oneshot_mock.requests()] == FIRST


def test_second_starts_clean(oneshot_mock):
    URLS.append(oneshot_mock.base_url)
    assert oneshot_mock.requests() == [], "the first test's request is gone"
    assert create(oneshot_mock.api_url) == FIRST[0], "a clean sandbox replays its seeded pks"
    assert len(set(URLS)) == {servers}
    assert reachable(URLS[0]) == ({servers} == 1), "a per-test sandbox is stopped after its test"
'''

SCENARIO_AND_CLOCK = '''
from pathlib import Path
from client import call, create, request_otp, sign


def test_scenario_from_a_dict(oneshot_mock):
    oneshot_mock.load_scenario({"name": "down", "rules": [
        {"match": {"operation": "hello"}, "then": {"respond": {"status": 503, "details": "maintenance"}}}]})
    assert call("GET", oneshot_mock.api_url + "/hello")[0] == 503


def test_scenario_from_a_file(oneshot_mock, tmp_path):
    path = tmp_path / "v.yaml"
    path.write_text("name: v\\nrules:\\n  - match: {operation: version}\\n"
                    "    then: {respond: {status: 502, details: x}}\\n")
    oneshot_mock.load_scenario(path)
    assert call("GET", oneshot_mock.api_url + "/version")[0] == 502
    assert call("GET", oneshot_mock.api_url + "/hello")[0] == 200, "the previous test's scenario is gone"


def test_an_otp_expires_when_the_clock_moves(oneshot_mock):
    pk = create(oneshot_mock.api_url)
    request_otp(oneshot_mock.api_url, pk)
    assert oneshot_mock.advance_clock(301)["offset_s"] == 301
    status, body = sign(oneshot_mock.api_url, pk, oneshot_mock.latest_otp(pk))
    assert (status, b"Confirmation Code invalid" in body) == (403, True)


def test_the_clock_is_back_for_the_next_test(oneshot_mock):
    assert oneshot_mock.call("GET", "/_mock/clock")["offset_s"] == 0
'''

VERSION_502 = "name: v\nrules:\n  - match: {operation: version}\n    then: {respond: {status: 502, details: x}}\n"

CONFIGURED = '''
from client import call, create, request_otp


def test_seed_and_otp(oneshot_mock, request):
    assert oneshot_mock.health()["seed"] == 7
    assert request.getfixturevalue("_oneshot_mock_executor")._max_workers == 1, "--oneshot-mock-workers 1"
    pk = create(oneshot_mock.api_url)
    request_otp(oneshot_mock.api_url, pk)
    assert oneshot_mock.latest_otp(pk) == "424242"
    assert call("GET", oneshot_mock.api_url + "/version")[0] == 502


def test_scenarios_are_back_after_the_reset(oneshot_mock):
    assert call("GET", oneshot_mock.api_url + "/version")[0] == 502
'''

# Each worker writes down the sandbox it saw, the sandbox process and that process's signing workers.
XDIST_SHARED = '''
import json
import os
from pathlib import Path
import pytest
from client import call, create, request_otp, sign, upload
from mock_server.domain.tenancy import namespace_seed

PDF = (Path(__file__).parent / "doc.pdf").read_bytes()


def processes(pid):
    """``pid`` and its children (the sandbox's signing workers)."""
    tasks = Path(f"/proc/{pid}/task").iterdir()
    return [pid, *(int(child) for task in tasks for child in (task / "children").read_text().split())]


@pytest.mark.parametrize("index", range(4))
def test_each_worker_has_a_namespace(oneshot_mock, pytestconfig, worker_id, index):
    assert oneshot_mock.namespace == f"pytest-{worker_id}"
    assert oneshot_mock.headers == {"X-Mock-Namespace": f"pytest-{worker_id}"}
    assert oneshot_mock.requests() == [], "reset: this worker's namespace"
    assert oneshot_mock.health()["seed"] == namespace_seed(7, oneshot_mock.namespace), "oneshot_mock_seed"
    assert call("GET", oneshot_mock.api_url + "/version", headers=oneshot_mock.headers)[0] == 502, "the scenario"
    pk = create(oneshot_mock.api_url, headers=oneshot_mock.headers)
    upload(oneshot_mock.api_url, pk, PDF, headers=oneshot_mock.headers)
    request_otp(oneshot_mock.api_url, pk, headers=oneshot_mock.headers)
    assert oneshot_mock.latest_otp(pk) == "424242", "oneshot_mock_otp"
    assert sign(oneshot_mock.api_url, pk, "424242", headers=oneshot_mock.headers)[0] == 200
    assert [r["pk"] for r in oneshot_mock.requests()] == [pk]
    shared = Path(pytestconfig.workerinput["oneshot_mock_shared_dir"])
    pid = json.loads((shared / "state.json").read_text())["pid"]
    assert "--workers\\x001\\x00" in Path(f"/proc/{pid}/cmdline").read_text(), "--oneshot-mock-workers 1"
    parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    seen = {"url": oneshot_mock.base_url, "dir": str(shared), "pids": processes(pid), "parent": parent,
            "controller": os.getppid()}
    (Path(__file__).parent / f"seen-{worker_id}-{index}.json").write_text(json.dumps(seen))
'''

# The shared sandbox cannot start: the port it is given is taken (by the controller itself).
XDIST_START_FAILS_CONFTEST = '''
import socket
from pathlib import Path

import mock_server.testing.xdist_share

HERE = Path(__file__).parent
TAKEN = []


def pytest_configure(config):
    if not hasattr(config, "workerinput"):  # the xdist controller holds the port for the run
        TAKEN.append(socket.socket())
        TAKEN[0].bind(("127.0.0.1", 0))
        (HERE / "taken-port").write_text(str(TAKEN[0].getsockname()[1]))


def taken_port():
    with (HERE / "starts").open("a") as starts:
        starts.write("start\\n")
    return int((HERE / "taken-port").read_text())


mock_server.testing.xdist_share.free_port = taken_port
'''

XDIST_START_FAILS = '''
import pytest


@pytest.mark.parametrize("index", range(4))
def test_needs_the_sandbox(oneshot_mock, index):
    pass
'''

# oneshot_mock_scope = function under xdist: sandboxes of the worker's own, one per test, no namespace.
XDIST_FUNCTION = '''
import pytest

URLS = []


@pytest.mark.parametrize("index", range(2))
def test_a_sandbox_per_test(oneshot_mock, pytestconfig, index):
    assert (oneshot_mock.namespace, oneshot_mock.headers) == (None, {})
    assert "oneshot_mock_shared_dir" not in pytestconfig.workerinput
    URLS.append(oneshot_mock.base_url)
    assert len(set(URLS)) == len(URLS)
'''

# oneshot_mock_xdist = per-worker: each worker its own in-process sandbox, in the default namespace.
XDIST_PER_WORKER = '''
from pathlib import Path
from client import create


def test_a_sandbox_of_its_own(oneshot_mock, pytestconfig, worker_id):
    assert (oneshot_mock.namespace, oneshot_mock.headers) == (None, {})
    assert "oneshot_mock_shared_dir" not in pytestconfig.workerinput
    create(oneshot_mock.api_url)  # no header: the client under test sends none
    assert len(oneshot_mock.requests()) == 1
    (Path(__file__).parent / f"url-{worker_id}").write_text(oneshot_mock.base_url)
'''

# Run with --dist each: both workers run it, at the same time, and wait for each other.
XDIST_RESET = '''
import time
from pathlib import Path
from client import create

HERE = Path(__file__).parent


def mark(name, value=""):
    # Written whole, then renamed: the other worker must never read a file still being written.
    partial = HERE / f".{name}.partial"
    partial.write_text(value)
    partial.replace(HERE / name)


def wait_for(name):
    deadline = time.monotonic() + 60
    while not (HERE / name).exists():
        assert time.monotonic() < deadline, f"the other worker never wrote {name}"
        time.sleep(0.02)
    return (HERE / name).read_text()


def test_a_reset_stays_in_its_namespace(oneshot_mock, worker_id):
    other = {"gw0": "gw1", "gw1": "gw0"}[worker_id]
    pk = create(oneshot_mock.api_url, headers=oneshot_mock.headers)
    mark(f"created-{worker_id}", oneshot_mock.base_url)
    assert wait_for(f"created-{other}") == oneshot_mock.base_url, "one sandbox for both workers"
    if worker_id == "gw1":
        oneshot_mock.reset()
        mark("reset")
        assert oneshot_mock.requests() == []
    else:
        wait_for("reset")
        assert [r["pk"] for r in oneshot_mock.requests()] == [pk], "gw1's reset left gw0's request alone"
'''

XDIST_EXTERNAL = '''
import pytest
from client import create


@pytest.mark.parametrize("index", range(6))
def test_uses_the_external_sandbox(oneshot_mock, pytestconfig, worker_id, index):
    assert oneshot_mock.base_url == pytestconfig.getoption("--oneshot-mock-url")
    assert oneshot_mock.namespace == f"pytest-{worker_id}"
    assert oneshot_mock.requests() == [], "reset: this worker's namespace"
    # The client under test sends the namespace header the fixture hands out.
    pk = create(oneshot_mock.api_url, headers=oneshot_mock.headers)
    assert [r["pk"] for r in oneshot_mock.requests()] == [pk]
'''

# The one test hands the outer test the processes to watch, then waits for the controller to be killed.
XDIST_KILLED = '''
import json, os, time
from pathlib import Path


def test_until_the_controller_dies(oneshot_mock, pytestconfig):
    shared = Path(pytestconfig.workerinput["oneshot_mock_shared_dir"])
    state = json.loads((shared / "state.json").read_text())
    started = {"server": state["pid"], "worker": os.getpid(), "dir": str(shared)}
    (Path(__file__).parent / "started.json").write_text(json.dumps(started))
    controller, deadline = os.getppid(), time.monotonic() + 60
    while os.getppid() == controller and time.monotonic() < deadline:
        time.sleep(0.05)
'''


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """An empty client project: its HTTP code and a PDF to sign."""
    pytester.makepyfile(client=Path(example_client.__file__).read_text(encoding="utf-8"))
    (pytester.path / "doc.pdf").write_bytes(blank_pdf())
    return pytester


def test_a_client_project_runs_a_classic_flow(project):
    project.makepyfile(test_flow=CLASSIC_FLOW)
    project.runpytest_subprocess().assert_outcomes(passed=2)


@pytest.mark.parametrize(("ini", "args", "servers"), [
    ("", [], 1),
    ("oneshot_mock_scope = function", [], 2),
    ("oneshot_mock_scope = session", ["--oneshot-mock-scope=function"], 2),
], ids=["default-session", "ini-function", "option-overrides-ini"])
def test_every_test_gets_a_clean_sandbox(project, ini, args, servers):
    project.makeini(f"[pytest]\n{ini}\n")
    project.makepyfile(test_isolation=ISOLATION.format(servers=servers))
    project.runpytest_subprocess(*args).assert_outcomes(passed=2)


def readme_examples() -> str:
    """The Python examples of the pytest plugin's page, as one test module."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "pytest-plugin.md").read_text(encoding="utf-8")
    return "\n\n".join(block.split("\n```", 1)[0] for block in page.split("```python\n")[1:])


def test_the_readme_examples_pass_under_xdist_with_warnings_as_errors(project):
    pytest.importorskip("requests")
    (project.path / "contract.pdf").write_bytes(blank_pdf())
    project.makepyfile(test_readme=readme_examples())
    # A file left open fails the run (the example once leaked one), as it does under -W error.
    project.runpytest_subprocess("-n", "2", "-W", "error::ResourceWarning",
                                 "-W", "error::pytest.PytestUnraisableExceptionWarning").assert_outcomes(passed=2)


def test_scenarios_and_the_clock(project):
    project.makepyfile(test_scenarios=SCENARIO_AND_CLOCK)
    project.runpytest_subprocess().assert_outcomes(passed=4)


def test_seed_otp_and_scenarios_from_the_ini(project):
    (project.path / "scenarios").mkdir()
    (project.path / "scenarios" / "version.yaml").write_text(VERSION_502)
    project.makeini("[pytest]\noneshot_mock_seed = 7\noneshot_mock_otp = 424242\n"
                    "oneshot_mock_scenarios = scenarios/version.yaml\n")
    project.makepyfile(test_configured=CONFIGURED)
    project.runpytest_subprocess("--oneshot-mock-workers=1").assert_outcomes(passed=2)


@pytest.mark.parametrize(("ini", "args", "complaint"), [
    ("oneshot_mock_scope = module", [], "oneshot_mock_scope must be session or function, not 'module'"),
    ("oneshot_mock_seed = seven", [], "oneshot_mock_seed must be a non-negative integer, not 'seven'"),
    ("", ["--oneshot-mock-workers=0"], "--oneshot-mock-workers must be at least 1"),
    ("oneshot_mock_xdist = each", [], "oneshot_mock_xdist must be shared or per-worker, not 'each'"),
])
def test_bad_settings_are_usage_errors(project, ini, args, complaint):
    project.makeini(f"[pytest]\n{ini}\n")
    project.makepyfile(test_x="def test_x(oneshot_mock):\n    pass\n")
    result = project.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert complaint in result.stderr.str()


def gone(pid: int) -> bool:
    """``pid`` has exited (a zombie that its parent has not reaped yet counts as exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_xdist_workers_share_one_sandbox_in_namespaces(project):
    (project.path / "version.yaml").write_text(VERSION_502)
    project.makeini("[pytest]\noneshot_mock_seed = 7\noneshot_mock_otp = 424242\n"
                    "oneshot_mock_scenarios = version.yaml\n")
    project.makepyfile(test_workers=XDIST_SHARED)
    project.runpytest_subprocess("-n", "2", "--oneshot-mock-workers=1").assert_outcomes(passed=4)
    seen = [json.loads(path.read_text()) for path in project.path.glob("seen-*.json")]
    assert {path.name.split("-")[1] for path in project.path.glob("seen-*.json")} == {"gw0", "gw1"}
    assert len({s["url"] for s in seen}) == 1, "one sandbox for the run"
    assert len({s["pids"][0] for s in seen}) == 1, "one sandbox process"
    assert len(seen[0]["pids"]) > 1, "the sandbox's signing worker and resource tracker"
    assert {s["parent"] for s in seen} == {seen[0]["controller"]}, "the controller started the sandbox"
    assert [pid for s in seen for pid in s["pids"] if not gone(pid)] == [], "the run stopped the sandbox"
    assert not Path(seen[0]["dir"]).exists(), "the run removed its directory"


def test_a_shared_sandbox_that_cannot_start_fails_every_worker_once(project):
    project.makeconftest(XDIST_START_FAILS_CONFTEST)
    project.makepyfile(test_start_fails=XDIST_START_FAILS)
    result = project.runpytest_subprocess("-n", "2")
    result.assert_outcomes(errors=4)
    result.stdout.fnmatch_lines(["*the shared oneshot-mock did not start*"])
    assert (project.path / "starts").read_text().splitlines() == ["start"], "one start for the run"


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``check`` until it holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_killed_controller_takes_the_shared_sandbox_along(project):
    project.makepyfile(test_killed=XDIST_KILLED)
    started = project.path / "started.json"
    with (project.path / "run.log").open("wb") as log:
        controller = project.popen([sys.executable, "-m", "pytest", "-n", "1", "-p", "no:cacheprovider",
                                    f"--basetemp={project.path / 'basetemp'}"], stdout=log, stderr=log)
    pids: dict[str, Any] = {}
    try:
        wait_until(lambda: started.exists() or controller.poll() is not None, "the test never started", 60)
        assert controller.poll() is None, (project.path / "run.log").read_text()
        pids = json.loads(started.read_text())
        controller.kill()
        controller.wait()
        wait_until(lambda: gone(pids["server"]), "the sandbox outlived the killed controller")
    finally:
        controller.kill()
        controller.wait()
        # Whatever this test's run left behind goes, so that a failure does not leak processes.
        for pid in (pids.get("server"), pids.get("worker")):
            if pid and not gone(pid):
                os.kill(pid, signal.SIGKILL)
        if pids:
            shutil.rmtree(pids["dir"], ignore_errors=True)


def test_xdist_function_scope_keeps_a_sandbox_per_test(project):
    project.makeini("[pytest]\noneshot_mock_scope = function\n")
    project.makepyfile(test_function=XDIST_FUNCTION)
    project.runpytest_subprocess("-n", "2", "--dist", "each").assert_outcomes(passed=4)


def test_xdist_per_worker_sandboxes_need_no_header(project):
    project.makeini("[pytest]\noneshot_mock_xdist = per-worker\n")
    project.makepyfile(test_per_worker=XDIST_PER_WORKER)
    project.runpytest_subprocess("-n", "2", "--dist", "each").assert_outcomes(passed=2)
    urls = {path.read_text() for path in project.path.glob("url-*")}
    assert len(urls) == 2, "a sandbox per worker"


def test_xdist_workers_do_not_reset_each_other(project):
    project.makepyfile(test_reset=XDIST_RESET)
    project.runpytest_subprocess("-n", "2", "--dist", "each").assert_outcomes(passed=2)


def test_xdist_workers_share_an_external_sandbox_in_namespaces(project, tmp_path):
    project.makepyfile(test_external=XDIST_EXTERNAL)
    with running_sandbox(tmp_path, "--admin-token", ADMIN_TOKEN) as server:
        project.runpytest_subprocess(
            "-n", "2", f"--oneshot-mock-url={server.base}", f"--oneshot-mock-admin-token={ADMIN_TOKEN}",
        ).assert_outcomes(passed=6)
        control = ControlClient(server.base, admin_token=ADMIN_TOKEN)
        namespaces = {n["namespace"]: n["requests"] for n in control.call("GET", "/_mock/namespaces")["namespaces"]}
    # Each worker's last test left its one request in its own namespace; the default one is untouched.
    assert namespaces == {"": 0, "pytest-gw0": 1, "pytest-gw1": 1}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    """A sandbox process whose control API wants the admin token."""
    with running_sandbox(tmp_path_factory.mktemp("guarded"), "--admin-token", ADMIN_TOKEN) as server:
        yield server


@pytest.fixture
def control(guarded: RunningSandbox) -> ControlClient:
    """A control client in a namespace of its own: the tests share the server, not its state."""
    return ControlClient(guarded.base, namespace=f"t-{uuid.uuid4().hex[:8]}", admin_token=ADMIN_TOKEN)


def test_control_client_needs_the_admin_token(guarded):
    with pytest.raises(ControlError) as missing:
        ControlClient(guarded.base).health()
    assert missing.value.status == 401 and "admin token" in missing.value.message
    with pytest.raises(ControlError) as wrong:
        ControlClient(guarded.base, admin_token="nope").health()
    assert wrong.value.status == 403


def test_control_client_reads_a_namespace(control):
    api = control.base_url + "/api/v1"
    assert control.headers == {"X-Mock-Namespace": control.namespace}
    pk = create(api, headers=control.headers)
    request_otp(api, pk, headers=control.headers)
    otp = control.latest_otp(pk)
    assert len(otp) == 6 and otp.isdecimal()
    assert [m["otp"] for m in control.sms(pk)] == [otp]
    assert [r["pk"] for r in control.requests()] == [pk]
    detail = control.request(pk)
    assert (detail["pk"], detail["status"]) == (pk, "ENROLLREADY")
    assert control.health()["namespace"] == control.namespace
    assert control.webhooks(pk) == []
    assert control.ca_pem().count("-----BEGIN CERTIFICATE-----") == 3


def test_control_client_resets_its_namespace_only(control, guarded):
    other = ControlClient(guarded.base, namespace=control.namespace + "-other", admin_token=ADMIN_TOKEN)
    api = control.base_url + "/api/v1"
    create(api, headers=control.headers)
    kept = create(api, headers=other.headers)
    assert control.advance_clock(60)["offset_s"] == 60
    assert other.advance_clock(30)["offset_s"] == 30
    control.reset()
    assert control.requests() == [] and control.call("GET", "/_mock/clock")["offset_s"] == 0
    assert [r["pk"] for r in other.requests()] == [kept] and other.call("GET", "/_mock/clock")["offset_s"] == 30


def test_control_client_scenarios(control):
    api = control.base_url + "/api/v1"
    loaded = control.load_scenario({"name": "down", "rules": [
        {"match": {"operation": "hello"}, "then": {"respond": {"status": 503, "details": "maintenance"}}}]})
    assert loaded["name"] == "down"
    assert call("GET", api + "/hello", headers=control.headers)[0] == 503
    assert call("GET", api + "/hello")[0] == 200, "only the client's namespace has the scenario"


def test_control_client_errors(control, tmp_path):
    with pytest.raises(ControlError) as unknown:
        control.request(999999)
    assert (unknown.value.status, unknown.value.message) == (404, "request 999999 not found")
    assert str(unknown.value) == "404: request 999999 not found"
    with pytest.raises(ControlError) as silent:
        control.latest_otp(999999)
    assert silent.value.status == 404 and "no SMS was sent for request 999999" in silent.value.message
    with pytest.raises(ControlError) as bad:
        control.load_scenario({"name": "x", "rules": "nope"})
    assert bad.value.status == 400 and "rules: 'nope' is not of type 'array'" in bad.value.message
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [")
    with pytest.raises(ControlError) as unreadable:
        control.load_scenario(broken)
    assert unreadable.value.status == 400 and unreadable.value.message.startswith(f"{broken}: ")


def test_wait_for_status_follows_an_async_signing(control):
    api = control.base_url + "/api/v1"
    pk = create(api, headers=control.headers, useasync="true")
    upload(api, pk, blank_pdf(), headers=control.headers)
    request_otp(api, pk, headers=control.headers)
    status, body = sign(api, pk, control.latest_otp(pk), headers=control.headers)
    assert status == 200 and b"going to be signed" in body, body
    issued = control.wait_for_status(pk, "ISSUED", timeout=30)
    assert (issued["pk"], issued["status"]) == (pk, "ISSUED")
    assert [change["status"] for change in issued["history"]][-1] == "ISSUED"
    assert control.wait_for_status(pk, ("CANCELLED", "ISSUED"), timeout=0)["status"] == "ISSUED"


def test_wait_for_status_says_what_it_saw_instead(control):
    pk = create(control.base_url + "/api/v1", headers=control.headers)
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as late:
        control.wait_for_status(pk, {"ISSUED", "CANCELLED"}, timeout=0.3)
    assert 0.3 <= time.monotonic() - started < 5
    assert str(late.value) == (f"request {pk} (namespace {control.namespace}) did not reach CANCELLED or ISSUED "
                               "within 0.3 s: its status stayed ENROLLREADY (history: CREATED -> ENROLLREADY)")
    assert isinstance(late.value, AssertionError)
    with pytest.raises(ControlError) as unknown:
        control.wait_for_status(999999, "ISSUED")
    assert unknown.value.status == 404, "an unknown request fails at once"


def test_latest_otp_waits_for_a_late_sms(control):
    api = control.base_url + "/api/v1"
    control.load_scenario({"name": "late-sms", "rules": [
        {"match": {"operation": "generate_otp"}, "then": {"sms": {"delay_s": 0.5}}}]})
    pk = create(api, headers=control.headers)
    request_otp(api, pk, headers=control.headers)
    with pytest.raises(ControlError):
        control.latest_otp(pk)
    otp = control.latest_otp(pk, timeout=10)
    assert [m["otp"] for m in control.sms(pk)] == [otp]


def test_latest_otp_says_when_no_sms_came(control):
    pk = create(control.base_url + "/api/v1", headers=control.headers)
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as silent:
        control.latest_otp(pk, timeout=0.2)
    assert 0.2 <= time.monotonic() - started < 5
    assert str(silent.value) == f"no SMS for request {pk} (namespace {control.namespace}) within 0.2 s"
