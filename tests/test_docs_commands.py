"""The shell blocks of the README and of ``docs/``, checked so that the documentation cannot drift.

Every ``sh`` block says what it is by the word after ``sh``:

- ``runnable``: run as written against a live sandbox, one command at a time in one shell
  environment per page (a fresh sandbox for each page), ``H`` pointing at that sandbox. ``curl``
  fails on an HTTP error answer. The values the text tells the reader to copy (``<pk>``, ``<uid>``,
  ``<otp>``) are copied from the answers, as a reader would.
- ``setup``: the two set-up commands; ``.ci/run`` runs the test command verbatim, and
  ``tests/test_wheel.py`` installs the package as the other one does and starts ``serve``.
- ``docker``: run as written where a Docker daemon answers, skipped elsewhere.
- ``synopsis``: a usage line (``python -m MODULE`` or ``oneshot-mock``, with its subcommand); each option
  it shows must be one the command accepts.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import example_client
from tests.helpers import IDENTITY, blank_pdf, picture, running_sandbox

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MARKERS = ("runnable", "setup", "docker", "synopsis")
DOCUMENTED_BASE = "http://127.0.0.1:8080"
# HTTP errors fail the command, and no progress meter clutters what is checked.
_STRICT_CURL = 'curl() { command curl --silent --show-error --fail-with-body "$@"; }'
_TRAILING_COMMENT = re.compile(r"\s+#\s.*$")
_PLACEHOLDER = re.compile(r"<[a-z]+>")


@dataclass(frozen=True)
class Block:
    """A fenced ``sh`` block: the page it is on, its marker, its text, and the line it starts on."""

    page: Path
    marker: str
    text: str
    line: int

    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def shell_blocks(page: Path) -> list[Block]:
    """Every ``sh`` block of ``page``, in order."""
    found, lines = [], page.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        fence = lines[index].strip()
        if fence.startswith("```sh"):
            end = next(at for at in range(index + 1, len(lines)) if lines[at].strip() == "```")
            found.append(Block(page, fence[len("```sh"):].strip(), "\n".join(lines[index + 1:end]), index + 1))
            index = end
        index += 1
    return found


def commands(text: str) -> list[str]:
    """A block's commands: continuation lines joined, comment lines left out."""
    found, pending = [], ""
    for line in text.splitlines():
        if not pending and (line.lstrip().startswith("#") or not line.strip()):
            continue
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        found.append(pending + line)
        pending = ""
    return found


def _details(output: str) -> str:
    return str(json.loads(output)["details"])


def _otp(output: str) -> str:
    return json.loads(output)["messages"][-1]["otp"]


# What a reader copies, and from which answer.
COPIED: dict[str, tuple[Callable[[str], bool], Callable[[str], str]]] = {
    "<pk>": (lambda command: "-X POST $H/api/v1/request " in command, _details),
    "<uid>": (lambda command: re.search(r"/api/v1/document/\$PK -F \w+=@", command) is not None, _details),
    "<otp>": (lambda command: "/_mock/sms?request=" in command, _otp),
}


class CommandFailed(AssertionError):
    """A documented command that did not run as written."""


def run_commands(blocks: list[Block], base: str, workdir: Path) -> list[tuple[str, str]]:
    """Run the blocks' commands in order in one shell environment against ``base``; each command with
    what it printed (stdout and stderr). :class:`CommandFailed` names the first that failed."""
    settings = [_STRICT_CURL, f"H={base}"]
    copied: dict[str, str] = {}
    ran = []
    for block in blocks:
        for command in commands(block.text):
            if command.startswith("H="):
                if command != f"H={DOCUMENTED_BASE}":
                    raise CommandFailed(f"{block.where()}: the documented sandbox is {DOCUMENTED_BASE}: {command}")
                continue
            for placeholder, value in copied.items():
                command = command.replace(placeholder, value)
            unknown = _PLACEHOLDER.findall(_TRAILING_COMMENT.sub("", command))
            if unknown:
                raise CommandFailed(f"{block.where()}: nothing copies {', '.join(unknown)} for: {command}")
            if re.match(r"^[A-Z_]+=", command):
                settings.append(command)
                continue
            done = subprocess.run(["bash", "-euo", "pipefail", "-c", "\n".join([*settings, command])], cwd=workdir,
                                  capture_output=True, text=True, timeout=120)
            if done.returncode != 0:
                raise CommandFailed(f"{block.where()}: exit {done.returncode}: {command}\n{done.stdout}{done.stderr}")
            ran.append((command, done.stdout + done.stderr))
            for placeholder, (produces, read) in COPIED.items():
                if produces(command):
                    copied[placeholder] = read(done.stdout)
    return ran


def _runnable(page: Path) -> list[Block]:
    return [block for block in shell_blocks(page) if block.marker == "runnable"]


def _output(ran: list[tuple[str, str]], part: str) -> str:
    return next(output for command, output in ran if part in command)


# What shows that each page's commands did what its text says, beyond running.
def _check_readme(ran: list[tuple[str, str]], workdir: Path) -> None:
    assert json.loads(_output(ran, "/api/v1/request"))["details"] == 35247, "the PK the walkthrough sets"
    assert json.loads(_output(ran, "/api/v1/sign/"))["status"] == "200 OK"
    report = _output(ran, "pdfsig")
    assert "Signature is Valid" in report and "Certificate is Trusted" in report, report
    assert (workdir / "signed-contract.pdf").read_bytes().startswith(b"%PDF")


def _check_api_families(ran: list[tuple[str, str]], workdir: Path) -> None:
    assert "/videoid/" in json.loads(_output(ran, "/api/v1/videoid"))["details"]["videoid_link"]
    assert "Verification successful" in _output(ran, "openssl cms -verify")


def _check_control_api(ran: list[tuple[str, str]], workdir: Path) -> None:
    assert "Verification: OK" in _output(ran, "openssl ts -verify")


def _check_persistence(ran: list[tuple[str, str]], workdir: Path) -> None:
    assert json.loads(_output(ran, "-X PUT"))["status"] == "imported"


def _check_conformance(ran: list[tuple[str, str]], workdir: Path) -> None:
    printed = _output(ran, "oneshot-mock conformance")
    assert re.search(r"^all \d+ steps the same$", printed, re.M), printed
    assert json.loads((workdir / "conformance.json").read_text())["differing_steps"] == 0
    assert (workdir / "conformance.html").is_file()


CHECKS = {"README.md": _check_readme, "api-families.md": _check_api_families, "control-api.md": _check_control_api,
          "persistence.md": _check_persistence, "conformance.md": _check_conformance}
TOOLS = ("curl", "openssl", "certutil", "pdfsig")


@pytest.mark.parametrize("page", [page for page in PAGES if _runnable(page)], ids=lambda page: page.name)
def test_the_runnable_blocks_run_as_written(page, tmp_path):
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    workdir = tmp_path / "reader"
    (workdir / "fixtures").mkdir(parents=True)
    shutil.copy(REPO / "fixtures" / "document.pdf", workdir / "fixtures" / "document.pdf")
    with running_sandbox(tmp_path) as server:
        ran = run_commands(_runnable(page), server.base, workdir)
        CHECKS[page.name](ran, workdir)


def test_every_page_with_runnable_blocks_says_what_they_showed():
    assert {page.name for page in PAGES if _runnable(page)} == set(CHECKS)


def test_a_broken_command_fails_the_run(tmp_path):
    """The runner is a check that can fail: a wrong path, a wrong option and an uncopied value each do."""
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    broken = [
        "curl $H/api/v1/hello\ncurl -X POST $H/api/v1/otpx/35247",
        "curl $H/api/v1/hello --no-such-option",
        'curl -X POST $H/api/v1/sign/1 -d \'{"secret": "<code>"}\'',
    ]
    with running_sandbox(tmp_path) as server:
        for text in broken:
            with pytest.raises(CommandFailed):
                run_commands([Block(REPO / "README.md", "runnable", text, 1)], server.base, tmp_path)


def test_every_shell_block_says_what_it_is():
    unmarked = [f"{block.where()}: {block.marker or '(none)'}" for page in PAGES for block in shell_blocks(page)
                if block.marker not in MARKERS]
    assert unmarked == [], f"mark each sh block as one of {MARKERS}"


def test_every_page_of_docs_is_linked_from_the_readme():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert [page.name for page in PAGES[1:] if f"(docs/{page.name})" not in readme] == []


def test_every_link_between_pages_names_a_page_that_exists():
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if not (page.parent / target).is_file():
                broken.append(f"{page.relative_to(REPO)} → {target}")
    assert broken == []


def test_ci_runs_the_readme_test_command_verbatim():
    setup = [block for block in shell_blocks(REPO / "README.md") if block.marker == "setup"]
    assert [block.text for block in setup] == ["pip install . && oneshot-mock serve",
                                               "pip install -e '.[test]' && python -m pytest"]
    assert setup[1].text in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def test_the_synopses_show_only_options_the_commands_accept():
    for page in PAGES:
        for block in (block for block in shell_blocks(page) if block.marker == "synopsis"):
            # ``oneshot-mock ...`` is ``python -m mock_server ...``
            module, command = re.match(r"(?:python -m ([\w.]+)|oneshot-mock)((?: [a-z][a-z-]*)*)", block.text).groups()
            usage = subprocess.run([sys.executable, "-m", module or "mock_server", *command.split(), "--help"],
                                   capture_output=True, text=True, timeout=60, check=True).stdout
            shown = set(re.findall(r"--[a-z][a-z-]+", block.text))
            assert shown and shown <= set(re.findall(r"--[a-z][a-z-]+", usage)), (block.where(), shown)


def test_the_docker_commands_run_as_written(tmp_path):
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        pytest.skip("no Docker daemon answers here")
    for block in (block for page in PAGES for block in shell_blocks(page) if block.marker == "docker"):
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", block.text], cwd=REPO, capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 0, (block.where(), done.stdout[-2000:], done.stderr[-2000:])


def yaml_block(page: Path) -> str:
    """The first YAML block of ``page``."""
    return page.read_text(encoding="utf-8").split("```yaml\n", 1)[1].split("\n```", 1)[0]


def test_the_seed_file_example_loads_and_its_token_creates_requests(tmp_path):
    (tmp_path / "seed.yaml").write_text(yaml_block(REPO / "docs" / "seed-files.md"))
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
        assert get("/api/v1/request/515151")["details"]["status"] == "VIDEOPENDING"
        assert "00000000000000000000000000000042" in json.dumps(get("/api/v1/metadata"))


class _AppUnderTest:
    """The ``my_app`` of the control API page's example: a client app signing one document."""

    def __init__(self, base: str) -> None:
        self.api = base + "/api/v1"

    def start_signing(self, headers: dict[str, str]) -> int:
        pk = example_client.create(self.api, headers)
        example_client.upload(self.api, pk, (REPO / "fixtures" / "document.pdf").read_bytes(), headers)
        example_client.request_otp(self.api, pk, headers)
        return pk

    def confirm(self, pk: int, otp: str, headers: dict[str, str]) -> None:
        status, answer = example_client.sign(self.api, pk, otp, headers)
        assert status == 200, answer


def test_the_python_examples_of_the_control_api_page_run(tmp_path):
    page = (REPO / "docs" / "control-api.md").read_text(encoding="utf-8")
    blocks = [block.split("\n```", 1)[0] for block in page.split("```python\n")[1:]]
    assert blocks, "the page shows Python"
    with running_sandbox(tmp_path) as server:
        scope = {"my_app": _AppUnderTest(server.base)}
        for block in blocks:
            exec(compile(block.replace(DOCUMENTED_BASE, server.base), "docs/control-api.md", "exec"), scope)
