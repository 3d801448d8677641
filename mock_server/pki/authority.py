"""The sandbox's test PKI: root CA, issuing CA and TSA, loaded from PEM files.

Everything here is plain data (bytes) so it can be shipped to signing worker
processes; :func:`parsed` turns it into key and certificate objects once per process.
"""

from __future__ import annotations

import base64
import functools
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from urllib.parse import urlencode

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

PKI_FILES = ("root.pem", "issuing.pem", "issuing.key", "tsa.pem", "tsa.key")
# What a one-shot certificate's key may be (see generate_key in signing.py).
KEY_TYPES = ("ec-p256", "rsa-2048")


@dataclass(frozen=True)
class PkiMaterial:
    """PEM bytes of the sandbox's CA hierarchy (picklable, hashable)."""

    root_cert: bytes
    issuing_cert: bytes
    issuing_key: bytes
    tsa_cert: bytes
    tsa_key: bytes

    @classmethod
    def from_dir(cls, directory: Path) -> PkiMaterial:
        """Read the five PEM files of :data:`PKI_FILES` from ``directory``."""
        missing = [name for name in PKI_FILES if not (directory / name).is_file()]
        if missing:
            raise FileNotFoundError(f"PKI directory {directory} lacks {', '.join(missing)}")
        return cls(*((directory / name).read_bytes() for name in PKI_FILES))

    @classmethod
    def bundled(cls) -> PkiMaterial:
        """The committed test PKI under ``fixtures/pki``."""
        with resources.as_file(resources.files("mock_server.fixtures") / "pki") as path:
            return cls.from_dir(Path(path))

    def ca_bundle_pem(self) -> bytes:
        """Root, issuing CA and TSA certificates, concatenated PEM."""
        return self.root_cert + self.issuing_cert + self.tsa_cert


@dataclass(frozen=True)
class ParsedPki:
    """Key and certificate objects of a :class:`PkiMaterial`."""

    root_cert: x509.Certificate
    issuing_cert: x509.Certificate
    issuing_key: rsa.RSAPrivateKey
    tsa_cert: x509.Certificate
    tsa_key: rsa.RSAPrivateKey


@functools.lru_cache(maxsize=4)
def parsed(material: PkiMaterial) -> ParsedPki:
    """Parse ``material`` once per process."""

    def key(pem: bytes) -> rsa.RSAPrivateKey:
        loaded = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise ValueError("the sandbox PKI supports RSA keys only")
        return loaded

    return ParsedPki(
        root_cert=x509.load_pem_x509_certificate(material.root_cert),
        issuing_cert=x509.load_pem_x509_certificate(material.issuing_cert),
        issuing_key=key(material.issuing_key),
        tsa_cert=x509.load_pem_x509_certificate(material.tsa_cert),
        tsa_key=key(material.tsa_key),
    )


# X.520's upper bound for a common name, which cryptography enforces in bytes of UTF-8.
COMMON_NAME_MAX_BYTES = 64


# X.520's serialNumber: a PrintableString of at most 64 characters.
SERIAL_NUMBER_MAX = 64
PRINTABLE_STRING = re.compile(r"[A-Za-z0-9 '()+,\-./:=?]*")


def etsi_serial_number(id_document_type: str, id_document_country: str, serial_number: str) -> str:
    """ETSI EN 319 412-1 semantics identifier of a certificate's serialNumber, e.g. ``IDCES-12345678Z``."""
    return f"{id_document_type}{id_document_country}-{serial_number}"


def common_name(given_name: str, surname_1: str, surname_2: str = "") -> str:
    """The CN of a one-shot certificate: the names, space-joined, upper-cased (which can lengthen them)."""
    return " ".join(p for p in (given_name, surname_1, surname_2) if p).upper()


@dataclass(frozen=True)
class SignerIdentity:
    """Who a one-shot certificate is issued to."""

    given_name: str
    surname_1: str
    surname_2: str
    id_document_type: str
    id_document_country: str
    serial_number: str
    email: str

    @property
    def common_name(self) -> str:
        return common_name(self.given_name, self.surname_1, self.surname_2)

    @property
    def surname(self) -> str:
        return " ".join(p for p in (self.surname_1, self.surname_2) if p)

    @property
    def etsi_serial_number(self) -> str:
        return etsi_serial_number(self.id_document_type, self.id_document_country, self.serial_number)


@dataclass(frozen=True)
class RevocationUrls:
    """Where a one-shot certificate's CRL and OCSP responder are."""

    crl: str
    ocsp: str

    @classmethod
    def under(cls, public_url: str, namespace: str = "") -> RevocationUrls:
        """The sandbox's own endpoints; a namespace's carry it, since validators send no header."""
        query = f"?{urlencode({'namespace': namespace})}" if namespace else ""
        return cls(f"{public_url}/_mock/pki/crl{query}", f"{public_url}/_mock/pki/ocsp{query}")


def issue_one_shot_certificate(
    pki: ParsedPki,
    identity: SignerIdentity,
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    serial: int,
    not_before: datetime,
    not_after: datetime,
    revocation: RevocationUrls,
) -> x509.Certificate:
    """Issue the end-entity certificate a request signs its documents with.

    Its CRL distribution point and OCSP responder are the sandbox's (``revocation``).
    """
    attributes = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, identity.id_document_country),
        x509.NameAttribute(NameOID.SERIAL_NUMBER, identity.etsi_serial_number),
        x509.NameAttribute(NameOID.GIVEN_NAME, identity.given_name),
    ]
    if identity.surname:
        attributes.append(x509.NameAttribute(NameOID.SURNAME, identity.surname))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, identity.common_name))
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(attributes))
        .issuer_name(pki.issuing_cert.subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(pki.issuing_key.public_key()),
            critical=False,
        )
    )
    builder = builder.add_extension(
        x509.CRLDistributionPoints([
            x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(revocation.crl)],
                relative_name=None, reasons=None, crl_issuer=None,
            )
        ]),
        critical=False,
    ).add_extension(
        x509.AuthorityInformationAccess([
            x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP,
                x509.UniformResourceIdentifier(revocation.ocsp),
            )
        ]),
        critical=False,
    )
    if identity.email:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name(identity.email)]), critical=False
        )
    return builder.sign(pki.issuing_key, hashes.SHA256())


def asn1_certificate(cert: x509.Certificate) -> asn1_x509.Certificate:
    """The asn1crypto view of a ``cryptography`` certificate (what pyHanko works with)."""
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def certificate_summary(cert: x509.Certificate, revoked: bool = False) -> dict[str, str]:
    """The vendor's ``certificate`` object (as in ``approving_rao.certificate``)."""
    der = cert.public_bytes(serialization.Encoding.DER)
    return {
        "status": "1" if revoked else "0",
        "valid": "REVOKED" if revoked else "VALID",
        "serial_number": format(cert.serial_number, "x"),
        "valid_from": _vendor_time(cert.not_valid_before_utc),
        "valid_to": _vendor_time(cert.not_valid_after_utc),
        "issuer": cert.issuer.rfc4514_string(),
        "subject": cert.subject.rfc4514_string(),
        "data": base64.b64encode(der).decode("ascii"),
    }


def _vendor_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S+00:00")


def validity_window(now: datetime, lifetime: timedelta) -> tuple[datetime, datetime]:
    """Validity of a one-shot certificate; starts a minute early to absorb clock skew."""
    return now - timedelta(minutes=1), now + lifetime
