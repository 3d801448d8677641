"""The sandbox's RFC 3161 time-stamping authority, signing with the test TSA key."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from datetime import datetime
from typing import ClassVar

from asn1crypto import cms, tsp, x509
from pyhanko_certvalidator.registry import SimpleCertificateStore

from mock_server.pki.authority import ParsedPki, PkiMaterial, asn1_certificate, parsed
from mock_server.pki.keysigner import KeySigner
from mock_server.pki.signeddata import HASHES, Countersign, signed_data

DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}
# A UUID-derived OID (ITU-T X.667 arc 2.25): unique without a registered enterprise number.
TSA_POLICY_OID = "2.25.238936245139870519212425622624399372145"


class SandboxTsa:
    """Answers time-stamp requests; the caller supplies time and serial number."""

    def __init__(self, pki: ParsedPki) -> None:
        self._tsa_cert = asn1_certificate(pki.tsa_cert)
        self._certificates = [self._tsa_cert, asn1_certificate(pki.root_cert)]
        self._signer = KeySigner(pki.tsa_cert, pki.tsa_key, SimpleCertificateStore())

    def respond(self, req: tsp.TimeStampReq, gen_time: datetime, serial: int) -> tsp.TimeStampResp:
        """A granted response carrying a token over ``req``'s message imprint."""
        imprint = req["message_imprint"]
        token = self.token(imprint["hashed_message"].native, imprint["hash_algorithm"]["algorithm"].native,
                           gen_time, serial, nonce=req["nonce"].native, with_certificates=req["cert_req"].native)
        return tsp.TimeStampResp({"status": tsp.PKIStatusInfo({"status": "granted"}), "time_stamp_token": token})

    def token(self, digest: bytes, algorithm: str, gen_time: datetime, serial: int, *,
              nonce: int | None = None, with_certificates: bool = True) -> cms.ContentInfo:
        """A time-stamp token (RFC 3161 §2.4.2) over ``digest``, a ``algorithm`` hash."""
        info: dict[str, object] = {
            "version": "v1",
            "policy": TSA_POLICY_OID,
            "message_imprint": {"hash_algorithm": {"algorithm": algorithm}, "hashed_message": digest},
            "serial_number": serial,
            "gen_time": gen_time,
            "accuracy": {"seconds": 1},
            "tsa": x509.GeneralName(name="directory_name", value=self._tsa_cert.subject),
        }
        if nonce is not None:
            info["nonce"] = nonce
        content = tsp.TSTInfo(info).dump()
        digest_algorithm = algorithm if algorithm in HASHES else "sha256"
        content_digest = hashlib.new(digest_algorithm, content).digest()
        return signed_data(
            self._signer, digest_algorithm, content_digest, self._certificates if with_certificates else [],
            content_type="tst_info", content=content, signing_time=gen_time,
        )

    def signature_timestamps(self, gen_time: datetime, serials: Iterator[int]) -> Countersign:
        """Signature time-stamps (CAdES-T, PAdES-B-T): each call answers a token over the SHA-256 of
        a signature value, under the next of ``serials``."""

        def timestamp(signature: bytes) -> cms.ContentInfo:
            return self.token(hashlib.sha256(signature).digest(), "sha256", gen_time, next(serials))

        return timestamp


@functools.lru_cache(maxsize=4)
def sandbox_tsa(material: PkiMaterial) -> SandboxTsa:
    """The TSA of ``material``, made once per process."""
    return SandboxTsa(parsed(material))


def timestamp_reply(material: PkiMaterial, request_der: bytes, gen_time: datetime, serial: int) -> bytes:
    """The DER TimeStampResp to a DER TimeStampReq received over HTTP (RFC 3161 §3.4)."""
    try:
        request = tsp.TimeStampReq.load(request_der, strict=True)
        imprint = request["message_imprint"]
        algorithm = imprint["hash_algorithm"]["algorithm"].native
        digest_size = len(imprint["hashed_message"].native)
        requested_policy = request["req_policy"].dotted if request["req_policy"].native else None
    except (ValueError, TypeError, KeyError):
        return _rejection("bad_data_format", "not a DER TimeStampReq")
    if algorithm not in DIGEST_SIZES:
        return _rejection("bad_alg", f"unsupported hash algorithm {algorithm}; use sha256, sha384 or sha512")
    if digest_size != DIGEST_SIZES[algorithm]:
        return _rejection("bad_data_format", f"a {algorithm} imprint has {DIGEST_SIZES[algorithm]} bytes")
    if requested_policy not in (None, TSA_POLICY_OID):
        return _rejection("unaccepted_policy", f"the sandbox TSA only issues under policy {TSA_POLICY_OID}")
    return sandbox_tsa(material).respond(request, gen_time, serial).dump()


def _rejection(fail_info: str, text: str) -> bytes:
    status = tsp.PKIStatusInfo({
        "status": "rejection",
        "status_string": [text],
        "fail_info": tsp.PKIFailureInfo({fail_info}),
    })
    return _RejectedResp({"status": status}).dump()


class _RejectedResp(tsp.TimeStampResp):
    # asn1crypto forgets that RFC 3161 makes the token OPTIONAL (absent on rejection).
    _fields: ClassVar = [("status", tsp.PKIStatusInfo), ("time_stamp_token", cms.ContentInfo, {"optional": True})]
