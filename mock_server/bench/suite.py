"""The xdist phase: a client project's test suite on the ``oneshot_mock`` fixture, serially and with ``-n 2``."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mock_server.bench.flows import TOKEN
from mock_server.bench.inputs import Draws

TESTS = 7
XDIST_WORKERS = 2
_TIMEOUT_S = 300.0
_RAN = (0, 1)  # pytest's exit codes when every test ran: all passed, some failed
# What a client project would write: stdlib HTTP only, nothing imported from this repository.
_SUITE = r'''"""A client project's tests: each signs its signer's document through the oneshot_mock fixture."""

import json
import urllib.request
from pathlib import Path

import pytest

HERE = Path(__file__).parent
CASES = json.loads((HERE / "cases.json").read_text(encoding="utf-8"))
TOKEN = {token!r}
BOUNDARY = "oneshot-bench-7d0c5e1f9a2b4c3d"


def call(mock, method, url, body=None, content_type="application/json"):
    # The fixture's headers: under xdist each worker has a namespace of its own.
    headers = {{**mock.headers, "Content-Type": content_type}}
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=60) as response:
        answer = response.read()
        return json.loads(answer) if response.headers.get_content_type() == "application/json" else answer


def multipart(pdf):
    head = (f"--{{BOUNDARY}}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"doc.pdf\"\r\n"
            "Content-Type: application/pdf\r\n\r\n").encode()
    return head + pdf + f"\r\n--{{BOUNDARY}}--\r\n".encode(), f"multipart/form-data; boundary={{BOUNDARY}}"


@pytest.mark.parametrize("case", CASES, ids=[str(case["index"]) for case in CASES])
def test_classic_flow(oneshot_mock, case):
    api = oneshot_mock.api_url
    fields = {{**case["identity"], "token": TOKEN, "env": "sandbox"}}
    pk = call(oneshot_mock, "POST", api + "/request", json.dumps(fields).encode())["details"]
    pdf = (HERE / case["document"]).read_bytes()
    uid = call(oneshot_mock, "POST", f"{{api}}/document/{{pk}}", *multipart(pdf))["details"]
    call(oneshot_mock, "POST", f"{{api}}/otp/{{pk}}")
    secret = json.dumps({{"secret": oneshot_mock.latest_otp(pk)}}).encode()
    call(oneshot_mock, "POST", f"{{api}}/sign/{{pk}}", secret)
    signed = call(oneshot_mock, "GET", f"{{api}}/document/{{pk}}/signed/{{uid}}")
    assert signed.startswith(b"%PDF") and b"/ByteRange" in signed
    call(oneshot_mock, "DELETE", f"{{api}}/documents/{{pk}}")
'''


def xdist_phase(draws: Draws) -> dict[str, Any]:
    """Wall times of the suite run serially and with ``-n 2``, and their ratio (``None`` if not measured)."""
    missing = [name for name in ("pytest", "xdist") if importlib.util.find_spec(name) is None]
    if missing:
        return {"tests": TESTS, "ratio": None, "not_measured": f"{' and '.join(missing)} not installed"}
    with tempfile.TemporaryDirectory(prefix="oneshot-bench-suite-") as directory:
        _write_suite(Path(directory), draws)
        serial = _pytest(Path(directory), [])
        parallel = _pytest(Path(directory), ["-n", str(XDIST_WORKERS)])
    # A failed test still ran its flow: the times compare. A run that stopped short (usage or
    # collection error, timeout) does not.
    ran = serial["returncode"] in _RAN and parallel["returncode"] in _RAN
    return {"tests": TESTS, "workers": XDIST_WORKERS, "serial": serial, "xdist": parallel,
            "ratio": round(parallel["seconds"] / serial["seconds"], 3) if ran else None}


def _write_suite(directory: Path, draws: Draws) -> None:
    # An ini file of its own: pytest looks no further up for a rootdir and settings.
    (directory / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (directory / "test_signing.py").write_text(_SUITE.format(token=TOKEN), encoding="utf-8")
    cases = []
    for index in range(TESTS):
        draw = draws.flow("xdist", index)
        name = f"doc-{index}.pdf"
        (directory / name).write_bytes(draw.document.pdf)
        cases.append({"index": index, "identity": draw.identity, "document": name})
    (directory / "cases.json").write_text(json.dumps(cases, ensure_ascii=False), encoding="utf-8")


def _pytest(directory: Path, args: list[str]) -> dict[str, Any]:
    # An outer pytest (the benchmark's own test) must not hand its options or worker id down. A
    # client project's environment: pytest with this plugin and xdist, not every plugin this one has
    # installed for its own tests (each xdist worker would import them all, a second or more apiece).
    env = {name: value for name, value in os.environ.items() if not name.startswith("PYTEST_")}
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "-p", "mock_server.testing.pytest_plugin", "-p", "xdist.plugin", *args]
    started = time.monotonic()
    try:
        done = subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True, timeout=_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"seconds": round(time.monotonic() - started, 2), "returncode": None,
                "outcome": f"timed out after {_TIMEOUT_S:.0f} s"}
    lines = done.stdout.strip().splitlines()
    return {"seconds": round(time.monotonic() - started, 2), "returncode": done.returncode,
            "outcome": lines[-1] if lines else done.stderr.strip()[-300:]}
