"""Seed files: checked against their JSON Schema and between entries at start, one line naming the
file, entry and field; VideoID requests and metadata seeded under fixed ids, again after a reset."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from mock_server.domain.seedfile import SCHEMA
from tests.helpers import free_port, oneshot_mock

LINK = "0123456789abcdef0123456789abcdef"
METADATA_UID = "00000000000000000000000000000042"
SEED = {
    "metadata": [{"uid": METADATA_UID, "oid": "1.3.6.1.4.1.99999.1", "metadata": "aGVsbG8="}],
    "videoids": [{"pk": 515151, "videoid_pk": 777, "link": LINK, "email": "video@example.com",
                  "mobile_phone_number": "+34600000777", "registration_authority": 9999}],
}


def test_the_schema_is_a_valid_json_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


async def test_videoid_requests_and_metadata_are_seeded_under_fixed_ids(make_client, tmp_path):
    path = tmp_path / "seed.yaml"
    path.write_text(yaml.safe_dump(SEED))
    sandbox = await make_client(seed_file=path)
    for _ in range(2):  # at start, and again after a reset
        detail = (await sandbox.call("GET", "/api/v1/request/515151")).body["details"]
        assert detail["status"] == "VIDEOPENDING" and detail["email"] == "video@example.com", detail
        page = await sandbox.call("GET", f"/videoid/{LINK}")
        assert page.status == 200 and "515151" in page.raw.decode()
        newer = (await sandbox.call("GET", "/oneshot/api/v1/request/515151")).body
        assert newer["details"]["status"] == "VIDEOPENDING", newer
        metadata = (await sandbox.call("GET", f"/api/v1/metadata/{METADATA_UID}")).body["details"]
        assert "aGVsbG8=" in json.dumps(metadata), metadata
        assert (await sandbox.call("POST", "/_mock/videoid/515151/complete")).status == 200
        assert (await sandbox.call("GET", "/api/v1/request/515151")).body["details"]["status"] == "VIDEOREVIEW"
        await sandbox.call("POST", "/_mock/reset")


def _refused(tmp_path: Path, content: str) -> str:
    path = tmp_path / "seed.yaml"
    path.write_text(content)
    done = oneshot_mock("serve", "--port", str(free_port()), "--seed-file", str(path))
    assert done.returncode == 2, done
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert str(path) in done.stderr, "the file is named"
    return done.stderr


@pytest.mark.parametrize(("content", "shown"), [
    ("colour: blue\n", "top level: Additional properties are not allowed ('colour' was unexpected) "
                       "(the sections are settings, raos, tokens, images, metadata, requests, videoids)"),
    ("requests:\n  - {pk: 5, given_name: A, colour: blue}\n",
     "requests[0]: Unevaluated properties are not allowed ('colour' is not a field of this entry)"),
    ("tokens:\n  - {uid: 00000000000000000000000000000001, username: '9001800'}\n",
     "tokens[0].uid: 1 is a number: quote it"),
    ("raos:\n  - {username: '5550001', password: secret, pin: 0123}\n", "raos[0].pin: 83 is a number: quote it"),
    ("tokens:\n  - {uid: 'abc', username: '5550002'}\n",
     "tokens[0].username: no RAO account '5550002' (list it under raos, or name a sandbox account)"),
    ("requests:\n  - {pk: 5, token: 'abc'}\n", "requests[0].token: no token 'abc'"),
    ("requests:\n  - {pk: 5}\nvideoids:\n  - {pk: 5, email: a@example.com, mobile_phone_number: '+34600000001'}\n",
     "pk 5 is given to more than one entry"),
    ("videoids:\n  - {pk: 6, email: a@example.com, mobile_phone_number: '+34600000001', link: nope}\n",
     "videoids[0].link: 'nope' does not match"),
    ("requests:\n  - {pk: 7, given_name: A, surname_1: B, serial_number: 1X, email: not-an-email, "
     "mobile_phone_number: '+34600000001'}\n",
     "requests[0] (pk 7): Enter a valid email address (create_request.400.invalid_email)"),
], ids=["unknown-section", "unknown-field", "unquoted-id", "octal-pin", "token-without-rao", "unknown-token",
        "repeated-pk", "bad-link", "invalid-email"])
def test_a_seed_file_that_cannot_be_applied_is_one_line_naming_entry_and_field(tmp_path, content, shown):
    assert shown in _refused(tmp_path, content)
