"""Many classic flows at once: no cross-talk between requests, OTPs or signatures."""

from __future__ import annotations

import asyncio

from tests.helpers import blank_pdf, validate

FLOWS = 50


async def _flow(sandbox, index: int) -> tuple[int, str, str, bytes]:
    given, phone = f"Signer{index:02d}", f"+3460000{index:04d}"
    pk = await sandbox.create_request(given_name=given, surname_1="Concurrent", surname_2="",
                                      mobile_phone_number=phone, serial_number=f"{index:08d}Z")
    uid = await sandbox.upload_pdf(pk, blank_pdf())
    assert (await sandbox.call("POST", f"/api/v1/otp/{pk}")).status == 200
    [message] = (await sandbox.call("GET", f"/_mock/sms?request={pk}")).body["messages"]
    assert message["to"] == phone and message["request"] == pk
    answer = await sandbox.sign(pk, {"secret": message["otp"]})
    assert answer.status == 200, answer.body
    return pk, given, phone, await sandbox.signed(pk, uid)


async def test_fifty_concurrent_classic_flows(sandbox):
    results = await asyncio.gather(*(_flow(sandbox, i) for i in range(FLOWS)))
    assert len({pk for pk, *_ in results}) == FLOWS
    for _pk, given, _phone, pdf in results:
        status = await validate(pdf)
        assert status.bottom_line
        assert status.signing_cert.subject.native["common_name"] == f"{given} CONCURRENT".upper()
    outbox = (await sandbox.call("GET", "/_mock/sms")).body["messages"]
    assert sorted((m["request"], m["to"]) for m in outbox) == sorted((pk, phone) for pk, _, phone, _ in results)
