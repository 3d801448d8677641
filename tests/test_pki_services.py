"""The sandbox's PKI services: RFC 3161 TSA, CRL and OCSP of the issuing CA, revocation, PAdES-B-LT."""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import subprocess
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from asn1crypto import cms, tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID
from pyhanko.keys import load_cert_from_pemder
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.status import PdfSignatureStatus
from pyhanko_certvalidator import ValidationContext

from tests.helpers import ROOT_PEM, SandboxClient, blank_pdf, pdfsig, validate

TSA_POLICY = "2.25.238936245139870519212425622624399372145"
DATA = b"What the client time-stamps.\n"


class TimeStampResp(tsp.TimeStampResp):
    """RFC 3161's TimeStampResp: the token is OPTIONAL (asn1crypto requires it)."""

    _fields: ClassVar = [("status", tsp.PKIStatusInfo), ("time_stamp_token", cms.ContentInfo, {"optional": True})]


# Helpers ----------------------------------------------------------------------------------------------------------


async def ca_bundle(sandbox: SandboxClient) -> list[x509.Certificate]:
    """Root, issuing CA and TSA certificates as the sandbox publishes them."""
    answer = await sandbox.call("GET", "/_mock/pki/ca.pem")
    assert answer.status == 200, answer.body
    return x509.load_pem_x509_certificates(answer.raw)


async def issuing_ca(sandbox: SandboxClient) -> x509.Certificate:
    return (await ca_bundle(sandbox))[1]


async def signed_request(sandbox: SandboxClient, **sign_fields: Any) -> tuple[int, bytes]:
    """A request signed with one blank PDF: its pk and the signed PDF."""
    pk = await sandbox.create_request()
    uid = await sandbox.upload_pdf(pk, blank_pdf())
    answer = await sandbox.sign(pk, {"secret": await sandbox.otp(pk), **sign_fields})
    assert answer.status == 200, answer.body
    return pk, await sandbox.signed(pk, uid)


async def certificate_entry(sandbox: SandboxClient, pk: int) -> dict[str, str]:
    """``certificate_set[0]`` of GET /api/v1/request/{pk}."""
    answer = await sandbox.call("GET", f"/api/v1/request/{pk}")
    assert answer.status == 200, answer.body
    [entry] = answer.body["details"]["certificate_set"]
    return entry


async def issued_certificate(sandbox: SandboxClient, pk: int) -> x509.Certificate:
    return x509.load_der_x509_certificate(base64.b64decode((await certificate_entry(sandbox, pk))["data"]))


async def revoke(sandbox: SandboxClient, body: dict[str, Any]) -> dict[str, Any]:
    answer = await sandbox.call("POST", "/_mock/pki/revoke", json=body)
    assert answer.status == 200, answer.body
    return answer.body


async def fetch_crl(sandbox: SandboxClient) -> x509.CertificateRevocationList:
    answer = await sandbox.call("GET", "/_mock/pki/crl")
    assert answer.status == 200 and answer.content_type == "application/pkix-crl", answer.body
    return x509.load_der_x509_crl(answer.raw)


def crl_number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


async def ocsp_answer(sandbox: SandboxClient, body: bytes) -> ocsp.OCSPResponse:
    answer = await sandbox.call("POST", "/_mock/pki/ocsp", data=body,
                                headers={"Content-Type": "application/ocsp-request"})
    assert answer.status == 200 and answer.content_type == "application/ocsp-response", answer.body
    return ocsp.load_der_ocsp_response(answer.raw)


async def ask_ocsp(sandbox: SandboxClient, cert: x509.Certificate, issuer: x509.Certificate,
                   nonce: bytes | None = None) -> ocsp.OCSPResponse:
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return await ocsp_answer(sandbox, builder.build().public_bytes(serialization.Encoding.DER))


STRANGER = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "NOT ISSUED BY THE SANDBOX")])


def self_made_certificate(issuer_name: x509.Name, serial: int, subject: x509.Name = STRANGER) -> x509.Certificate:
    """A certificate naming ``issuer_name`` as issuer, with and signed by a key the sandbox never had."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def ts_query(algorithm: str = "sha256", *, nonce: int | None = None, cert_req: bool = True,
             policy: str | None = None) -> bytes:
    """A DER RFC 3161 TimeStampReq over :data:`DATA`."""
    fields: dict[str, Any] = {
        "version": "v1",
        "message_imprint": {
            "hash_algorithm": {"algorithm": algorithm},
            "hashed_message": hashlib.new(algorithm, DATA).digest(),
        },
        "cert_req": cert_req,
    }
    if nonce is not None:
        fields["nonce"] = nonce
    if policy is not None:
        fields["req_policy"] = policy
    return tsp.TimeStampReq(fields).dump()


async def post_tsa(sandbox: SandboxClient, body: bytes) -> TimeStampResp:
    answer = await sandbox.call("POST", "/_mock/tsa", data=body,
                                headers={"Content-Type": "application/timestamp-query"})
    assert answer.status == 200 and answer.content_type == "application/timestamp-reply", answer.body
    return TimeStampResp.load(answer.raw)


async def granted_token(sandbox: SandboxClient, body: bytes) -> cms.SignedData:
    reply = await post_tsa(sandbox, body)
    assert reply["status"]["status"].native == "granted", reply["status"].native
    return reply["time_stamp_token"]["content"]


def tst_info(signed_data: cms.SignedData) -> tsp.TSTInfo:
    return signed_data["encap_content_info"]["content"].parsed


def embedded_certificates(signed_data: cms.SignedData) -> list[bytes]:
    certificates = signed_data["certificates"]
    return [] if certificates.native is None else [c.chosen.dump() for c in certificates]


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def read_dss(pdf: bytes) -> DocumentSecurityStore:
    return DocumentSecurityStore.read_dss(PdfFileReader(io.BytesIO(pdf)))


def embedded_crls(pdf: bytes) -> list[x509.CertificateRevocationList]:
    """The CRLs a B-LT signature put in the PDF's document security store."""
    return [x509.load_der_x509_crl(ref.get_object().data) for ref in read_dss(pdf).crls]


def root_anchor():
    return load_cert_from_pemder(str(ROOT_PEM))


async def validate_offline(pdf: bytes, context: ValidationContext) -> PdfSignatureStatus:
    signature = PdfFileReader(io.BytesIO(pdf)).embedded_signatures[-1]
    return await async_validate_pdf_signature(signature, context)


def offline_dss_context(pdf: bytes) -> ValidationContext:
    """Only the root and what the PDF's DSS holds: no fetching, revocation info required."""
    return read_dss(pdf).as_validation_context(
        {"trust_roots": [root_anchor()], "allow_fetching": False, "revocation_mode": "hard-fail"}
    )


def need_openssl() -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")


# Time-stamping authority ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("digest", ["sha256", "sha384", "sha512"])
async def test_tsa_reply_verifies_with_openssl(sandbox, tmp_path, digest):
    need_openssl()
    data, query, reply, ca = (tmp_path / name for name in ("data.txt", "q.tsq", "r.tsr", "ca.pem"))
    data.write_bytes(DATA)
    ca.write_bytes((await sandbox.call("GET", "/_mock/pki/ca.pem")).raw)
    subprocess.run(["openssl", "ts", "-query", "-data", str(data), f"-{digest}", "-cert", "-out", str(query)],
                   check=True, capture_output=True)
    answer = await sandbox.call("POST", "/_mock/tsa", data=query.read_bytes(),
                                headers={"Content-Type": "application/timestamp-query"})
    assert answer.status == 200 and answer.content_type == "application/timestamp-reply", answer.body
    reply.write_bytes(answer.raw)
    verified = run_text(["openssl", "ts", "-verify", "-data", str(data), "-in", str(reply), "-CAfile", str(ca)])
    assert verified.returncode == 0, verified.stdout
    assert "Verification: OK" in verified.stdout
    text = run_text(["openssl", "ts", "-reply", "-in", str(reply), "-text"]).stdout
    assert f"Hash Algorithm: {digest}" in text, text


def run_text(command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``command``, stdout and stderr merged into one text."""
    return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


async def test_tsa_echoes_nonce(sandbox):
    nonce = 0x1F2E3D4C5B6A79880123456789
    token = await granted_token(sandbox, ts_query(nonce=nonce))
    assert tst_info(token)["nonce"].native == nonce


async def test_tsa_omits_certificates_without_cert_req(sandbox):
    token = await granted_token(sandbox, ts_query(cert_req=False))
    assert embedded_certificates(token) == []


async def test_tsa_includes_its_certificate_on_cert_req(sandbox):
    tsa_cert = (await ca_bundle(sandbox))[2]
    token = await granted_token(sandbox, ts_query(cert_req=True))
    assert der(tsa_cert) in embedded_certificates(token)


async def test_tsa_certificate_is_critical_timestamping_under_root(sandbox):
    token = await granted_token(sandbox, ts_query(cert_req=True))
    signer_id = token["signer_infos"][0]["sid"].chosen
    [tsa_cert] = [
        cert for cert in map(x509.load_der_x509_certificate, embedded_certificates(token))
        if cert.serial_number == signer_id["serial_number"].native
    ]
    eku = tsa_cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    tsa_cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ROOT_PEM.read_bytes()))


async def test_tsa_policy_is_the_sandbox_oid(sandbox):
    token = await granted_token(sandbox, ts_query())
    assert tst_info(token)["policy"].dotted == TSA_POLICY


async def test_tsa_accepts_its_own_policy_when_requested(sandbox):
    token = await granted_token(sandbox, ts_query(policy=TSA_POLICY))
    assert tst_info(token)["policy"].dotted == TSA_POLICY


async def test_tsa_serial_numbers_are_unique(sandbox):
    first = tst_info(await granted_token(sandbox, ts_query()))
    second = tst_info(await granted_token(sandbox, ts_query()))
    assert first["serial_number"].native != second["serial_number"].native


async def test_tsa_gen_time_is_now(sandbox):
    token = await granted_token(sandbox, ts_query())
    gen_time = tst_info(token)["gen_time"].native
    assert abs(gen_time - datetime.now(UTC)) < timedelta(minutes=1), gen_time


async def test_tsa_imprint_is_the_requested_one(sandbox):
    token = await granted_token(sandbox, ts_query("sha384"))
    imprint = tst_info(token)["message_imprint"]
    assert imprint["hash_algorithm"]["algorithm"].native == "sha384"
    assert imprint["hashed_message"].native == hashlib.sha384(DATA).digest()


@pytest.mark.parametrize(
    ("body", "fail_info"),
    [
        (b"this is not a TimeStampReq", "bad_data_format"),
        (ts_query("md5"), "bad_alg"),
        (ts_query(policy="1.2.3.4.5"), "unaccepted_policy"),
    ],
    ids=["garbage", "md5", "foreign-policy"],
)
async def test_tsa_rejections(sandbox, body, fail_info):
    reply = await post_tsa(sandbox, body)
    assert reply["status"]["status"].native == "rejection"
    assert reply["status"]["fail_info"].native == {fail_info}
    assert reply["time_stamp_token"].native is None


# CRL --------------------------------------------------------------------------------------------------------------


async def test_crl_is_signed_by_issuing_ca_and_empty_at_start(sandbox):
    issuing = await issuing_ca(sandbox)
    crl = await fetch_crl(sandbox)
    assert crl.issuer == issuing.subject
    assert crl.is_signature_valid(issuing.public_key())
    assert len(crl) == 0


async def test_crl_lists_revoked_serial_with_higher_crl_number(sandbox):
    pk, _ = await signed_request(sandbox)
    serial = (await issued_certificate(sandbox, pk)).serial_number
    before = await fetch_crl(sandbox)
    assert before.get_revoked_certificate_by_serial_number(serial) is None
    await revoke(sandbox, {"request": pk})
    after = await fetch_crl(sandbox)
    assert [entry.serial_number for entry in after] == [serial]
    assert crl_number(after) > crl_number(before)
    assert after.is_signature_valid((await issuing_ca(sandbox)).public_key())


async def test_crls_follow_revocations_certificates_issued_revoked_and_reset(sandbox):
    revoked_pk, _ = await signed_request(sandbox)
    revoked_serial = (await issued_certificate(sandbox, revoked_pk)).serial_number
    await revoke(sandbox, {"request": revoked_pk})
    _, pdf = await signed_request(sandbox)
    [embedded] = embedded_crls(pdf)
    assert [entry.serial_number for entry in embedded] == [revoked_serial]

    pk = await sandbox.create_request(given_name="Revoked")  # issued revoked, on purpose
    await sandbox.upload_pdf(pk, blank_pdf())
    assert (await sandbox.sign(pk, {"secret": await sandbox.otp(pk)})).status == 200
    born_revoked = (await issued_certificate(sandbox, pk)).serial_number
    assert {entry.serial_number for entry in await fetch_crl(sandbox)} == {revoked_serial, born_revoked}

    assert (await sandbox.call("POST", "/_mock/reset")).status == 200
    assert len(await fetch_crl(sandbox)) == 0
    _, pdf = await signed_request(sandbox)
    [embedded] = embedded_crls(pdf)
    assert len(embedded) == 0


# Revocation pointers in issued certificates -----------------------------------------------------------------------


def revocation_urls(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    crls = [name.value for point in points for name in point.full_name]
    access = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    responders = [d.access_location.value for d in access if d.access_method == AuthorityInformationAccessOID.OCSP]
    return crls, responders


async def test_certificate_points_at_public_url(make_client):
    sandbox = await make_client(public_url="https://sandbox.example.test")
    _, pdf = await signed_request(sandbox)
    signer = (await validate(pdf)).signing_cert
    cert = x509.load_der_x509_certificate(signer.dump())
    assert revocation_urls(cert) == (
        ["https://sandbox.example.test/_mock/pki/crl"],
        ["https://sandbox.example.test/_mock/pki/ocsp"],
    )


async def test_certificate_points_at_bound_address_by_default(sandbox):
    pk, _ = await signed_request(sandbox)
    base = f"http://127.0.0.1:{sandbox.http.port}"
    assert revocation_urls(await issued_certificate(sandbox, pk)) == (
        [f"{base}/_mock/pki/crl"],
        [f"{base}/_mock/pki/ocsp"],
    )


# OCSP -------------------------------------------------------------------------------------------------------------


async def test_ocsp_good_for_issued_certificate_signed_by_issuing_ca(sandbox):
    pk, _ = await signed_request(sandbox)
    issuing = await issuing_ca(sandbox)
    cert = await issued_certificate(sandbox, pk)
    response = await ask_ocsp(sandbox, cert, issuing)
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.serial_number == cert.serial_number
    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
    issuing.public_key().verify(
        response.signature, response.tbs_response_bytes, PKCS1v15(), response.signature_hash_algorithm
    )


async def test_ocsp_echoes_nonce(sandbox):
    pk, _ = await signed_request(sandbox)
    issuing = await issuing_ca(sandbox)
    nonce = b"oneshot-mock-nonce-0042"
    response = await ask_ocsp(sandbox, await issued_certificate(sandbox, pk), issuing, nonce)
    assert response.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce


async def test_ocsp_revoked_after_revocation(sandbox):
    pk, _ = await signed_request(sandbox)
    issuing = await issuing_ca(sandbox)
    cert = await issued_certificate(sandbox, pk)
    await revoke(sandbox, {"request": pk})
    response = await ask_ocsp(sandbox, cert, issuing)
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert response.revocation_time_utc is not None
    issuing.public_key().verify(
        response.signature, response.tbs_response_bytes, PKCS1v15(), response.signature_hash_algorithm
    )


async def test_ocsp_unknown_for_tsa_certificate(sandbox):
    root, _, tsa_cert = await ca_bundle(sandbox)
    response = await ask_ocsp(sandbox, tsa_cert, root)
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status == ocsp.OCSPCertStatus.UNKNOWN


async def test_ocsp_unknown_for_certificate_never_issued(sandbox):
    issuing = await issuing_ca(sandbox)
    stranger = self_made_certificate(issuing.subject, serial=0x5A5A5A5A5A5A5A5A)
    response = await ask_ocsp(sandbox, stranger, issuing)
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status == ocsp.OCSPCertStatus.UNKNOWN


async def test_ocsp_unknown_for_issued_serial_under_impostor_ca(sandbox):
    pk, _ = await signed_request(sandbox)
    issuing = await issuing_ca(sandbox)
    cert = await issued_certificate(sandbox, pk)
    # Same name as the issuing CA, another key: the request's issuerKeyHash is not the sandbox's.
    impostor_ca = self_made_certificate(issuing.subject, serial=2, subject=issuing.subject)
    response = await ask_ocsp(sandbox, cert, impostor_ca)
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status == ocsp.OCSPCertStatus.UNKNOWN


async def test_ocsp_garbage_is_malformed_request(sandbox):
    response = await ocsp_answer(sandbox, b"this is not an OCSPRequest")
    assert response.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


async def ocsp_by_get(sandbox: SandboxClient, der: bytes, *, quote: bool = True) -> ocsp.OCSPResponse:
    """RFC 6960 appendix A.1: the request's base64 in the path, URL-encoded (as NSS sends it) or not."""
    text = base64.b64encode(der).decode()
    answer = await sandbox.call("GET", "/_mock/pki/ocsp/" + (urllib.parse.quote(text, safe="") if quote else text))
    assert answer.status == 200 and answer.content_type == "application/ocsp-response", answer.body
    return ocsp.load_der_ocsp_response(answer.raw)


async def test_ocsp_get_form_answers_as_the_post_form(sandbox):
    pk, _ = await signed_request(sandbox)
    issuing = await issuing_ca(sandbox)
    query = ocsp.OCSPRequestBuilder().add_certificate(await issued_certificate(sandbox, pk), issuing, hashes.SHA1())
    der = query.build().public_bytes(serialization.Encoding.DER)
    for quote in (True, False):
        assert (await ocsp_by_get(sandbox, der, quote=quote)).certificate_status == ocsp.OCSPCertStatus.GOOD
    await revoke(sandbox, {"request": pk})
    response = await ocsp_by_get(sandbox, der)
    assert response.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert response.certificate_status == (await ocsp_answer(sandbox, der)).certificate_status
    garbage = await sandbox.call("GET", "/_mock/pki/ocsp/not*base64")
    assert ocsp.load_der_ocsp_response(garbage.raw).response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


async def test_revoked_certificate_agrees_in_crl_ocsp_and_api(sandbox):
    pk, _ = await signed_request(sandbox)
    issuing = await issuing_ca(sandbox)
    cert = await issued_certificate(sandbox, pk)
    revoked_at = datetime.fromisoformat((await revoke(sandbox, {"request": pk}))["revoked_at"])
    entry = (await fetch_crl(sandbox)).get_revoked_certificate_by_serial_number(cert.serial_number)
    response = await ask_ocsp(sandbox, cert, issuing)
    assert entry is not None and response.certificate_status == ocsp.OCSPCertStatus.REVOKED
    # DER times have whole seconds.
    assert entry.revocation_date_utc == response.revocation_time_utc == revoked_at.replace(microsecond=0)


# Revocation control API -------------------------------------------------------------------------------------------


async def test_revoke_by_request_answers_certificate_status(sandbox):
    pk, _ = await signed_request(sandbox)
    serial = (await certificate_entry(sandbox, pk))["serial_number"]
    answer = await revoke(sandbox, {"request": pk})
    assert set(answer) == {"serial", "request", "issued_at", "revoked_at"}
    assert answer["serial"] == serial and answer["request"] == pk
    issued_at = datetime.fromisoformat(answer["issued_at"])
    revoked_at = datetime.fromisoformat(answer["revoked_at"])
    assert issued_at <= revoked_at
    assert abs(revoked_at - datetime.now(UTC)) < timedelta(minutes=1)


async def test_revoke_by_hex_serial_is_idempotent(sandbox):
    pk, _ = await signed_request(sandbox)
    serial = (await certificate_entry(sandbox, pk))["serial_number"]
    first = await revoke(sandbox, {"serial": serial})
    second = await revoke(sandbox, {"serial": serial})
    assert first["request"] == pk and first["revoked_at"] is not None
    assert second == first


async def test_revoke_by_integer_serial(sandbox):
    pk, _ = await signed_request(sandbox)
    serial = (await issued_certificate(sandbox, pk)).serial_number
    answer = await revoke(sandbox, {"serial": serial})
    assert answer["serial"] == format(serial, "x") and answer["request"] == pk


@pytest.mark.parametrize("body", [{"serial": "abcdef0123"}, {"serial": 12345}, {"request": 999999}],
                         ids=["hex-serial", "int-serial", "request"])
async def test_revoke_unknown_is_404(sandbox, body):
    await signed_request(sandbox)
    answer = await sandbox.call("POST", "/_mock/pki/revoke", json=body)
    assert answer.status == 404 and answer.content_type == "application/json"
    assert isinstance(answer.body["error"], str) and answer.body["error"]


async def test_revoke_empty_body_is_400(sandbox):
    answer = await sandbox.call("POST", "/_mock/pki/revoke", data=b"")
    assert answer.status == 400 and answer.content_type == "application/json"
    assert isinstance(answer.body["error"], str) and answer.body["error"]


async def test_certificate_listing_shows_revocation(sandbox):
    kept, _ = await signed_request(sandbox)
    revoked, _ = await signed_request(sandbox)
    await revoke(sandbox, {"request": revoked})
    listing = await sandbox.call("GET", "/_mock/pki/certificates")
    assert listing.status == 200
    by_request = {c["request"]: c for c in listing.body["certificates"]}
    assert set(by_request) == {kept, revoked}
    assert by_request[kept]["revoked_at"] is None
    assert by_request[revoked]["revoked_at"] is not None
    assert by_request[kept]["serial"] == (await certificate_entry(sandbox, kept))["serial_number"]


async def test_request_detail_shows_revoked_certificate(sandbox):
    pk, _ = await signed_request(sandbox)
    assert (await certificate_entry(sandbox, pk))["valid"] == "VALID"
    await revoke(sandbox, {"request": pk})
    assert (await certificate_entry(sandbox, pk))["valid"] == "REVOKED"


# End to end with poppler ------------------------------------------------------------------------------------------


async def test_pdfsig_sees_revocation(sandbox, nss_db, tmp_path: Path):
    pk, pdf = await signed_request(sandbox)
    before = await pdfsig(pdf, nss_db, tmp_path)
    assert "Signature is Valid" in before and "Certificate is Trusted" in before, before
    await revoke(sandbox, {"request": pk})
    after = await pdfsig(pdf, nss_db, tmp_path)
    assert "Certificate has been Revoked." in after, after
    assert "Certificate is Trusted" not in after, after


# PAdES-B-LT -------------------------------------------------------------------------------------------------------


async def test_dss_holds_revocation_data_and_chains(sandbox):
    _, issuing, tsa_cert = await ca_bundle(sandbox)
    _, pdf = await signed_request(sandbox)
    dss = read_dss(pdf)
    assert len(dss.ocsps) >= 1 and len(dss.crls) >= 1
    certificates = {cert.dump() for cert in dss.load_certs()}
    assert der(issuing) in certificates
    assert der(tsa_cert) in certificates


async def test_embedded_ocsp_is_good_for_signer(sandbox):
    issuing = await issuing_ca(sandbox)
    pk, pdf = await signed_request(sandbox)
    serial = (await issued_certificate(sandbox, pk)).serial_number
    responses = [ocsp.load_der_ocsp_response(ref.get_object().data) for ref in read_dss(pdf).ocsps]
    [response] = [r for r in responses if r.serial_number == serial]
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status == ocsp.OCSPCertStatus.GOOD
    issuing.public_key().verify(
        response.signature, response.tbs_response_bytes, PKCS1v15(), response.signature_hash_algorithm
    )


async def test_embedded_crl_is_signed_by_issuing_ca(sandbox):
    issuing = await issuing_ca(sandbox)
    _, pdf = await signed_request(sandbox)
    crls = embedded_crls(pdf)
    assert any(crl.issuer == issuing.subject and crl.is_signature_valid(issuing.public_key()) for crl in crls)


async def test_b_lt_validates_offline_with_hard_fail(sandbox):
    _, pdf = await signed_request(sandbox)
    status = await validate_offline(pdf, offline_dss_context(pdf))
    assert status.bottom_line and status.trusted, status.pretty_print_details()


async def test_b_t_without_dss_does_not_validate_offline(sandbox):
    _, pdf = await signed_request(sandbox, disable_ltv=True)
    context = ValidationContext(trust_roots=[root_anchor()], allow_fetching=False, revocation_mode="hard-fail",
                                crls=[], ocsps=[])
    status = await validate_offline(pdf, context)
    assert status.intact and status.valid, status.pretty_print_details()
    assert not status.trusted, status.pretty_print_details()


async def test_disable_ltv_has_no_dss_but_a_timestamp(sandbox):
    _, pdf = await signed_request(sandbox, disable_ltv=True)
    assert "/DSS" not in PdfFileReader(io.BytesIO(pdf)).root
    status = await validate(pdf)
    assert status.bottom_line, status.pretty_print_details()
    assert status.timestamp_validity is not None
    assert status.timestamp_validity.intact and status.timestamp_validity.valid
    assert status.timestamp_validity.trusted


async def test_default_signature_has_dss_in_root(sandbox):
    _, pdf = await signed_request(sandbox, disable_ltv=False)
    assert "/DSS" in PdfFileReader(io.BytesIO(pdf)).root


async def test_signed_contract_is_b_lt(sandbox):
    pk, _ = await signed_request(sandbox)
    answer = await sandbox.call("GET", f"/api/v1/document/{pk}/contract")
    assert answer.status == 200 and answer.content_type == "application/pdf"
    contract = answer.raw
    dss = read_dss(contract)
    assert len(dss.ocsps) >= 1 and len(dss.crls) >= 1
    status = await validate_offline(contract, offline_dss_context(contract))
    assert status.bottom_line and status.trusted, status.pretty_print_details()
