"""The Dockerfile, checked without a Docker engine.

Its COPY steps are replayed into an empty directory (exactly the files it copies, so a missing COPY
shows), its ``pip install`` step runs in a fresh virtualenv, and its CMD then runs with its ENV
values and must pass its own HEALTHCHECK.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
import venv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import pytest

from mock_server.server.cli import serve_config
from tests.conftest import REPO, free_port
from tests.helpers import environment_without_oneshot, serving


@dataclass
class Image:
    """What the Dockerfile declares, in order."""

    workdir: PurePosixPath = field(default_factory=lambda: PurePosixPath("/"))
    env: dict[str, str] = field(default_factory=dict)
    copies: list[tuple[list[str], PurePosixPath]] = field(default_factory=list)
    # Each RUN with the ENV declared before it.
    runs: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    user: str | None = None
    expose: list[int] = field(default_factory=list)
    healthcheck_options: dict[str, str] = field(default_factory=dict)
    healthcheck: list[str] = field(default_factory=list)
    cmd: list[str] = field(default_factory=list)


def instructions(text: str) -> Iterator[tuple[str, str]]:
    """``(KEYWORD, arguments)`` per instruction: continuation lines joined, comments dropped."""
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # Docker drops these inside a continued instruction too
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        pending = ""
        yield keyword.upper(), arguments.strip()
    assert not pending, "the Dockerfile ends inside a continued line"


def command(arguments: str) -> list[str]:
    """An exec-form (JSON) or shell-form command, as Docker runs it."""
    if arguments.startswith("["):
        return json.loads(arguments)
    return ["/bin/sh", "-c", arguments]


def parse(text: str) -> Image:
    image = Image()
    for keyword, arguments in instructions(text):
        if keyword == "WORKDIR":
            image.workdir = image.workdir / arguments
        elif keyword == "ENV":
            for pair in shlex.split(arguments):
                name, equals, value = pair.partition("=")
                assert equals, f"use ENV NAME=value, not {arguments!r}"
                image.env[name] = value
        elif keyword == "COPY":
            *sources, target = [part for part in shlex.split(arguments) if not part.startswith("--")]
            image.copies.append((sources, image.workdir / target))
        elif keyword == "RUN":
            image.runs.append((arguments, dict(image.env)))
        elif keyword == "VOLUME":
            image.volumes += json.loads(arguments) if arguments.startswith("[") else arguments.split()
        elif keyword == "USER":
            image.user = arguments
        elif keyword == "EXPOSE":
            image.expose += [int(port.partition("/")[0]) for port in arguments.split()]
        elif keyword == "HEALTHCHECK":
            while arguments.startswith("--"):
                option, _, arguments = arguments.partition(" ")
                name, _, value = option.partition("=")
                image.healthcheck_options[name] = value
                arguments = arguments.strip()
            assert arguments.startswith("CMD "), f"HEALTHCHECK without CMD: {arguments!r}"
            image.healthcheck = command(arguments.removeprefix("CMD ").strip())
        elif keyword == "CMD":
            image.cmd = command(arguments)
    return image


IMAGE = parse((REPO / "Dockerfile").read_text())


def seconds(duration: str) -> float:
    """A Docker duration such as ``3s`` or ``1m30s``."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a duration: {duration!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


def test_the_base_image_names_its_debian_release():
    [base] = [arguments for keyword, arguments in instructions((REPO / "Dockerfile").read_text()) if keyword == "FROM"]
    assert re.fullmatch(r"python:3\.\d+(\.\d+)?-slim-(bookworm|trixie)", base), base


def test_the_build_context_is_what_the_dockerfile_copies():
    """``.dockerignore`` leaves out everything but the COPY sources, so a checkout's virtualenvs, data
    dirs and test artefacts neither slow the build nor end up in the image."""
    lines = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert lines[0] == "**", "everything is left out first"
    let_in = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert let_in == {source.rstrip("/") for sources, _ in IMAGE.copies for source in sources}


def test_runs_as_a_user_it_creates_not_root():
    assert IMAGE.user, "no USER: the container would run as root"
    user, _, group = IMAGE.user.partition(":")
    assert user not in ("root", "0") and group not in ("root", "0")
    setup = " ".join(run for run, _ in IMAGE.runs)
    created = re.search(rf"useradd\b[^&;]*--uid {user}\b", setup) if user.isdigit() else \
        re.search(rf"useradd\b[^&;]*\b{user}\b", setup)
    assert created, f"USER {IMAGE.user} is never created with useradd"
    if group:
        assert re.search(rf"groupadd\b[^&;]*--gid {group}\b", setup), f"group {group} is never created"


def test_volume_is_the_data_dir_and_the_user_owns_it():
    assert IMAGE.volumes, "no VOLUME"
    setup = " ".join(run for run, _ in IMAGE.runs)
    for volume in IMAGE.volumes:
        # A volume starts as a copy of the image's directory: the user must own it before the VOLUME line.
        assert re.search(rf"chown {re.escape(IMAGE.user or '')} {re.escape(volume)}(\s|$)", setup), \
            f"{volume} is not chowned to USER {IMAGE.user}"


def test_image_configuration_through_the_real_parser():
    """What ``oneshot-mock serve`` makes of the image's CMD and ENV: every address, the volume as data dir."""
    assert IMAGE.cmd[:2] == ["oneshot-mock", "serve"]
    config = serve_config(IMAGE.cmd[2:], IMAGE.env)
    assert config.host == "0.0.0.0", "published ports only reach a server bound beyond loopback"
    assert IMAGE.expose == [config.port]
    assert str(config.data_dir) in IMAGE.volumes


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path, dict[str, str]]:
    """The COPY and ``pip install`` steps in a fresh virtualenv: (image root, venv, base environment)."""
    root = tmp_path_factory.mktemp("image")

    def host(path: PurePosixPath) -> Path:
        return root / path.relative_to("/")

    for sources, target in IMAGE.copies:
        for source in sources:
            origin = REPO / source
            assert origin.exists(), f"COPY {source}: not in the repository"
            if origin.is_dir():
                shutil.copytree(origin, host(target), dirs_exist_ok=True)
            else:
                into = host(target) / origin.name if str(target).endswith("/") or len(sources) > 1 else host(target)
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, into)

    environment = tmp_path_factory.mktemp("venv")
    venv.create(environment, with_pip=True)
    clean = {name: value for name, value in environment_without_oneshot().items()
             if name not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    base = {**clean, "PATH": f"{environment / 'bin'}{os.pathsep}{clean.get('PATH', '')}"}

    [(install, env_then)] = [(run, env) for run, env in IMAGE.runs if "pip install" in run]
    # --no-cache-dir only keeps pip's download cache out of the image layer; what gets installed is the
    # same, and the cache makes this test fast.
    step = install.replace("--no-cache-dir", "")
    host(IMAGE.workdir).mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["/bin/sh", "-c", step], cwd=host(IMAGE.workdir), env={**base, **env_then},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"RUN {install}\n{result.stdout}\n{result.stderr}"
    return root, environment, base


@pytest.mark.slow
def test_cmd_serves_with_the_image_env_and_passes_the_healthcheck(installed, tmp_path):
    root, environment, base = installed
    assert shutil.which(IMAGE.cmd[0], path=base["PATH"]) == str(environment / "bin" / IMAGE.cmd[0]), \
        "the install step must provide the CMD's program"
    # The image's ENV, bar what a test machine must not do: listen on every address, write to /data.
    port = free_port()
    env = {**base, **IMAGE.env, "ONESHOT_MOCK_HOST": "127.0.0.1", "ONESHOT_MOCK_PORT": str(port),
           "ONESHOT_MOCK_DATA_DIR": str(tmp_path / "data")}
    workdir = root / IMAGE.workdir.relative_to("/")
    timeout = seconds(IMAGE.healthcheck_options.get("--timeout", "30s"))

    def healthcheck() -> tuple[int, float]:
        started = time.monotonic()
        probe = subprocess.run(IMAGE.healthcheck, cwd=workdir, env=env, capture_output=True, timeout=60)
        return probe.returncode, time.monotonic() - started

    assert healthcheck()[0] != 0, "the healthcheck passes with no server running"
    with serving(IMAGE.cmd, env, f"http://127.0.0.1:{port}/api/v1/hello", tmp_path / "server.log", cwd=workdir):
        status, elapsed = healthcheck()
        assert status == 0
        assert elapsed < timeout, f"the healthcheck took {elapsed:.1f} s, its --timeout is {timeout} s"
    assert (tmp_path / "data" / "state.sqlite3").is_file(), "ONESHOT_MOCK_DATA_DIR was not used"
    log = (tmp_path / "server.log").read_text()
    assert f"on http://127.0.0.1:{port}" in log

