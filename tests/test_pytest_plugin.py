"""The pytest plugin as a client project uses it, and the control client on its own."""

from __future__ import annotations

import json

import pytest

from mock_server.client import ControlClient, ControlError
from tests.helpers import DEFAULT_TOKEN, IDENTITY, blank_pdf, running_sandbox

# A throwaway client project: plain sync code with urllib, as an integrator's test suite would be.
CLIENT_CODE = f'''
import json, urllib.request, uuid

IDENTITY = {IDENTITY!r}
TOKEN = {DEFAULT_TOKEN!r}


def call(method, url, body=None, content_type="application/json", headers=None):
    headers = {{"Content-Type": content_type, **(headers or {{}})}}
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


def create(api_url, headers=None, **fields):
    body = json.dumps({{**IDENTITY, "token": TOKEN, **fields}}).encode()
    status, body = call("POST", api_url + "/request", body, headers=headers)
    assert status == 201, body
    return json.loads(body)["details"]


def upload(api_url, pk, pdf):
    boundary = uuid.uuid4().hex
    body = (f"--{{boundary}}\\r\\nContent-Disposition: form-data; name=\\"file\\"; filename=\\"a.pdf\\"\\r\\n"
            f"Content-Type: application/pdf\\r\\n\\r\\n").encode() + pdf + f"\\r\\n--{{boundary}}--\\r\\n".encode()
    status, answer = call("POST", f"{{api_url}}/document/{{pk}}", body, f"multipart/form-data; boundary={{boundary}}")
    assert status == 200, answer
    return json.loads(answer)["details"]
'''

CLASSIC_FLOW = '''
import json
from pathlib import Path
from client import call, create, upload

PDF = (Path(__file__).parent / "doc.pdf").read_bytes()

def test_classic_flow(oneshot_mock):
    pk = create(oneshot_mock.api_url)
    uid = upload(oneshot_mock.api_url, pk, PDF)
    assert call("POST", f"{oneshot_mock.api_url}/otp/{pk}")[0] == 200
    status, body = call("POST", f"{oneshot_mock.api_url}/sign/{pk}",
                        json.dumps({"secret": oneshot_mock.latest_otp(pk)}).encode())
    assert status == 200, body
    status, signed = call("GET", f"{oneshot_mock.api_url}/document/{pk}/signed/{uid}")
    assert status == 200 and signed.startswith(b"%PDF") and b"/ByteRange" in signed
    assert oneshot_mock.request(pk)["status"] == "ISSUED"
    assert [m["request"] for m in oneshot_mock.sms(pk)] == [pk]
    assert "BEGIN CERTIFICATE" in oneshot_mock.ca_pem()
    assert oneshot_mock.new_api_url.endswith("/oneshot/api/v1")
'''

ISOLATION = '''
from client import create

SEEN = []

def test_first(oneshot_mock):
    SEEN.append(create(oneshot_mock.api_url))
    assert [r["pk"] for r in oneshot_mock.call("GET", "/_mock/requests")["requests"]] == SEEN

def test_second_starts_clean(oneshot_mock):
    assert oneshot_mock.call("GET", "/_mock/requests")["requests"] == []
    assert create(oneshot_mock.api_url) == SEEN[0], "a reset sandbox replays its seeded pks"
'''

SCENARIO_AND_CLOCK = '''
from client import call

def test_scenario_from_a_dict(oneshot_mock):
    oneshot_mock.load_scenario({"name": "down", "rules": [
        {"match": {"operation": "hello"}, "then": {"respond": {"status": 503, "details": "maintenance"}}}]})
    assert call("GET", oneshot_mock.api_url + "/hello")[0] == 503

def test_scenario_from_a_file(oneshot_mock, tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: v\\nrules:\\n  - match: {operation: version}\\n"
                    "    then: {respond: {status: 502, details: x}}\\n")
    oneshot_mock.load_scenario(path)
    assert call("GET", oneshot_mock.api_url + "/version")[0] == 502
    assert call("GET", oneshot_mock.api_url + "/hello")[0] == 200, "the previous test's scenario is gone"

def test_clock(oneshot_mock):
    before = oneshot_mock.call("GET", "/_mock/clock")["offset_s"]
    assert oneshot_mock.advance_clock(3600)["offset_s"] >= before + 3599
'''


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(client=CLIENT_CODE)
    (pytester.path / "doc.pdf").write_bytes(blank_pdf())
    return pytester


def test_a_client_project_runs_a_classic_flow(project):
    project.makepyfile(test_flow=CLASSIC_FLOW)
    project.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


@pytest.mark.parametrize("scope", ["session", "function"])
def test_every_test_gets_a_clean_sandbox(project, scope):
    project.makeini(f"[pytest]\noneshot_mock_scope = {scope}\n")
    project.makepyfile(test_isolation=ISOLATION)
    project.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_scenarios_and_the_clock(project):
    project.makepyfile(test_scenarios=SCENARIO_AND_CLOCK)
    project.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=3)


def test_a_fixed_otp_from_the_ini(project):
    project.makeini("[pytest]\noneshot_mock_otp = 424242\n")
    project.makepyfile(test_otp='''
from client import call, create

def test_fixed(oneshot_mock):
    pk = create(oneshot_mock.api_url)
    call("POST", f"{oneshot_mock.api_url}/otp/{pk}")
    assert oneshot_mock.latest_otp(pk) == "424242"
''')
    project.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_a_bad_scope_is_a_usage_error(project):
    project.makeini("[pytest]\noneshot_mock_scope = module\n")
    project.makepyfile(test_x="def test_x(oneshot_mock):\n    pass\n")
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    assert "oneshot_mock_scope must be session or function" in result.stdout.str() + result.stderr.str()


def test_an_external_sandbox_shared_by_xdist_workers(project, tmp_path):
    project.makepyfile(test_external='''
import pytest
from client import create

@pytest.mark.parametrize("index", range(6))
def test_uses_the_external_server(oneshot_mock, pytestconfig, worker_id, index):
    assert oneshot_mock.base_url == pytestconfig.getoption("--oneshot-mock-url")
    assert oneshot_mock.namespace == f"pytest-{worker_id}"
    assert oneshot_mock.call("GET", "/_mock/requests")["requests"] == [], "reset: this worker's namespace only"
    # The client under test sends the namespace header the fixture hands out.
    pk = create(oneshot_mock.api_url, headers=oneshot_mock.headers)
    assert [r["pk"] for r in oneshot_mock.call("GET", "/_mock/requests")["requests"]] == [pk]
''')
    with running_sandbox(tmp_path) as server:
        result = project.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", f"--oneshot-mock-url={server.base}")
        result.assert_outcomes(passed=6)


def test_control_client_against_a_server(tmp_path):
    with running_sandbox(tmp_path, "--admin-token", "s3cret") as server:
        with pytest.raises(ControlError) as refused:
            ControlClient(server.base).health()
        assert refused.value.status == 401
        control = ControlClient(server.base, admin_token="s3cret")
        assert control.health()["status"] == "ok"
        with pytest.raises(ControlError) as missing:
            control.latest_otp(1)
        assert missing.value.status == 404
        with pytest.raises(ControlError) as bad:
            control.load_scenario({"name": "x", "rules": "nope"})
        assert bad.value.status == 400 and "rules" in bad.value.message
        scoped = ControlClient(server.base, namespace="qa", admin_token="s3cret")
        assert scoped.health()["namespace"] == "qa"
        assert json.loads(json.dumps(scoped.webhooks())) == []
