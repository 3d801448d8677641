"""Fuzzing the parsers with hypothesis: any input ends in a result or a typed vendor error, never a crash."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mock_server.domain.errors import VendorError
from mock_server.domain.evidences import review_evidences
from mock_server.domain.hashfile import parse_hash_file
from mock_server.domain.scenarios import ScenarioError, parse_scenario
from mock_server.domain.signparams import parse_sign_body
from mock_server.domain.validation import RequestDefaults, validate_create_request

FUZZ = settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=12), inner, max_size=4), max_leaves=20)


def keyed(keys: list[str]) -> st.SearchStrategy[dict]:
    """Objects mixing the keys a parser knows with random ones, holding any JSON values."""
    return st.dictionaries(st.sampled_from(keys) | st.text(max_size=10), json_values, max_size=len(keys) + 2)


SIGN_KEYS = ["secret", "ext_unlock_type", "ext_unlock_value", "options", "signature_format", "use_signature_text",
             "metadata", "countersignature", "disable_ltv"]
HASH_KEYS = ["messageDigest", "digestAlgorithm", "addAuthAttribute", "addSigningTime", "otherAuthAttributes"]
CREATE_KEYS = ["given_name", "surname_1", "surname_2", "serial_number", "email", "mobile_phone_number", "env",
               "id_document_type", "id_document_country", "profile", "registration_authority", "callback",
               "useasync", "communication_language"]


@FUZZ
@given(keyed(SIGN_KEYS))
def test_sign_body(body):
    try:
        parse_sign_body(body)
    except VendorError as error:
        assert error.http_status == 400


@FUZZ
@given(st.dictionaries(st.sampled_from(CREATE_KEYS), st.text(max_size=30), max_size=len(CREATE_KEYS)))
def test_create_request_fields(fields):
    try:
        validate_create_request(fields, RequestDefaults("sandbox", "PFnubeNC", "9999"))
    except VendorError as error:
        assert error.http_status in (400, 412)


@FUZZ
@given(keyed(HASH_KEYS).map(lambda d: json.dumps(d).encode()) | st.binary(max_size=200))
def test_hash_file(data):
    try:
        parse_hash_file("h.json", data)
    except VendorError as error:
        assert error.http_status == 400 and error.details.startswith("Invalid hashfile h.json: ")


@FUZZ
@given(keyed(["acceptance", "videoid_data", "ocr_data", "security_checks", "similarity_level"]))
def test_evidences(body):
    review = review_evidences(body)
    assert review.complete or review.missing or review.invalid


@FUZZ
@given(keyed(["name", "description", "seed", "activation", "rules"]).map(json.dumps) | st.text(max_size=200))
def test_scenario_document(text):
    try:
        parse_scenario(text, "fuzz")
    except ScenarioError as error:
        assert str(error).startswith("fuzz: ")


BOUNDARY = "fuzzboundary"
MALFORMED_MULTIPART = [
    b"--fuzzboundary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.pdf\"\r\n\r\n%PDF-1.7 trunc",
    b"--fuzzboundary\r\n\r\nno headers at all\r\n--fuzzboundary--\r\n",
    b"--fuzzboundary\r\nContent-Disposition: form-data\r\n\r\nno name\r\n--fuzzboundary--\r\n",
    b"garbage before any boundary",
    b"--fuzzboundary\r\nContent-Type: multipart/mixed; boundary=inner\r\n"
    b"Content-Disposition: form-data; name=\"x\"\r\n\r\n--inner\r\n\r\nnested\r\n--inner--\r\n--fuzzboundary--\r\n",
    b"--fuzzboundary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\xff\xfe.pdf\"\r\n\r\n"
    b"\x00\x01\x02\r\n--fuzzboundary--\r\n",
    b"",
]


@pytest.mark.parametrize("body", MALFORMED_MULTIPART)
@pytest.mark.parametrize("path", ["/api/v1/document/{pk}", "/api/v1/request", "/api/v1/image",
                                  "/oneshot/api/v1/document/{pk}"])
async def test_malformed_multipart_gets_an_envelope(sandbox, body, path):
    pk = await sandbox.create_request()
    answer = await sandbox.call("POST", path.format(pk=pk), data=body,
                                headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    assert 400 <= answer.status < 500, (answer.status, answer.body)
    assert answer.content_type == "application/json"
