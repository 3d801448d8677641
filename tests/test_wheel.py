"""The package ships whole: the wheel built from the checkout, installed in a fresh virtualenv, serves
with a scenario of the bundled library and signs under the bundled PKI.

The fresh virtualenv borrows this environment's dependencies (a ``.pth`` line naming its
site-packages, whose own ``.pth`` files, this checkout's editable install among them, are not read
then), so the test needs no network beyond the wheel's own build; it checks that what runs is the
wheel's copy and that the wheel's declared dependencies are all met there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path
from typing import Any

import pytest
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

from tests import example_client
from tests.helpers import DEFAULT_TOKEN, IDENTITY, blank_pdf, free_port, multipart_body, serving

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # From a copy: setuptools builds in the source tree's build/, which two xdist workers would share.
    source = out / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", "build", "*.egg-info", "__pycache__",
                                                                 ".*_cache", "test-artifacts"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    [built] = out.glob("oneshot_mock-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """The fresh virtualenv's ``bin`` directory, with the wheel installed."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
                           str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return venv / "bin"


def test_the_wheel_holds_the_data_files_licence_and_entry_points(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("mock_server/openapi.yaml", "mock_server/magic.yaml", "mock_server/scenario.schema.json",
                   "mock_server/seedfile.schema.json", "mock_server/fixtures/pki/root.pem",
                   "mock_server/fixtures/pki/issuing.key", "mock_server/scenario_library/sms-outage.yaml",
                   "mock_server/scenario_library/errors/sign.403.invalid_otp.yaml",
                   "mock_server/fixtures/document.pdf", "mock_server/conformance/templates/report.html",
                   "mock_server/api/templates/overview.html"):
        assert needed in names, needed
    assert any(name.endswith("/LICENSE") and ".dist-info/" in name for name in names), "the MIT licence"
    entry_points = next(name for name in names if name.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "oneshot-mock = mock_server.server.cli:main" in text
    assert "oneshot_mock = mock_server.testing.pytest_plugin" in text


def test_what_runs_is_the_wheel_and_its_dependencies_are_met(installed):
    done = subprocess.run([str(installed / "python"), "-c", """
import importlib.metadata as metadata, re, mock_server
print(mock_server.__file__)
missing = []
for requirement in metadata.requires("oneshot-mock"):
    if "extra ==" in requirement or "sys_platform == 'win32'" in requirement:
        continue
    name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)
    try:
        metadata.version(name)
    except metadata.PackageNotFoundError:
        missing.append(name)
print(missing)
"""], capture_output=True, text=True, timeout=60, check=True, cwd=installed)  # not the checkout: "" leads sys.path
    where, missing = done.stdout.splitlines()
    assert where.startswith(str(installed.parent)) and str(REPO) not in where, where
    assert missing == "[]", missing


def test_the_installed_command_serves_a_bundled_scenario_and_signs_under_the_bundled_pki(installed, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    command = [str(installed / "oneshot-mock"), "serve", "--port", str(port), "--workers", "1",
               "--scenario", "sms-outage", "--scenario", "errors/get_request.404.not_found"]
    with serving(command, {"PATH": str(installed)}, base + "/_mock/health", tmp_path / "server.log", cwd=tmp_path):
        def call(method: str, path: str, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
            return example_client.call(method, base + path, *args, **kwargs)

        loaded = json.loads(call("GET", "/_mock/scenarios")[1])
        errors = "error-get-request-404-not-found"
        assert {"sms-outage", errors} <= {entry["name"] for entry in loaded["scenarios"]}, loaded
        created = json.dumps({**IDENTITY, "token": DEFAULT_TOKEN}).encode()
        pk = json.loads(call("POST", "/api/v1/request", created)[1])["details"]
        assert call("GET", f"/api/v1/request/{pk}", headers={"X-Mock-Scenario": errors})[0] == 404
        assert call("GET", f"/api/v1/request/{pk}")[0] == 200
        boundary = "wheel-test-boundary"
        body = multipart_body(boundary, [("file", "doc.pdf", "application/pdf", blank_pdf())])
        status, uploaded = call("POST", f"/api/v1/document/{pk}", body, f"multipart/form-data; boundary={boundary}")
        assert status == 200, uploaded
        uid = json.loads(uploaded)["details"]
        assert call("POST", f"/api/v1/otp/{pk}")[0] == 200
        outbox = json.loads(call("GET", f"/_mock/sms?request={pk}&include=undelivered")[1])["messages"]
        assert [message["delivered_at"] for message in outbox] == [None], "sms-outage dropped the SMS"
        status, signed = call("POST", f"/api/v1/sign/{pk}", json.dumps({"secret": outbox[0]["otp"]}).encode())
        assert status == 200, signed
        pdf = call("GET", f"/api/v1/document/{pk}/signed/{uid}")[1]
        ca = call("GET", "/_mock/pki/ca.pem")[1]
        status, dashboard = call("GET", f"/_mock/dashboard/requests/{pk}?refresh=0")  # the templates installed
        assert status == 200 and f"<h2>Request {pk}</h2>" in dashboard.decode(), dashboard[:300]
    (tmp_path / "signed.pdf").write_bytes(pdf)
    from asn1crypto import pem, x509
    roots = [x509.Certificate.load(der) for _, _, der in pem.unarmor(ca, multiple=True)]
    context = ValidationContext(trust_roots=roots[:1], other_certs=roots[1:], allow_fetching=False,
                                revocation_mode="soft-fail")
    with (tmp_path / "signed.pdf").open("rb") as handle:
        [signature] = PdfFileReader(handle).embedded_signatures
        status = validate_pdf_signature(signature, context)
    assert status.bottom_line, status.pretty_print_details()
    assert (REPO / "fixtures" / "pki" / "root.pem").read_bytes().strip() in ca, "the bundled PKI's root"
