"""Signing jobs: what the event loop ships to a worker process, and what comes back.

Every function here is a top-level, picklable entry point run in an executor; none of
them may be called on the event loop.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pyhanko_certvalidator.registry import SimpleCertificateStore

from mock_server.pki import pades
from mock_server.pki.authority import (
    ParsedPki,
    PkiMaterial,
    RevocationUrls,
    SignerIdentity,
    asn1_certificate,
    issue_one_shot_certificate,
    parsed,
)
from mock_server.pki.cades import HashToSign, sign_digest, tamper_signature
from mock_server.pki.keysigner import KeySigner, OneShotKey
from mock_server.pki.revocation import Revocation, build_crl, good_ocsp_response
from mock_server.pki.tsa import sandbox_tsa

_PLACEHOLDER = re.compile(r"%\((CN|SUBJECT|DATE|E)\)s?")


@dataclass(frozen=True)
class TextTemplate:
    """The ``signature_format`` of a sign call."""

    lines: tuple[str, ...]
    date_format: str
    timezone: str


@dataclass(frozen=True)
class VisibleSignature:
    """Where a visible signature goes and what it shows; text is rendered once the certificate exists."""

    page: int
    box: tuple[float, float, float, float]
    image: bytes | None
    text: TextTemplate | None


@dataclass(frozen=True)
class PdfToSign:
    """One PDF of a request."""

    uid: str
    data: bytes
    visible: VisibleSignature | None = None
    countersign: bool = False


@dataclass(frozen=True)
class Countersigner:
    """Who adds a second signature to the PDFs marked ``countersign``, and where it shows."""

    identity: SignerIdentity
    key_der: bytes
    certificate_serial: int
    visible: VisibleSignature | None


@dataclass(frozen=True)
class SignJob:
    """Issue a one-shot certificate and sign every PDF and digest of a request with it.

    ``ltv`` embeds validation material (PAdES-B-LT): the chain, a CRL listing
    ``revocations`` and an OCSP answer for the new certificate.
    """

    identity: SignerIdentity
    key_der: bytes
    certificate_serial: int
    not_before: datetime
    not_after: datetime
    signing_time: datetime
    revocation_urls: RevocationUrls
    pdfs: tuple[PdfToSign, ...]
    hashes: tuple[tuple[str, HashToSign], ...]
    timestamp_serials: tuple[int, ...]
    ltv: bool = True
    artefact: str | None = None  # a broken result on purpose: expired_signer, revoked_signer, tampered, no_timestamp
    revoked_at: datetime | None = None
    revocations: tuple[Revocation, ...] = ()
    crl_number: int = 1
    countersigner: Countersigner | None = None


@dataclass(frozen=True)
class SignOutcome:
    """The issued certificate, the signed PDFs and P7Ms by uid, and the refused ones with reasons."""

    certificate_serial: int
    certificate_der: bytes
    signed: dict[str, bytes]
    refused: dict[str, str]
    revoked_at: datetime | None = None


def generate_key(key_type: str = "ec-p256") -> bytes:
    """A fresh one-shot key of ``key_type`` (one of ``authority.KEY_TYPES``), PKCS#8 DER."""
    key: OneShotKey
    if key_type == "ec-p256":
        key = ec.generate_private_key(ec.SECP256R1())
    elif key_type == "rsa-2048":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        raise ValueError(f"unknown key type {key_type!r}")
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


# The order of the P-256 group: a private key is a number below it.
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def officer_certificate(material: PkiMaterial, identity: SignerIdentity, key_seed: bytes, serial: int,
                        not_before: datetime, not_after: datetime, revocation_urls: RevocationUrls) -> bytes:
    """DER of a registration officer's certificate, its P-256 key derived from ``key_seed``: the
    same seed gives the same certificate (the CA's RSA PKCS#1 v1.5 signature is deterministic)."""
    key = ec.derive_private_key(int.from_bytes(key_seed) % (_P256_ORDER - 1) + 1, ec.SECP256R1())
    cert = issue_one_shot_certificate(parsed(material), identity, key.public_key(), serial,
                                      not_before, not_after, revocation_urls)
    return cert.public_bytes(serialization.Encoding.DER)


def warm_up() -> None:
    """Nothing: sent to a new worker so that it starts, and imports this module, before work arrives."""


def inspect_pdf(data: bytes) -> pades.PdfReport:
    """Upload-time check of a PDF (see :func:`pades.inspect_pdf`)."""
    return pades.inspect_pdf(data)


def sign_request(material: PkiMaterial, job: SignJob) -> SignOutcome:
    """Run a :class:`SignJob` under ``material``: one certificate, a PAdES signature per PDF (plus
    countersignatures) and a detached CMS per digest.

    The certificate depends on the job alone (the CA's RSA PKCS#1 v1.5 signature is deterministic),
    so running the same job again with other PDFs signs them under the very same certificate.
    """
    pki = parsed(material)
    chain = _signer_chain(material)
    serials = iter(job.timestamp_serials)
    tsa = sandbox_tsa(material)
    timestamp = None if job.artefact == "no_timestamp" else tsa.signature_timestamps(job.signing_time, serials)
    key, cert = _issue(pki, job.identity, job.key_der, job.certificate_serial, job)
    signer = KeySigner(cert, key, chain)
    counter = None
    if job.countersigner is not None:
        spec = job.countersigner
        counter_key, counter_cert = _issue(pki, spec.identity, spec.key_der, spec.certificate_serial, job)
        counter = (spec, KeySigner(counter_cert, counter_key, chain), counter_cert)
    validation = None
    if job.ltv and job.pdfs:
        validation = _validation_material(pki, job, [cert] + ([counter[2]] if counter else []))
    reserve = pades.cms_reserve(
        c.public_bytes(serialization.Encoding.DER)
        for c in (cert, pki.issuing_cert, pki.root_cert, pki.tsa_cert, pki.root_cert)
    )
    ca_chain = _ca_certificates(material)

    signed: dict[str, bytes] = {}
    refused: dict[str, str] = {}
    for pdf in job.pdfs:
        try:
            appearance = _appearance(pdf.visible, job.identity, cert, job) if pdf.visible else None
            own = pades.SignatureSpec(signer, (signer.signing_cert, *ca_chain), f"OneShot-{job.certificate_serial:x}",
                                      job.signing_time, reserve, timestamp, validation)
            data = pades.sign_pdf(pdf.data, own, appearance)
            if pdf.countersign and counter is not None:
                spec, counter_signer, counter_cert = counter
                appearance = _appearance(spec.visible, spec.identity, counter_cert, job) if spec.visible else None
                counter_spec = pades.SignatureSpec(
                    counter_signer, (counter_signer.signing_cert, *ca_chain),
                    f"OneShot-Countersignature-{spec.certificate_serial:x}", job.signing_time,
                    reserve, timestamp, validation,
                )
                data = pades.sign_pdf(data, counter_spec, appearance)
            signed[pdf.uid] = pades.tamper(data) if job.artefact == "tampered" else data
        except pades.DocumentRefused as refusal:
            refused[pdf.uid] = str(refusal)
    issuing = asn1_certificate(pki.issuing_cert)
    for uid, item in job.hashes:
        p7m = sign_digest(item, signer, issuing, timestamp, job.signing_time)
        signed[uid] = tamper_signature(p7m) if job.artefact == "tampered" else p7m
    return SignOutcome(
        job.certificate_serial, cert.public_bytes(serialization.Encoding.DER), signed, refused, job.revoked_at
    )


@functools.lru_cache(maxsize=4)
def _ca_certificates(material: PkiMaterial) -> tuple[asn1_x509.Certificate, ...]:
    """The issuing and root CA certificates every one-shot signature carries, parsed once per process."""
    pki = parsed(material)
    return asn1_certificate(pki.issuing_cert), asn1_certificate(pki.root_cert)


@functools.lru_cache(maxsize=4)
def _signer_chain(material: PkiMaterial) -> SimpleCertificateStore:
    """:func:`_ca_certificates` as the certificate registry of pyHanko's signers."""
    return SimpleCertificateStore.from_certs(_ca_certificates(material))


def _issue(
    pki: ParsedPki, identity: SignerIdentity, key_der: bytes, serial: int, job: SignJob
) -> tuple[OneShotKey, x509.Certificate]:
    # Our own freshly generated key: the expensive RSA consistency check adds nothing.
    key = serialization.load_der_private_key(key_der, password=None, unsafe_skip_rsa_key_validation=True)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise TypeError("one-shot keys are RSA or EC")
    cert = issue_one_shot_certificate(
        pki, identity, key.public_key(), serial, job.not_before, job.not_after, job.revocation_urls
    )
    return key, cert


def _validation_material(pki: ParsedPki, job: SignJob, signers: list[x509.Certificate]) -> pades.ValidationMaterial:
    """What a B-LT signature embeds, made here rather than fetched from the sandbox's own URLs: both
    chains, the issuing CA's CRL and an OCSP answer per one-shot certificate."""
    crl = build_crl(pki, job.revocations, job.signing_time, job.crl_number)
    ocsps = [good_ocsp_response(pki, cert, job.signing_time) for cert in signers]
    return pades.ValidationMaterial(
        certs=tuple(asn1_certificate(c) for c in (*signers, pki.issuing_cert, pki.tsa_cert, pki.root_cert)),
        crls=(asn1_crl.CertificateList.load(crl.public_bytes(serialization.Encoding.DER)),),
        ocsps=tuple(asn1_ocsp.OCSPResponse.load(o.public_bytes(serialization.Encoding.DER)) for o in ocsps),
    )


def _appearance(
    visible: VisibleSignature, identity: SignerIdentity, cert: x509.Certificate, job: SignJob
) -> pades.Appearance:
    text = ""
    if visible.text is not None:
        moment = job.signing_time.astimezone(ZoneInfo(visible.text.timezone))
        values = {
            "CN": identity.common_name,
            "SUBJECT": cert.subject.rfc4514_string(),
            "DATE": moment.strftime(visible.text.date_format),
            "E": identity.email,
        }
        text = "\n".join(
            _PLACEHOLDER.sub(lambda m: values[m.group(1)], line) for line in visible.text.lines
        )
    return pades.Appearance(page=visible.page, box=visible.box, text=text, image=visible.image)
