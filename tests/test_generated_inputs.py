"""Generated inputs over real HTTP: identities, sign options and hash files drawn by hypothesis.

Whatever is drawn, the sandbox answers in the family's envelope, never a 5xx; what it accepts at
create signs; a call it refuses changes nothing (no request made, no OTP spent, no document kept);
and its log holds no traceback.
"""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import DEFAULT_TOKEN, IDENTITY, blank_pdf, multipart_body, running_sandbox
from tests.test_fuzz_parsers import HASH_KEYS, SIGN_KEYS, json_values, keyed

GENERATED = settings(max_examples=100, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
BOUNDARY = "generated"
PDF = blank_pdf()


class Http:
    """Blocking JSON calls (hypothesis drives plain functions)."""

    def __init__(self, base: str) -> None:
        self.base = base

    def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
             content_type: str = "application/json") -> tuple[int, Any]:
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": content_type} if data is not None else {})
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                status, payload, kind = answer.status, answer.read(), answer.headers.get_content_type()
        except urllib.error.HTTPError as refused:
            status, payload, kind = refused.code, refused.read(), refused.headers.get_content_type()
        assert status < 500, (method, path, status, payload[:300])
        return status, json.loads(payload) if kind == "application/json" else payload

    def upload(self, pk: int, name: str, filename: str, content_type: str, data: bytes) -> tuple[int, Any]:
        body = multipart_body(BOUNDARY, [(name, filename, content_type, data)])
        return self.call("POST", f"/api/v1/document/{pk}", raw=body,
                         content_type=f"multipart/form-data; boundary={BOUNDARY}")

    def created(self, **fields: Any) -> int:
        status, body = self.call("POST", "/api/v1/request", {**IDENTITY, "token": DEFAULT_TOKEN, **fields})
        assert status == 201, body
        return body["details"]

    def otp(self, pk: int) -> str:
        assert self.call("POST", f"/api/v1/otp/{pk}")[0] == 200
        return self.call("GET", f"/_mock/sms?request={pk}")[1]["messages"][-1]["otp"]

    def requests(self) -> list[dict[str, Any]]:
        return self.call("GET", "/_mock/requests")[1]["requests"]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Iterator[Http]:
    directory = tmp_path_factory.mktemp("generated")
    with running_sandbox(directory) as server:
        yield Http(server.base)
    log = server.log.read_text()
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]


def _legacy_refusal(status: int, body: Any, *statuses: int) -> None:
    assert status in statuses, body
    assert set(body) == {"status", "details"} and body["status"].startswith(str(status)), body


# Identities: what create accepts must sign ----------------------------------------------------------------

letters = st.characters(codec="utf-8", categories=("L", "M", "Zs", "Pd"))
# Mostly names a person has (accents, any script, hyphens, spaces, up to the certificate's limit);
# sometimes too long, sometimes with a lone surrogate (not text at all).
names = st.one_of(st.text(letters, max_size=20), st.text(letters, max_size=20), st.text(letters, max_size=20),
                  st.text(letters, min_size=21, max_size=70),
                  st.text(st.characters(codec=None, categories=("L", "Cs")), min_size=1, max_size=10))
identities = st.fixed_dictionaries({
    "given_name": names,
    "surname_1": names,
    "serial_number": st.one_of(st.from_regex(r"[0-9]{8}[A-Z]|[XYZ][0-9]{7}[A-Z]|[A-Z0-9]{6,12}", fullmatch=True),
                               st.from_regex(r"[0-9]{8}[A-Z]", fullmatch=True),
                               st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), min_size=1, max_size=70)),
}, optional={"surname_2": names})


@GENERATED
@given(identities)
def test_an_identity_create_accepts_signs_and_one_it_refuses_leaves_nothing(sandbox, identity):
    before = len(sandbox.requests())
    status, body = sandbox.call("POST", "/api/v1/request", {**IDENTITY, "token": DEFAULT_TOKEN, **identity})
    if status != 201:
        _legacy_refusal(status, body, 400, 412)
        assert len(sandbox.requests()) == before
        return
    pk = body["details"]
    assert sandbox.upload(pk, "file", "doc.pdf", "application/pdf", PDF)[0] == 200
    status, signed = sandbox.call("POST", f"/api/v1/sign/{pk}", {"secret": sandbox.otp(pk)})
    assert status == 200, (identity, signed)
    status, contract = sandbox.call("GET", f"/api/v1/document/{pk}/contract")
    assert status == 200 and contract.startswith(b"%PDF"), identity


# Sign options: a refused sign spends nothing ----------------------------------------------------------------

@GENERATED
@given(keyed(SIGN_KEYS).filter(lambda body: "secret" not in body))
def test_sign_options_either_sign_or_are_refused_without_spending_the_otp(sandbox, options):
    pk = sandbox.created(given_name="Options")
    assert sandbox.upload(pk, "file", "doc.pdf", "application/pdf", PDF)[0] == 200
    secret = sandbox.otp(pk)
    status, body = sandbox.call("POST", f"/api/v1/sign/{pk}", {**options, "secret": secret})
    if status == 200:
        return
    _legacy_refusal(status, body, 400, 403, 404, 412)
    assert sandbox.call("GET", f"/api/v1/request/{pk}")[1]["details"]["status"] == "ENROLLREADY"
    status, body = sandbox.call("POST", f"/api/v1/sign/{pk}", {"secret": secret})
    assert status == 200, ("the refused sign spent the OTP or changed the request", options, body)


# Hash files: a refused upload keeps nothing -------------------------------------------------------------------

def _digest_fields(digest: bytes) -> dict[str, Any]:
    return {"messageDigest": base64.b64encode(digest).decode(), "digestAlgorithm": "SHA256withRSAEncryption"}


hash_files = (keyed(HASH_KEYS)
              | st.builds(lambda extra, data: {**_digest_fields(hashlib.sha256(data).digest()), **extra},
                          st.dictionaries(st.sampled_from(HASH_KEYS[2:]), json_values, max_size=3), st.binary()))


@GENERATED
@given(hash_files)
def test_a_hash_file_either_signs_or_is_refused_and_not_kept(sandbox, hash_file):
    pk = sandbox.created(given_name="Hashes")
    status, body = sandbox.upload(pk, "hashfile", "hash.json", "application/json", json.dumps(hash_file).encode())
    if status != 200:
        _legacy_refusal(status, body, 400, 415)
        assert sandbox.call("GET", f"/api/v1/documents/{pk}")[0] == 404  # no document kept
        return
    status, signed = sandbox.call("POST", f"/api/v1/sign/{pk}", {"secret": sandbox.otp(pk)})
    assert status == 200, (hash_file, signed)
