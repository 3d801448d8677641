"""A signer over an already-loaded RSA or EC key: it signs the sandbox's own CMS structures
(:mod:`mock_server.pki.signeddata`) and stands for the signer in pyHanko's PDF steps.

pyHanko's ``SimpleSigner`` re-parses its key for every signature, and ``cryptography``
validates an RSA key on each load (~35 ms): that would be most of the cost of a PAdES
signature. asn1crypto takes ~2.5 ms to encode a freshly built signing-certificate-v2
attribute against ~0.03 ms for the same value parsed from DER: the signer makes it once
(:func:`signing_certificate_v2`).
"""

from __future__ import annotations

import functools
import hashlib

from asn1crypto import algos, cms, tsp
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from pyhanko.sign.signers import SimpleSigner
from pyhanko_certvalidator.registry import SimpleCertificateStore

from mock_server.pki.authority import asn1_certificate

OneShotKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class KeySigner(SimpleSigner):
    """RSA PKCS#1 v1.5 or ECDSA signer holding a parsed ``cryptography`` key."""

    def __init__(self, cert: x509.Certificate, key: OneShotKey, chain: SimpleCertificateStore) -> None:
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
            cert_registry=chain,  # pyHanko only reads it: one store serves every signer
        )
        self._key = key
        # DER made on first use, kept for every later CMS of this signer.
        self._signing_certificate_v2_attribute: bytes | None = None
        self._signer_identifier: bytes | None = None

    def sign_data(self, data: bytes, algorithm: hashes.HashAlgorithm | Prehashed) -> bytes:
        """``data`` signed the way CMS expects of the key: PKCS#1 v1.5 for RSA, DER ECDSA for EC."""
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            return self._key.sign(data, ec.ECDSA(algorithm))
        return self._key.sign(data, PKCS1v15(), algorithm)

    def signature_algorithm(self, digest: str) -> algos.SignedDigestAlgorithm:
        """The SignerInfo ``signatureAlgorithm`` of :meth:`sign_data` with ``digest``."""
        name = f"{digest}_ecdsa" if isinstance(self._key, ec.EllipticCurvePrivateKey) else "rsassa_pkcs1v15"
        return algos.SignedDigestAlgorithm.load(_signature_algorithm(name))

    def signer_identifier(self) -> cms.SignerIdentifier:
        """The SignerInfo ``sid`` naming this signer's certificate by issuer and serial number."""
        if self._signer_identifier is None:
            cert = self.signing_cert
            self._signer_identifier = cms.SignerIdentifier({
                "issuer_and_serial_number": {"issuer": cert.issuer, "serial_number": cert.serial_number},
            }).dump()
        return cms.SignerIdentifier.load(self._signer_identifier)

    def signing_certificate_v2(self) -> cms.CMSAttribute:
        """The ESS signing-certificate-v2 signed attribute for this signer (parsed, so it encodes fast)."""
        if self._signing_certificate_v2_attribute is None:
            value = tsp.SigningCertificateV2.load(signing_certificate_v2(self.signing_cert))
            self._signing_certificate_v2_attribute = cms.CMSAttribute(
                {"type": "signing_certificate_v2", "values": [value]}
            ).dump()
        return cms.CMSAttribute.load(self._signing_certificate_v2_attribute)


def signing_certificate_v2(cert: asn1_x509.Certificate) -> bytes:
    """DER of the ESS signing-certificate-v2 value for ``cert``, as pyHanko's
    ``as_signing_certificate_v2`` makes it (SHA-256, with issuer and serial).

    Built in two steps because asn1crypto encodes a value nested in a freshly built parent
    again and again: 0.17 ms this way, 0.63 ms in one go.
    """
    cert_id = tsp.ESSCertIDv2({
        "hash_algorithm": {"algorithm": "sha256"},
        "cert_hash": hashlib.sha256(cert.dump()).digest(),
        "issuer_serial": {
            "issuer": [asn1_x509.GeneralName({"directory_name": cert.issuer})],
            "serial_number": cert["tbs_certificate"]["serial_number"],
        },
    })
    return tsp.SigningCertificateV2({"certs": [tsp.ESSCertIDv2.load(cert_id.dump())]}).dump()


@functools.lru_cache(maxsize=8)
def _signature_algorithm(name: str) -> bytes:
    return algos.SignedDigestAlgorithm({"algorithm": name}).dump()
