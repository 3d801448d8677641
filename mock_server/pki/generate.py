"""Generate a fresh test PKI (root CA, issuing CA, TSA) as PEM files.

Run ``oneshot-mock generate-pki --force fixtures/pki`` to regenerate the committed one.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOT_FOR_PRODUCTION = "NOT FOR PRODUCTION"
ORGANISATION = "oneshot-mock TEST PKI"


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "ES"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, NOT_FOR_PRODUCTION),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{common_name} - {NOT_FOR_PRODUCTION}"),
        ]
    )


def _key_usage(*, cert_sign: bool, signature: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _certificate(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: x509.Name,
    issuer_key: rsa.RSAPrivateKey,
    years: int,
    *,
    ca: bool,
    path_length: int | None = None,
    eku: list[x509.ObjectIdentifier] | None = None,
) -> x509.Certificate:
    now = datetime.now(UTC).replace(microsecond=0)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365 * years))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(_key_usage(cert_sign=ca, signature=not ca), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


PKI_FILES = ("root.pem", "root.key", "issuing.pem", "issuing.key", "tsa.pem", "tsa.key")


class PkiExists(FileExistsError):
    """``generate-pki`` would replace a PKI (its root key included) without being told to."""


def _write(directory: Path, name: str, data: bytes) -> None:
    path = directory / name
    path.unlink(missing_ok=True)
    # Private keys readable by their owner alone, from the moment they exist.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if name.endswith(".key") else 0o644)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def generate_test_pki(directory: Path, force: bool = False) -> None:
    """Write root.pem/.key, issuing.pem/.key and tsa.pem/.key into ``directory``; :class:`PkiExists`
    if one of them is there already, unless ``force``."""
    directory.mkdir(parents=True, exist_ok=True)
    present = [name for name in PKI_FILES if (directory / name).exists()]
    if present and not force:
        raise PkiExists(f"{directory} already holds a PKI ({', '.join(present)}): pass --force to replace it, "
                        "root key included")
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    issuing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root_name = _name("oneshot-mock TEST Root CA")
    root = _certificate(root_name, root_key, root_name, root_key, 25, ca=True)
    issuing = _certificate(
        _name("oneshot-mock TEST Issuing CA"), issuing_key, root_name, root_key, 20,
        ca=True, path_length=0,
    )
    tsa = _certificate(
        _name("oneshot-mock TEST TSA"), tsa_key, root_name, root_key, 20,
        ca=False, eku=[ExtendedKeyUsageOID.TIME_STAMPING],
    )
    _write(directory, "root.pem", _cert_pem(root))
    # Kept beside the others so the hierarchy can be extended (new intermediates, CRLs).
    _write(directory, "root.key", _key_pem(root_key))
    _write(directory, "issuing.pem", _cert_pem(issuing))
    _write(directory, "issuing.key", _key_pem(issuing_key))
    _write(directory, "tsa.pem", _cert_pem(tsa))
    _write(directory, "tsa.key", _key_pem(tsa_key))
