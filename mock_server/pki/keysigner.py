"""A pyHanko signer over an already-loaded RSA key.

pyHanko's ``SimpleSigner`` re-parses its key for every signature, and
``cryptography`` validates an RSA key on each load (~35 ms): that would be most of
the cost of a PAdES signature.
"""

from __future__ import annotations

from collections.abc import Iterable

from asn1crypto import keys as asn1_keys
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from pyhanko.sign.general import get_pyca_cryptography_hash
from pyhanko.sign.signers import SimpleSigner
from pyhanko_certvalidator.registry import SimpleCertificateStore

from mock_server.pki.authority import asn1_certificate


class KeySigner(SimpleSigner):
    """RSA PKCS#1 v1.5 signer holding a parsed ``cryptography`` key."""

    def __init__(
        self,
        cert: x509.Certificate,
        key: rsa.RSAPrivateKey,
        chain: Iterable[x509.Certificate] = (),
    ) -> None:
        key_info = asn1_keys.PrivateKeyInfo.load(
            key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        super().__init__(
            signing_cert=asn1_certificate(cert),
            signing_key=key_info,
            cert_registry=SimpleCertificateStore.from_certs([asn1_certificate(c) for c in chain]),
        )
        self._key = key

    def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
        return self._key.sign(data, PKCS1v15(), get_pyca_cryptography_hash(digest_algorithm))
