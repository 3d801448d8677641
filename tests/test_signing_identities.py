"""Whoever the signer is, the signature validates: varied identities through the real signing path.

A sandbox process signs over HTTP, as a client app drives it; pyHanko's validator checks each PDF.
Certificate serial numbers vary with every request (the sandbox draws them from its seed).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mock_server.bench.inputs import documents, identity_common_name
from mock_server.pki.authority import COMMON_NAME_MAX_BYTES, common_name
from mock_server.testing.client import ControlClient
from tests.example_client import call, create, request_otp, sign, upload
from tests.helpers import running_sandbox, validate

# Longer common names are create-time errors, not signing cases.
COMMON_NAME_MAX = COMMON_NAME_MAX_BYTES
# One page and several, with and without text, as the benchmark's flows upload.
DOCUMENTS = documents()
LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZáéíóúàèìòùäëïöüâêîôûñçÁÉÍÓÚÑÇÄÖÜłŁśŚżŻźćńęąøåæß"
name_part = st.text(LETTERS, min_size=1, max_size=20)
# Compound names as people have them: "María José", "Jean-Luc", "O'Neill".
name = st.lists(name_part, min_size=1, max_size=3).flatmap(
    lambda parts: st.sampled_from([" ", "-", "'"]).map(lambda joiner: joiner.join(parts)))
SIGNING = settings(max_examples=40, deadline=None, derandomize=True,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@st.composite
def identities(draw: st.DrawFn) -> dict[str, str]:
    """The create-request fields of a signer, within the lengths a certificate can carry."""
    parts = [draw(name), draw(name), draw(st.just("") | name)]
    while len(common_name(*parts).encode()) > COMMON_NAME_MAX:
        # Cut the longest name back rather than reject the draw: long names are what the test is after.
        longest = max(range(3), key=lambda i: len(parts[i]))
        parts[longest] = parts[longest][:-1].rstrip(" -'")
    given_name, surname_1, surname_2 = parts
    fields = {
        "given_name": given_name,
        "surname_1": surname_1,
        "surname_2": surname_2,  # blank: none (the example client's default has one)
        "id_document_type": draw(st.sampled_from(["IDC", "PAS", "PNO", "TIN", "CI", "CE"])),
        "id_document_country": draw(st.sampled_from(["ES", "PT", "PL", "IT", "FR", "DE", "MX", "AR"])),
        "serial_number": draw(st.text("0123456789ABCDEFGHJKLMNPQRSTVWXYZ", min_size=1, max_size=32)),
        "email": draw(st.from_regex(r"\A[a-z][a-z0-9._-]{0,40}@[a-z]{1,20}\.(es|com|pl|pt)\Z")),
        "mobile_phone_number": "+346" + str(draw(st.integers(10**7, 10**8 - 1))),
    }
    return fields


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[str]:
    with running_sandbox(Path(tmp_path_factory.mktemp("identities")), "--seed", "0", workers=2) as sandbox:
        yield sandbox.base


# The identity of the reported 9-24 s stall, and the longest names a certificate takes.
@example(signer={"given_name": "Load", "surname_1": "Gen", "surname_2": "Bench", "id_document_type": "IDC",
          "id_document_country": "ES", "serial_number": "12345678Z", "email": "l@example.com",
          "mobile_phone_number": "+34600000999"}, document=DOCUMENTS[1])
@example(signer={"given_name": "Ñ" * 15, "surname_1": "Ç" * 8, "surname_2": "Ü" * 8, "id_document_type": "PAS",
          "id_document_country": "PT", "serial_number": "9" * 32, "email": "x" * 41 + "@example.com",
          "mobile_phone_number": "+34699999999"}, document=DOCUMENTS[-1])
@SIGNING
@given(signer=identities(), document=st.sampled_from(DOCUMENTS))
def test_every_signer_gets_a_valid_signature(served, signer, document):
    assert len(identity_common_name(signer).encode()) <= COMMON_NAME_MAX
    api = served + "/api/v1"
    pk = create(api, **signer, profile="PFnubeNC")
    uid = upload(api, pk, document.pdf)
    request_otp(api, pk)
    status, body = sign(api, pk, ControlClient(served).latest_otp(pk))
    assert status == 200, body
    status, pdf = call("GET", f"{api}/document/{pk}/signed/{uid}")
    assert status == 200, pdf
    validation = asyncio.run(validate(pdf))
    assert validation.intact and validation.valid and validation.trusted, validation.pretty_print_details()
    assert validation.signing_cert.subject.native["common_name"] == identity_common_name(signer)
    status, body = call("DELETE", f"{api}/documents/{pk}")
    assert status == 200, json.loads(body)
