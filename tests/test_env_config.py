"""Env-var configuration equals CLI configuration: ``ONESHOT_MOCK_*`` mirrors every ``serve`` option."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest

from mock_server.server import env_options
from mock_server.server.cli import build_parsers, parse_args, serve_config
from tests.conftest import free_port
from tests.helpers import DEFAULT_TOKEN, IDENTITY, environment_without_oneshot, serving

# Every serve option: the values given as flags, and the same values as one environment variable.
# Values differ from the defaults, so each case proves its option reaches the Config.
CASES: dict[str, tuple[list[str], str]] = {
    "--host": (["0.0.0.0"], "0.0.0.0"),
    "--port": (["9123"], "9123"),
    "--seed": (["42"], "42"),
    "--otp": (["123456"], "123456"),
    "--otp-ttl": (["120"], "120"),
    "--otp-resend": (["5.5"], "5.5"),
    "--pki-dir": (["/srv/pki"], "/srv/pki"),
    "--seed-file": (["/srv/seed.yaml"], "/srv/seed.yaml"),
    "--log-format": (["json"], "json"),
    "--workers": (["97"], "97"),
    "--signing-priority": (["idle"], "idle"),
    "--one-shot-key": (["rsa-2048"], "rsa-2048"),
    "--public-url": (["https://sandbox.example"], "https://sandbox.example"),
    # URLs may hold ',' and ';': whitespace (here a newline and a space) separates them.
    "--ra-webhook": (["9999=http://a.example/hook?x=1,2;3", "9998=https://b.example/h"],
                     "9999=http://a.example/hook?x=1,2;3\n 9998=https://b.example/h"),
    "--webhook-format": (["new"], "new"),
    "--webhook-secret": (["whsec_c2VjcmV0"], "whsec_c2VjcmV0"),
    "--webhook-retry-scale": (["0.01"], "0.01"),
    "--videoid-auto-complete": (["2.5"], "2.5"),
    "--clock-start": (["2030-01-01T09:00:00Z"], "2030-01-01T09:00:00Z"),
    # Paths may hold spaces: the PATH separator separates them.
    "--scenario": (["a.yaml", "dir with spaces/b.json"], f"a.yaml{os.pathsep}dir with spaces/b.json"),
    "--admin-token": (["s3cret"], "s3cret"),
    "--no-control-api": ([], "1"),
    "--data-dir": (["/srv/data"], "/srv/data"),
    "--max-namespaces": (["8"], "8"),
    "--max-log-entries": (["50"], "50"),
    "--retain-requests": (["none"], "none"),
    "--retain-for": (["12h"], "12h"),
    "--max-upload-mb": (["5"], "5"),
    "--header-timeout": (["3"], "3"),
    "--body-timeout": (["4"], "4"),
    "--body-deadline": (["40"], "40"),
    "--idle-timeout": (["6"], "6"),
}


def variable_of(flag: str) -> str:
    """The documented rule, written out independently of the implementation."""
    return "ONESHOT_MOCK_" + flag.removeprefix("--").replace("-", "_").upper()


def flags(flag: str) -> list[str]:
    values, _ = CASES[flag]
    return [part for value in values for part in (flag, value)] if values else [flag]


def changed_fields(config: Any, reference: Any) -> set[str]:
    return {f.name for f in fields(config) if getattr(config, f.name) != getattr(reference, f.name)}


def test_every_serve_option_has_a_case_and_a_variable():
    """A new option must be added here, and it gets its variable without any other list to keep."""
    _, serve = build_parsers()
    mirrored = {action.option_strings[-1]: env_options.variable(action) for action in env_options.options(serve)}
    assert set(mirrored) == set(CASES)
    assert mirrored == {flag: variable_of(flag) for flag in CASES}
    assert mirrored["--max-upload-mb"] == "ONESHOT_MOCK_MAX_UPLOAD_MB"
    assert mirrored["--data-dir"] == "ONESHOT_MOCK_DATA_DIR"
    assert mirrored["--no-control-api"] == "ONESHOT_MOCK_NO_CONTROL_API"


@pytest.mark.parametrize("flag", CASES)
def test_variable_configures_like_its_flag(flag):
    default = serve_config([], {})
    by_flag = serve_config(flags(flag), {})
    by_env = serve_config([], {variable_of(flag): CASES[flag][1]})
    assert changed_fields(by_flag, default), f"the sample of {flag} must change the configuration"
    if flag == "--admin-token":  # without --seed, the seed is then drawn at random each time
        by_env, by_flag = replace(by_env, seed=0), replace(by_flag, seed=0)
    assert by_env == by_flag


def test_all_variables_together_equal_all_flags():
    by_flags = serve_config([part for flag in CASES for part in flags(flag)], {})
    by_env = serve_config([], {variable_of(flag): env for flag, (_, env) in CASES.items()})
    assert by_env == by_flags
    assert len(changed_fields(by_env, serve_config([], {}))) == len(CASES)


@pytest.mark.parametrize(("variable", "env", "argv", "field", "expected"), [
    ("ONESHOT_MOCK_PORT", "9000", ["--port", "9001"], "port", 9001),
    ("ONESHOT_MOCK_LOG_FORMAT", "json", ["--log-format", "text"], "log_format", "text"),
    ("ONESHOT_MOCK_HEADER_TIMEOUT", "3", ["--header-timeout", "4"], "header_timeout", 4.0),
    ("ONESHOT_MOCK_DATA_DIR", "/env/data", ["--data-dir", "/flag/data"], "data_dir", Path("/flag/data")),
    ("ONESHOT_MOCK_NO_CONTROL_API", "0", ["--no-control-api"], "control_api", False),
    # Repeatable options: the flags replace the variable's values, they do not add to them.
    ("ONESHOT_MOCK_SCENARIO", f"a.yaml{os.pathsep}b.yaml", ["--scenario", "c.yaml"], "scenarios",
     (Path("c.yaml"),)),
    ("ONESHOT_MOCK_RA_WEBHOOK", "9999=http://a/ 9998=http://b/",
     ["--ra-webhook", "9997=http://c/", "--ra-webhook", "9996=http://d/"], "ra_webhooks",
     (("9997", "http://c/"), ("9996", "http://d/"))),
])
def test_a_flag_wins_over_its_variable(variable, env, argv, field, expected):
    assert getattr(serve_config(argv, {variable: env}), field) == expected


def test_variables_and_flags_combine():
    config = serve_config(["--seed", "5"], {"ONESHOT_MOCK_PORT": "9000", "ONESHOT_MOCK_SEED": "6"})
    assert (config.port, config.seed) == (9000, 5)


@pytest.mark.parametrize(("word", "control_api"), [
    ("1", False), ("true", False), ("YES", False), ("yes", False), ("0", True), ("false", True), ("No", True),
])
def test_switch_words(word, control_api):
    assert serve_config([], {"ONESHOT_MOCK_NO_CONTROL_API": word}).control_api is control_api


def test_empty_variable_counts_as_unset():
    """How the Docker image's persistence is turned off: ``-e ONESHOT_MOCK_DATA_DIR=``."""
    environ = {"ONESHOT_MOCK_DATA_DIR": "", "ONESHOT_MOCK_PORT": "  ", "ONESHOT_MOCK_SCENARIO": ""}
    assert serve_config([], environ) == serve_config([], {})


@pytest.mark.parametrize(("variable", "value", "complaint"), [
    ("ONESHOT_MOCK_PORT", "eighty", "expected a TCP port from 1 to 65535, got 'eighty'"),
    ("ONESHOT_MOCK_OTP_TTL", "5m", "invalid float value: '5m'"),
    ("ONESHOT_MOCK_HEADER_TIMEOUT", "0", "expected a positive number of seconds, got '0'"),
    ("ONESHOT_MOCK_LOG_FORMAT", "xml", "invalid choice: 'xml'"),
    ("ONESHOT_MOCK_RA_WEBHOOK", "9999=http://ok.example/ hook", "expected RA=URL"),
    ("ONESHOT_MOCK_NO_CONTROL_API", "maybe", "expected 1/0, true/false or yes/no, got 'maybe'"),
    ("ONESHOT_MOCK_CLOCK_START", "yesterday", "not an ISO 8601 time: 'yesterday'"),
])
def test_bad_value_names_the_variable(capsys, variable, value, complaint):
    with pytest.raises(SystemExit) as stop:
        serve_config([], {variable: value})
    assert stop.value.code == 2
    assert f"environment variable {variable}: {complaint}" in capsys.readouterr().err


def test_other_commands_ignore_the_variables():
    args = parse_args(["generate-pki", "pki"], {"ONESHOT_MOCK_PORT": "eighty"})
    assert args.command == "generate-pki"


def test_help_names_every_variable(capsys):
    with pytest.raises(SystemExit) as stop:
        parse_args(["serve", "--help"], {})
    assert stop.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for flag in CASES:
        assert f"[env {variable_of(flag)}]" in text
    assert "A flag wins over its variable" in text


def test_bad_variable_stops_the_process():
    result = subprocess.run([sys.executable, "-m", "mock_server", "serve"], capture_output=True, text=True,
                            env=environment_without_oneshot(ONESHOT_MOCK_PORT="eighty"), timeout=60)
    assert result.returncode == 2
    assert "environment variable ONESHOT_MOCK_PORT: expected a TCP port from 1 to 65535, got 'eighty'" in result.stderr


def call(method: str, url: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body or {}).encode(), method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


def test_server_configured_by_variables_alone(tmp_path):
    port = free_port()
    data_dir = tmp_path / "not" / "yet" / "there"
    env = environment_without_oneshot(
        ONESHOT_MOCK_PORT=str(port), ONESHOT_MOCK_SEED="7", ONESHOT_MOCK_OTP="654321",
        ONESHOT_MOCK_DATA_DIR=str(data_dir), ONESHOT_MOCK_WORKERS="1",
    )
    base = f"http://127.0.0.1:{port}"
    with serving([sys.executable, "-m", "mock_server", "serve"], env, base + "/api/v1/hello",
                 tmp_path / "server.log"):
        assert call("GET", base + "/_mock/health")["seed"] == 7
        pk = call("POST", base + "/api/v1/request", {"token": DEFAULT_TOKEN, **IDENTITY})["details"]
        call("POST", f"{base}/api/v1/otp/{pk}")
        [sms] = call("GET", f"{base}/_mock/sms?request={pk}")["messages"]
        assert sms["otp"] == "654321"
    assert (data_dir / "state.sqlite3").is_file()
