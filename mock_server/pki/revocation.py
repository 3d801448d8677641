"""Revocation data of the issuing CA: CRLs and OCSP responses (RFC 5280, RFC 6960)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from mock_server.pki.authority import ParsedPki, PkiMaterial, parsed

CRL_LIFETIME = timedelta(days=1)
OCSP_LIFETIME = timedelta(hours=1)


@dataclass(frozen=True)
class Revocation:
    """A revoked certificate of the issuing CA."""

    serial: int
    revoked_at: datetime


@dataclass(frozen=True)
class OcspQuery:
    """The one certificate an OCSP request asks about, and what the sandbox knows of it."""

    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int
    hash_algorithm: str
    nonce: bytes | None
    status: str  # "good", "revoked" or "unknown"
    revoked_at: datetime | None = None


def crl_der(material: PkiMaterial, revocations: tuple[Revocation, ...], now: datetime, number: int) -> bytes:
    """The issuing CA's CRL listing ``revocations``."""
    return build_crl(parsed(material), revocations, now, number).public_bytes(serialization.Encoding.DER)


def build_crl(
    pki: ParsedPki, revocations: tuple[Revocation, ...], now: datetime, number: int
) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(pki.issuing_cert.subject)
        .last_update(now)
        .next_update(now + CRL_LIFETIME)
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(pki.issuing_key.public_key()), critical=False
        )
    )
    for revocation in revocations:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(revocation.serial)
            .revocation_date(revocation.revoked_at)
            .build()
        )
    return builder.sign(pki.issuing_key, hashes.SHA256())


def issued_by_sandbox(material: PkiMaterial, request: ocsp.OCSPRequest) -> bool:
    """Whether an OCSP request names the sandbox's issuing CA."""
    issuer = parsed(material).issuing_cert
    name_hash = hashes.Hash(request.hash_algorithm)
    name_hash.update(issuer.subject.public_bytes())
    key_hash = hashes.Hash(request.hash_algorithm)
    key_hash.update(_subject_public_key(issuer))
    return (name_hash.finalize(), key_hash.finalize()) == (request.issuer_name_hash, request.issuer_key_hash)


def ocsp_response_der(material: PkiMaterial, query: OcspQuery, now: datetime) -> bytes:
    """A response signed by the issuing CA itself (RFC 6960 §4.2.2.2 allows that)."""
    pki = parsed(material)
    status = {
        "good": ocsp.OCSPCertStatus.GOOD,
        "revoked": ocsp.OCSPCertStatus.REVOKED,
        "unknown": ocsp.OCSPCertStatus.UNKNOWN,
    }[query.status]
    builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
        issuer_name_hash=query.issuer_name_hash,
        issuer_key_hash=query.issuer_key_hash,
        serial_number=query.serial,
        algorithm=getattr(hashes, query.hash_algorithm.upper())(),
        cert_status=status,
        this_update=now,
        next_update=now + OCSP_LIFETIME,
        revocation_time=query.revoked_at if status is ocsp.OCSPCertStatus.REVOKED else None,
        revocation_reason=None,
    )
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, pki.issuing_cert)
    if query.nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(query.nonce), critical=False)
    response = builder.sign(pki.issuing_key, hashes.SHA256())
    return response.public_bytes(serialization.Encoding.DER)


def malformed_ocsp_response() -> bytes:
    """The unsigned answer to an OCSP request that cannot be parsed."""
    response = ocsp.OCSPResponseBuilder.build_unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    return response.public_bytes(serialization.Encoding.DER)


def good_ocsp_response(pki: ParsedPki, cert: x509.Certificate, now: datetime) -> ocsp.OCSPResponse:
    """A "good" answer for a certificate just issued (embedded in PAdES-B-LT signatures)."""
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=cert, issuer=pki.issuing_cert, algorithm=hashes.SHA1(), cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=now, next_update=now + OCSP_LIFETIME, revocation_time=None, revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, pki.issuing_cert)
    )
    return builder.sign(pki.issuing_key, hashes.SHA256())


def _subject_public_key(cert: x509.Certificate) -> bytes:
    """What OCSP's issuerKeyHash hashes: for an RSA key, the DER RSAPublicKey."""
    return cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
