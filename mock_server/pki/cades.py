"""Detached CMS (CAdES-T) signatures over digests a client computed itself.

Built from asn1crypto structures and signed with ``cryptography``; the signature
time-stamp comes from the sandbox TSA (:class:`mock_server.pki.tsa.SandboxTsa`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from asn1crypto import cms
from asn1crypto import x509 as asn1_x509

from mock_server.pki.keysigner import KeySigner
from mock_server.pki.signeddata import Countersign, signed_data


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
    signer: KeySigner,
    issuing: asn1_x509.Certificate,
    timestamp: Countersign | None,
    signing_time: datetime,
) -> bytes:
    """DER ContentInfo(SignedData), detached, over ``item.digest``: CAdES-T with a ``timestamp``
    (see :meth:`SandboxTsa.signature_timestamps`), CAdES-B without.

    Carries the signer's and the ``issuing`` CA's certificates.
    """
    return signed_data(
        signer, item.algorithm, item.digest, [signer.signing_cert, issuing],
        signed_attributes=item.signed_attributes,
        signing_time=signing_time if item.signing_time else None,
        other_attributes=[cms.CMSAttribute.load(der) for der in item.other_attributes],
        timestamp=timestamp,
    ).dump()


def tamper_signature(p7m: bytes) -> bytes:
    """The same CMS with one bit of the signature value flipped: it no longer verifies."""
    signature = cms.ContentInfo.load(p7m)["content"]["signer_infos"][0]["signature"].native
    # Flipping the bytes in place keeps every length and the rest of the DER untouched.
    at = p7m.index(signature)
    broken = bytearray(p7m)
    broken[at + len(signature) - 1] ^= 0x01
    return bytes(broken)
