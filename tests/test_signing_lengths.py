"""Signing takes the same time whatever the signature's length: the asn1crypto re-encoding stall.

A PAdES CMS whose SignedData holds a multiple of 256 plus 128 content bytes (7,552 = 0x1D80 in the
reported case) has a DER header ending in the octet 0x80, which asn1crypto took for an indefinite
length: it re-encoded the whole freshly built CMS, exponentially, for 9-24 s.
"""

from __future__ import annotations

import asyncio
import io
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import core
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st
from pyhanko.pdf_utils.reader import PdfFileReader

from mock_server.pki.authority import KEY_TYPES, PkiMaterial, RevocationUrls, SignerIdentity, parsed
from mock_server.pki.signing import PdfToSign, SignJob, generate_key, sign_request
from tests.helpers import blank_pdf, validate

MATERIAL = PkiMaterial.bundled()
NOW = datetime.now(UTC).replace(microsecond=0)
# An RSA one-shot key: its PKCS#1 v1.5 signatures are deterministic, so is every length of the CMS.
RSA_KEY = parsed(MATERIAL).tsa_key.private_bytes(
    serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
)
JOB = SignJob(
    identity=SignerIdentity("Load", "Gen", "Bench", "IDC", "ES", "12345678Z", "l@example.com"),
    key_der=RSA_KEY, certificate_serial=0x5604390EE93B9, not_before=NOW - timedelta(minutes=1),
    not_after=NOW + timedelta(hours=1), signing_time=NOW,
    revocation_urls=RevocationUrls.under("http://127.0.0.1:8080"),
    pdfs=(PdfToSign("doc", blank_pdf()),), hashes=(), timestamp_serials=(6957433567292513735,),
)


def signed_data_length(job: SignJob) -> tuple[int, int]:
    """Content bytes of the SignedData in ``job``'s signed PDF, and the asn1crypto re-encodings it took."""
    counts: Counter[str] = Counter()
    with pytest.MonkeyPatch.context() as patch:
        for cls in (core.Sequence, core.SequenceOf):
            patch.setattr(cls, "_set_contents", _counted(cls._set_contents, counts))
        pdf = sign_request(MATERIAL, job).signed["doc"]
    signature = PdfFileReader(io.BytesIO(pdf), strict=False).embedded_signatures[0]
    return len(signature.signed_data.contents), counts.total()


def _counted(method, counts: Counter[str]):
    def counting(self, *args, **kwargs):
        counts[type(self).__name__] += 1
        return method(self, *args, **kwargs)

    return counting


def padded(pad: int) -> SignJob:
    """``JOB`` with a certificate ``pad`` bytes longer: its CRL URL grows by that many characters."""
    urls = JOB.revocation_urls
    return replace(JOB, revocation_urls=RevocationUrls(f"{urls.crl}?p={'x' * pad}", urls.ocsp))


def triggering_pad() -> int:
    """The padding that gives the SignedData a multiple of 256 plus 128 content bytes."""
    pad = 0
    for _ in range(8):  # lengths grow by one a byte of padding, bar a few DER length octets
        length, _ = signed_data_length(padded(pad))
        if length % 256 == 0x80:
            return pad
        pad += (0x80 - length) % 256
    raise AssertionError(f"no padding gives a SignedData length ending in 0x80 (last: {length:#x})")


def test_a_signed_data_length_ending_in_0x80_signs_as_fast_as_its_neighbours():
    pad = triggering_pad()
    length, reencodings = signed_data_length(padded(pad))
    # A long-form DER length whose last octet is 0x80: what asn1crypto took for an indefinite one.
    assert length % 256 == 0x80 and length > 255
    neighbour_length, neighbour = signed_data_length(padded(pad + 1))
    assert neighbour_length == length + 1
    # Measured 1.4 million re-encodings (8.5 s) for the trigger before the fix, a few hundred after.
    assert reencodings <= 2 * neighbour, (reencodings, neighbour)


def test_the_triggering_signature_validates():
    pdf = sign_request(MATERIAL, padded(triggering_pad())).signed["doc"]
    status = asyncio.run(validate(pdf))
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()


class Strings(core.SequenceOf):
    _child_spec = core.OctetString


def test_a_definite_length_ending_in_0x80_is_dumped_as_it_was_read():
    item = Strings([b"x" * 0x17C]).dump()
    assert item[:4] == b"\x30\x82\x01\x80"
    read = Strings.load(item)
    counts: Counter[str] = Counter()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(core.SequenceOf, "_set_contents", _counted(core.SequenceOf._set_contents, counts))
        assert read.dump() == item
    assert counts.total() == 0


def test_an_indefinite_length_is_still_re_encoded_as_der():
    assert Strings.load(b"\x30\x80\x04\x03abc\x00\x00").dump() == b"\x30\x05\x04\x03abc"


@settings(max_examples=30, deadline=None, derandomize=True)
@given(serial=st.integers(1, 2**63 - 1) | st.integers(1, 2**16), timestamp_serial=st.integers(1, 2**63 - 1),
       key_type=st.sampled_from(KEY_TYPES))
def test_certificate_serials_of_every_size_sign_valid_pdfs(serial, timestamp_serial, key_type):
    job = replace(JOB, key_der=generate_key(key_type), certificate_serial=serial,
                  timestamp_serials=(timestamp_serial,))
    pdf = sign_request(MATERIAL, job).signed["doc"]
    status = asyncio.run(validate(pdf))
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    assert status.signing_cert.serial_number == serial
