"""Detached CMS (CAdES-T) signatures over digests a client computed itself.

Built from asn1crypto structures and signed with ``cryptography``; the signature
time-stamp comes from the sandbox TSA.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import algos, cms, core, tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa, utils
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from pyhanko.sign.general import as_signing_certificate_v2

from mock_server.pki.authority import asn1_certificate
from mock_server.pki.tsa import SandboxTsa

_HASHES = {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}


@dataclass(frozen=True)
class HashToSign:
    """A submitted digest and how the client wants it signed."""

    digest: bytes
    algorithm: str
    signed_attributes: bool
    signing_time: bool
    other_attributes: tuple[bytes, ...]


def sign_digest(
    item: HashToSign,
    cert: x509.Certificate,
    key: rsa.RSAPrivateKey,
    chain: list[x509.Certificate],
    tsa: SandboxTsa | None,
    signing_time: datetime,
    timestamp_serial: int,
) -> bytes:
    """DER ContentInfo(SignedData), detached, over ``item.digest``: CAdES-T, or CAdES-B without ``tsa``."""
    signer_cert = asn1_certificate(cert)
    digest_algorithm = algos.DigestAlgorithm({"algorithm": item.algorithm})
    hash_algorithm = _HASHES[item.algorithm]()
    signed_attrs = None
    if item.signed_attributes:
        attributes = [
            _attribute("content_type", cms.ContentType("data")),
            _attribute("message_digest", core.OctetString(item.digest)),
        ]
        if item.signing_time:
            attributes.append(_attribute("signing_time", cms.Time({"utc_time": signing_time})))
        attributes.append(_attribute("signing_certificate_v2", as_signing_certificate_v2(signer_cert)))
        attributes.extend(cms.CMSAttribute.load(der) for der in item.other_attributes)
        signed_attrs = cms.CMSAttributes(attributes)
        signature = key.sign(signed_attrs.dump(), PKCS1v15(), hash_algorithm)
    else:
        # No signed attributes: the signature is over the content's digest itself.
        signature = key.sign(item.digest, PKCS1v15(), utils.Prehashed(hash_algorithm))

    unsigned = None
    if tsa is not None:
        token = _timestamp(tsa, signature, signing_time, timestamp_serial)
        unsigned = cms.CMSAttributes([_attribute("signature_time_stamp_token", token)])
    signer_info = cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier({
            "issuer_and_serial_number": cms.IssuerAndSerialNumber({
                "issuer": signer_cert.issuer,
                "serial_number": signer_cert.serial_number,
            }),
        }),
        "digest_algorithm": digest_algorithm,
        "signed_attrs": signed_attrs,
        "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15"}),
        "signature": signature,
        "unsigned_attrs": unsigned,
    })
    signed_data = cms.SignedData({
        "version": "v1",
        "digest_algorithms": [digest_algorithm],
        "encap_content_info": {"content_type": "data"},
        "certificates": [signer_cert, *(asn1_certificate(c) for c in chain)],
        "signer_infos": [signer_info],
    })
    return cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()


def _timestamp(tsa: SandboxTsa, signature: bytes, at: datetime, serial: int) -> cms.ContentInfo:
    """A signature time-stamp token: the TSA's answer over the hash of the signature value."""
    request = tsp.TimeStampReq({
        "version": "v1",
        "message_imprint": {
            "hash_algorithm": {"algorithm": "sha256"},
            "hashed_message": hashlib.sha256(signature).digest(),
        },
        "cert_req": True,
    })
    return asyncio.run(tsa.respond(request, at, serial))["time_stamp_token"]


def _attribute(kind: str, value: core.Asn1Value) -> cms.CMSAttribute:
    return cms.CMSAttribute({"type": kind, "values": [value]})


def tamper_signature(p7m: bytes) -> bytes:
    """The same CMS with one bit of the signature value flipped: it no longer verifies."""
    signature = cms.ContentInfo.load(p7m)["content"]["signer_infos"][0]["signature"].native
    # Flipping the bytes in place keeps every length and the rest of the DER untouched.
    at = p7m.index(signature)
    broken = bytearray(p7m)
    broken[at + len(signature) - 1] ^= 0x01
    return bytes(broken)
