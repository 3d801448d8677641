"""The README's walkthrough commands and seed-file example, run as written against a live sandbox.

The curl workflow, the time-stamp check and the signature check are extracted from the README and
run one command at a time in one shell environment; the two values the walkthrough tells the reader
to copy (`<otp>` from the SMS, `<uid>` from the upload) are copied from the answers as a reader would.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import IDENTITY, blank_pdf, picture, running_sandbox

REPO = Path(__file__).resolve().parents[1]
TOOLS = ("curl", "openssl", "certutil", "pdfsig")


def shell_block(after_heading: str, index: int = 0) -> list[str]:
    """The commands (continuation lines joined, comments kept) of the ``index``-th sh block under a heading."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split(after_heading + "\n", 1)[1]
    block = section.split("```sh\n")[index + 1].split("\n```", 1)[0]
    commands, pending = [], ""
    for line in block.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        commands.append(pending + line)
        pending = ""
    return commands


def test_the_curl_walkthrough_and_the_checks_run_as_written(tmp_path):
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    (tmp_path / "fixtures").mkdir()
    shutil.copy(REPO / "fixtures" / "document.pdf", tmp_path / "fixtures" / "document.pdf")
    commands = (shell_block("## The classic workflow with curl") + shell_block("### PKI services")
                + shell_block("### Checking a signature"))
    with running_sandbox(tmp_path) as server:
        settings = [f"H={server.base}"]
        copied: dict[str, str] = {}
        outputs = []
        for command in commands:
            if command.startswith("H="):
                continue  # the walkthrough's port; this sandbox's is set above
            for placeholder, value in copied.items():
                command = command.replace(placeholder, value)
            if "=" in command.split(" ", 1)[0]:
                settings.append(command)
                continue
            done = subprocess.run(["bash", "-euc", "\n".join([*settings, command])], cwd=tmp_path,
                                  capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, (command, done.stdout, done.stderr)
            outputs.append((command, done.stdout))
            if "/api/v1/document/$PK -F file=@" in command:
                copied["<uid>"] = json.loads(done.stdout)["details"]
            elif "/_mock/sms?request=" in command:
                copied["<otp>"] = json.loads(done.stdout)["messages"][-1]["otp"]
    shown = dict(outputs)
    created = next(text for command, text in outputs if "/api/v1/request" in command)
    assert json.loads(created) == {"status": "201 Created", "details": 35247}, "the PK the walkthrough sets"
    signed = next(text for command, text in outputs if "/api/v1/sign/" in command)
    assert json.loads(signed)["status"] == "200 OK", signed
    assert "Verification: OK" in next(text for command, text in shown.items() if "ts -verify" in command)
    report = next(text for command, text in shown.items() if command.startswith("pdfsig"))
    assert "Signature is Valid" in report and "Certificate is Trusted" in report, report
    assert (tmp_path / "signed-contract.pdf").read_bytes().startswith(b"%PDF")


def yaml_block(after_heading: str) -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    return readme.split(after_heading + "\n", 1)[1].split("```yaml\n", 1)[1].split("\n```", 1)[0]


def test_the_seed_file_example_loads_and_its_token_creates_requests(tmp_path):
    (tmp_path / "seed.yaml").write_text(yaml_block("### Seed file"))
    (tmp_path / "stamp.png").write_bytes(picture())
    (tmp_path / "fixed.pdf").write_bytes(blank_pdf())
    with running_sandbox(tmp_path, "--seed-file", str(tmp_path / "seed.yaml")) as server:
        def get(path: str) -> dict:
            with urllib.request.urlopen(server.base + path, timeout=30) as answer:
                return json.load(answer)

        assert get("/api/v1/request/424242")["details"]["status"] == "ENROLLREADY"
        form = {**IDENTITY, "token": "00000000000000000000000000000001"}
        created = urllib.request.Request(server.base + "/api/v1/request", data=json.dumps(form).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(created, timeout=30) as answer:
            assert answer.status == 201, "the seeded token is the one the example names"
        assert "11111111-1111-4111-8111-111111111111" in json.dumps(get("/api/v1/images"))
