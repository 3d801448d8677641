"""The sandbox's RFC 3161 time-stamping authority, signing with the test TSA key."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from asn1crypto import cms, core, tsp, x509
from pyhanko.sign.signers.pdf_cms import CMSSignedAttributes
from pyhanko.sign.timestamps.api import TimeStamper

from mock_server.pki.authority import ParsedPki
from mock_server.pki.keysigner import KeySigner

# A UUID-derived OID (ITU-T X.667 arc 2.25): unique without a registered enterprise number.
TSA_POLICY_OID = "2.25.238936245139870519212425622624399372145"


class SandboxTsa:
    """Answers time-stamp requests; the caller supplies time and serial number."""

    def __init__(self, pki: ParsedPki) -> None:
        self._tsa_cert = KeySigner.asn1_cert(pki.tsa_cert)
        self._signer = KeySigner(pki.tsa_cert, pki.tsa_key, chain=[pki.root_cert])

    async def respond(self, req: tsp.TimeStampReq, gen_time: datetime, serial: int) -> tsp.TimeStampResp:
        """A granted response carrying a token over ``req``'s message imprint."""
        info: dict[str, object] = {
            "version": "v1",
            "policy": TSA_POLICY_OID,
            "message_imprint": req["message_imprint"],
            "serial_number": serial,
            "gen_time": gen_time,
            "accuracy": {"seconds": 1},
            "tsa": x509.GeneralName(name="directory_name", value=self._tsa_cert.subject),
        }
        if req["nonce"].native is not None:
            info["nonce"] = req["nonce"]
        content = cms.EncapsulatedContentInfo(
            {
                "content_type": "tst_info",
                "content": core.ParsableOctetString(tsp.TSTInfo(info).dump()),
            }
        )
        digest = req["message_imprint"]["hash_algorithm"]["algorithm"].native
        token = await self._signer.async_sign_general_data(
            content,
            digest if digest in ("sha256", "sha384", "sha512") else "sha256",
            detached=False,
            use_cades=True,
            signed_attr_settings=CMSSignedAttributes(signing_time=gen_time),
        )
        if not req["cert_req"].native:
            token["content"]["certificates"] = None
        return tsp.TimeStampResp(
            {"status": tsp.PKIStatusInfo({"status": "granted"}), "time_stamp_token": token}
        )


class SandboxTimeStamper(TimeStamper):
    """pyHanko time stamper answered in-process by :class:`SandboxTsa`."""

    def __init__(self, tsa: SandboxTsa, gen_time: datetime, serials: Iterator[int]) -> None:
        super().__init__(include_nonce=True)
        self._tsa = tsa
        self._gen_time = gen_time
        self._serials = serials

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        return await self._tsa.respond(req, self._gen_time, next(self._serials))

