"""``oneshot-mock serve`` as a real process: the vendor's curl sequence, logs, seed file, PKI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from mock_server.server.app import create_app
from mock_server.server.config import Config
from tests.conftest import free_port
from tests.helpers import (
    DEFAULT_TOKEN,
    IDENTITY,
    SandboxClient,
    blank_pdf,
    environment_without_oneshot,
    oneshot_mock,
    pdfsig,
    picture,
    running_sandbox,
    validate,
)


def curl(*args: str) -> str:
    result = subprocess.run(["curl", "--silent", "--show-error", *args], capture_output=True, text=True,
                            check=True, timeout=60)
    return result.stdout


@pytest.fixture
def needs_curl():
    if not shutil.which("curl"):
        pytest.skip("curl not installed")


def test_vendor_curl_sequence_runs_unchanged(tmp_path, needs_curl, tmp_path_factory):
    """The classic workflow as the vendor's guide writes it, host swapped."""
    document = tmp_path / "document.pdf"
    document.write_bytes(blank_pdf())
    with running_sandbox(tmp_path, "--otp", "123456") as server:
        host = server.base
        tokens = json.loads(curl("--location", "--request", "GET", f"{host}/api/v1/tokens"))
        assert DEFAULT_TOKEN in tokens["details"]
        created = json.loads(curl(
            "--location", "--request", "POST", f"{host}/api/v1/request",
            "--form", f"token={DEFAULT_TOKEN}", "--form", "profile=PFnubeQAFCiudadano",
            "--form", "given_name=Name", "--form", "surname_1=Surname1", "--form", "surname_2=Surname2",
            "--form", "id_document_type=IDC", "--form", "id_document_country=ES",
            "--form", "serial_number=12345678A", "--form", "email=name@domain.com",
            "--form", "mobile_phone_number=+34600123123", "--form", "registration_authority=139",
            "--form", "env=sandbox", "--form", "billing_username=user@uanataca.com",
            "--form", "billing_password=UGVyb2xpdG8xLg==",
        ))
        assert created["status"] == "201 Created"
        pk = created["details"]
        uploaded = json.loads(curl("--location", "--request", "POST", f"{host}/api/v1/document/{pk}",
                                   "--form", f'file=@"{document}"'))
        uid = uploaded["details"]
        curl("--location", "--request", "GET", f"{host}/api/v1/document/{pk}/contract",
             "--output", str(tmp_path / "contract.pdf"))
        otp = json.loads(curl("--location", "--request", "POST", f"{host}/api/v1/otp/{pk}"))
        assert otp == {"status": "200 OK", "details": "OTP generated"}
        signed = json.loads(curl("--location", "--request", "POST", f"{host}/api/v1/sign/{pk}",
                                 "--header", "Content-Type: application/json",
                                 "--data-raw", '{"secret": "123456"}'))
        assert signed == {"status": "200 OK", "details": "Documents correctly signed"}
        curl("--location", "--request", "GET", f"{host}/api/v1/document/{pk}/signed/{uid}",
             "--output", str(tmp_path / "signed.pdf"))
        curl("--location", "--request", "GET", f"{host}/api/v1/document/{pk}/contract",
             "--output", str(tmp_path / "signed-contract.pdf"))
        curl(f"{host}/_mock/pki/ca.pem", "--output", str(tmp_path / "ca.pem"))
        deleted = json.loads(curl("--location", "--request", "DELETE", f"{host}/api/v1/documents/{pk}"))
        assert deleted == {"status": "200 OK", "details": "Documents deleted successfully"}

        if not (shutil.which("pdfsig") and shutil.which("certutil")):
            pytest.skip("pdfsig/certutil not installed")
        db = tmp_path_factory.mktemp("nss-from-ca-pem")
        subprocess.run(["certutil", "-N", "-d", f"sql:{db}", "--empty-password"], check=True)
        # Trust exactly what /_mock/pki/ca.pem served: its first certificate is the root.
        root = (tmp_path / "ca.pem").read_text().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
        (tmp_path / "root.pem").write_text(root)
        subprocess.run(["certutil", "-A", "-d", f"sql:{db}", "-n", "root", "-t", "CT,C,C",
                        "-i", str(tmp_path / "root.pem")], check=True)
        # While the server runs: NSS checks the certificates with the sandbox's OCSP responder.
        for name in ("signed.pdf", "signed-contract.pdf"):
            report = asyncio.run(pdfsig((tmp_path / name).read_bytes(), db, tmp_path))
            assert "Signature is Valid" in report, report
            assert "Certificate is Trusted" in report, report
            assert "Signature Type: ETSI.CAdES.detached" in report, report


def test_one_log_line_per_request(tmp_path):
    with running_sandbox(tmp_path) as server:
        host, log = server.base, server.log
        urllib.request.urlopen(host + "/api/v1/hello").close()
        with contextlib.suppress(urllib.error.HTTPError):
            urllib.request.urlopen(host + "/api/v1/request/424242").close()
    lines = log.read_text().splitlines()
    assert "on http://127.0.0.1:" in lines[0]
    hello = [line for line in lines if "GET /api/v1/hello" in line]
    assert len(hello) == 1 and " 200 " in hello[0] and "ms" in hello[0]
    [missing] = [line for line in lines if "/api/v1/request/424242" in line]
    assert " 404 " in missing and "pk=424242" in missing


def test_log_lines_are_written_while_the_sandbox_runs(tmp_path):
    with running_sandbox(tmp_path) as server:
        urllib.request.urlopen(server.base + "/api/v1/hello").close()
        deadline = time.monotonic() + 5  # lines are written in batches, at least every 0.1 s
        while "GET /api/v1/hello" not in server.log.read_text():
            assert time.monotonic() < deadline, "no access line before the sandbox stopped"
            time.sleep(0.05)
        assert server.process.poll() is None


def test_json_log_format(tmp_path):
    with running_sandbox(tmp_path, "--log-format", "json") as server:
        host, log = server.base, server.log
        urllib.request.urlopen(host + "/api/v1/hello").close()
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    [access] = [e for e in entries if e.get("http", {}).get("path") == "/api/v1/hello"]
    assert access["http"]["method"] == "GET" and access["http"]["status"] == 200
    assert isinstance(access["http"]["ms"], float)


def _seed_file(tmp_path: Path) -> Path:
    (tmp_path / "stamp.png").write_bytes(picture())
    (tmp_path / "fixed.pdf").write_bytes(blank_pdf(2))
    seed = {
        "raos": [{"username": "5550001", "password": "secret", "pin": "1111"}],
        "tokens": [{"uid": "00000000000000000000000000000001", "username": "5550001",
                    "password": "secret", "pin": "1111"}],
        "images": [{"uid": "11111111-1111-4111-8111-111111111111", "file": "stamp.png"}],
        "requests": [{
            "pk": 424242, "token": "00000000000000000000000000000001",
            "given_name": "Fixed", "surname_1": "Person", "serial_number": "00000000T",
            "email": "fixed@example.com", "mobile_phone_number": "+34600999999",
            "documents": [{"uid": "22222222-2222-4222-8222-222222222222", "file": "fixed.pdf"}],
        }],
    }
    path = tmp_path / "seed.yaml"
    path.write_text(yaml.safe_dump(seed))
    return path


async def test_seed_file_fixed_ids(make_client, tmp_path):
    sandbox = await make_client(seed_file=_seed_file(tmp_path))
    detail = (await sandbox.call("GET", "/api/v1/request/424242")).body["details"]
    assert detail["given_name"] == "Fixed" and detail["status"] == "ENROLLREADY"
    token = (await sandbox.call("GET", "/api/v1/token/00000000000000000000000000000001")).body["details"]
    assert token == {"username": "5550001", "password": True, "pin": True}
    doc = "22222222-2222-4222-8222-222222222222"
    original = await sandbox.call("GET", f"/api/v1/document/424242/original/{doc}")
    assert original.raw == (tmp_path / "fixed.pdf").read_bytes()
    body = {"secret": await sandbox.otp(424242),
            "options": {doc: {"position": "10,10,200,80", "page": 1,
                              "image": "11111111-1111-4111-8111-111111111111"}}}
    assert (await sandbox.sign(424242, body)).status == 200
    assert (await validate(await sandbox.signed(424242, doc))).bottom_line
    await sandbox.call("POST", "/_mock/reset")
    again = (await sandbox.call("GET", "/api/v1/request/424242")).body["details"]
    assert again["status"] == "ENROLLREADY", "a reset re-applies the seed file"


def test_bad_seed_file_is_refused_at_start(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"requests": [{"given_name": "No pk"}]}))
    result = oneshot_mock("serve", "--seed-file", str(bad), "--port", str(free_port()))
    assert result.returncode != 0
    assert "requests[0]" in result.stderr and "'pk'" in result.stderr


async def test_generated_pki_replaces_the_bundled_one(aiohttp_client, executor, tmp_path):
    pki = tmp_path / "pki"
    subprocess.run([sys.executable, "-m", "mock_server", "generate-pki", str(pki)], check=True, timeout=120)
    client = SandboxClient(await aiohttp_client(create_app(Config(seed=7, pki_dir=pki), executor)))
    pk = await client.create_request()
    uid = await client.upload_pdf(pk)
    await client.sign(pk, {"secret": await client.otp(pk)})
    pdf = await client.signed(pk, uid)
    assert (await validate(pdf, root=pki / "root.pem")).trusted
    assert not (await validate(pdf)).trusted, "the bundled root must not vouch for another CA"


def _first_request_and_otp(base: str, token: str) -> tuple[int, str]:
    """Create a request and send its OTP, as a client would; the pk and the OTP the outbox shows."""
    auth = {"Authorization": f"Bearer {token}"}
    created = json.loads(curl("-X", "POST", f"{base}/api/v1/request", "-F", f"token={DEFAULT_TOKEN}",
                              *[part for key, value in IDENTITY.items() for part in ("-F", f"{key}={value}")]))
    pk = created["details"]
    curl("-X", "POST", f"{base}/api/v1/otp/{pk}")
    outbox = json.loads(curl("-H", f"Authorization: {auth['Authorization']}", f"{base}/_mock/sms?request={pk}"))
    return pk, outbox["messages"][-1]["otp"]


def test_an_admin_token_without_a_seed_draws_one_at_random_and_logs_it(tmp_path):
    """With the default seed, anyone who replays the same calls on another sandbox knows the OTPs."""
    with running_sandbox(tmp_path) as plain:
        foreseeable = _first_request_and_otp(plain.base, "unused")
    with running_sandbox(tmp_path, "--admin-token", "s3cret") as guarded:
        drawn = _first_request_and_otp(guarded.base, "s3cret")
    logged = re.search(r"seed (\d+) drawn at random", guarded.log.read_text())
    assert logged, "the drawn seed is logged"
    assert drawn != foreseeable
    with running_sandbox(tmp_path, "--admin-token", "s3cret", "--seed", logged.group(1)) as replayed:
        assert _first_request_and_otp(replayed.base, "s3cret") == drawn
    assert "drawn at random" not in replayed.log.read_text()


@pytest.mark.parametrize("after_s", [0.7, 1.2, 2.0, 3.5])
def test_a_sigterm_at_any_moment_of_start_up_stops_cleanly(tmp_path, after_s):
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "mock_server", "serve", "--port", str(free_port())],
                                   stdout=sink, stderr=subprocess.STDOUT)
    time.sleep(after_s)
    process.terminate()
    assert process.wait(timeout=60) in (0, -15)  # -15: terminated before Python's own start-up was done
    text = log.read_text()
    assert "Traceback" not in text and "never retrieved" not in text and "ERROR" not in text, text


def test_a_port_in_use_is_one_clear_line_and_exit_status_2(tmp_path):
    with running_sandbox(tmp_path) as server:
        port = server.base.rsplit(":", 1)[1]
        taken = oneshot_mock("serve", "--port", port)
    assert taken.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in taken.stderr and "address already in use" in taken.stderr
    assert "Traceback" not in taken.stderr and "on http://" not in taken.stderr, taken.stderr


def misspelt_scenario_text() -> str:
    return "name: misspelt\nrules:\n- match: {operation: sing}\n  then: {error: sign.403.invalid_otp}\n"


def misspelt_scenario(tmp_path: Path) -> Path:
    path = tmp_path / "misspelt.yaml"
    path.write_text(misspelt_scenario_text())
    return path


@pytest.mark.parametrize(("args", "shown"), [
    (["serve", "--port", "99999"], "argument --port: expected a TCP port from 1 to 65535, got '99999'"),
    (["serve", "--port", "-1"], "argument --port: expected a TCP port from 1 to 65535, got '-1'"),
    (["serve", "--port", "{port}", "--data-dir", "{file}"], "cannot be a data dir"),
    (["serve", "--port", "{port}", "--data-dir", "{file}/under"], "cannot be a data dir"),
    (["serve", "--port", "{port}", "--scenario", "{scenario}"],
     "rules[0].match.operation: no operation 'sing' (did you mean sign"),
    (["fake-evidences", "--locale", "xx_XX"], "--locale xx_XX: not a locale Faker knows"),
    (["serve", "--port", "{port}", "--seed-file", "{seed}"],
     "tokens[0].uid: 1 is a number: quote it"),
])
def test_a_bad_command_line_is_one_line_and_exit_status_2(tmp_path, args, shown):
    (tmp_path / "a-file").write_text("not a directory")
    seed = tmp_path / "seed.yaml"
    seed.write_text("tokens:\n  - {uid: 00000000000000000000000000000001, username: '5550001'}\n")
    filled = [arg.format(port=free_port(), file=tmp_path / "a-file", scenario=misspelt_scenario(tmp_path), seed=seed)
              for arg in args]
    done = oneshot_mock(*filled)
    assert done.returncode == 2, done
    assert shown in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr


async def test_a_scenario_naming_no_operation_is_refused_with_the_closest_names(sandbox):
    answer = await sandbox.call("POST", "/_mock/scenarios", data=misspelt_scenario_text())
    assert answer.status == 400
    assert "no operation 'sing' (did you mean sign" in answer.body["error"], answer.body


def test_generate_pki_keeps_an_existing_pki_unless_forced_and_its_keys_are_private(tmp_path):
    target = tmp_path / "pki"
    assert oneshot_mock("generate-pki", str(target)).returncode == 0
    root_key = (target / "root.key").read_bytes()
    assert {path.name: path.stat().st_mode & 0o777 for path in target.iterdir()} == {
        "root.pem": 0o644, "issuing.pem": 0o644, "tsa.pem": 0o644, "root.key": 0o600, "issuing.key": 0o600,
        "tsa.key": 0o600}
    again = oneshot_mock("generate-pki", str(target))
    assert again.returncode == 2 and "pass --force to replace it" in again.stderr and again.stderr.count("\n") == 1
    assert (target / "root.key").read_bytes() == root_key
    assert oneshot_mock("generate-pki", "--force", str(target)).returncode == 0
    assert (target / "root.key").read_bytes() != root_key and (target / "root.key").stat().st_mode & 0o777 == 0o600


def test_fake_evidences_into_a_pipe_closed_early_says_nothing(tmp_path):
    done = subprocess.run(f"{sys.executable} -m mock_server fake-evidences | head -1", shell=True,
                          capture_output=True, text=True, timeout=60)
    assert done.stdout == "{\n" and done.stderr == "", done.stderr


def test_the_top_level_help_names_every_command():
    shown = oneshot_mock("--help").stdout
    for command in ("serve", "generate-pki", "error-scenarios", "fake-evidences", "export", "import"):
        assert command in shown.split("Commands:")[1], shown
    serve_help = oneshot_mock("serve", "--help").stdout
    assert "TCP port to listen on" in serve_help and "one JSON object each" in serve_help


def test_every_serve_option_has_help_in_a_group_of_its_kind():
    shown = oneshot_mock("serve", "--help", env={**environment_without_oneshot(), "COLUMNS": "200"}).stdout
    sections = dict(re.findall(r"\n([a-z][^\n]*):\n((?:  [^\n]*\n?)+)", shown))
    assert sections.pop("options").split() == ["-h,", "--help", "show", "this", "help", "message", "and", "exit"]
    assert len(sections) >= 6, list(sections)
    options = [line.split()[0] for text in sections.values() for line in text.splitlines()
               if line.startswith("  --")]
    assert len(options) == len(set(options)) >= 30
    entries = [entry for text in sections.values() for entry in re.split(r"\n(?=  --)", text)]
    undocumented = [entry.split()[0] for entry in entries if "[env ONESHOT_MOCK_" not in " ".join(entry.split())]
    assert undocumented == [], "every option has its help, and its variable"
    assert "``" not in oneshot_mock("--help").stdout, "no raw reST in the help"
