"""Countersignature: the RAO's SignCloud account adds a second signature to chosen documents."""

from __future__ import annotations

import io

from pyhanko.pdf_utils.reader import PdfFileReader

from tests.helpers import blank_pdf, validate

RAO = {"username": "9001800", "password": "oneshot-mock", "pin": "123456"}


async def test_countersigned_document_carries_both_signatures(sandbox):
    pk = await sandbox.create_request()
    countersigned = await sandbox.upload_pdf(pk, blank_pdf(2), "a.pdf")
    plain = await sandbox.upload_pdf(pk, blank_pdf(), "b.pdf")
    body = {
        "secret": await sandbox.otp(pk),
        "options": {countersigned: {"position": "50,50,250,120", "page": 0, "usecountersignature": True}},
        "countersignature": {**RAO, "position": "300,50,500,120", "page": 1,
                             "signature_format": {"text_format": ["Countersigned by %(CN)s"]}},
    }
    answer = await sandbox.sign(pk, body)
    assert answer.status == 200, answer.body

    pdf = await sandbox.signed(pk, countersigned)
    signer, countersigner = await validate(pdf, 0), await validate(pdf, 1)
    assert signer.bottom_line and countersigner.bottom_line
    assert signer.signing_cert.subject.native["common_name"] == "ANA LÓPEZ RUIZ"
    rao_subject = countersigner.signing_cert.subject.native
    assert rao_subject["common_name"] == "ONESHOT OPERATOR"
    assert rao_subject["serial_number"] == "IDCES-9001800"
    fields = [s.sig_field for s in PdfFileReader(io.BytesIO(pdf)).embedded_signatures]
    assert [float(v) for v in fields[1]["/Rect"]] == [300.0, 50.0, 500.0, 120.0]

    other = PdfFileReader(io.BytesIO(await sandbox.signed(pk, plain)))
    assert len(other.embedded_signatures) == 1, "only documents asking for it are countersigned"


async def test_wrong_countersignature_credentials(sandbox):
    pk = await sandbox.create_request()
    uid = await sandbox.upload_pdf(pk)
    code = await sandbox.otp(pk)
    body = {"secret": code, "options": {uid: {"position": "1,1,90,40", "page": 0, "usecountersignature": "true"}},
            "countersignature": {**RAO, "pin": "000000"}}
    answer = await sandbox.sign(pk, body)
    assert answer.status == 403
    assert answer.body == {"status": "403 Forbidden", "details": "Invalid countersignature credentials"}
    detail = (await sandbox.call("GET", f"/api/v1/request/{pk}")).body["details"]
    assert detail["status"] == "ENROLLREADY"
    assert (await sandbox.sign(pk, {"secret": code})).status == 200, "a refused call does not burn the OTP"


async def test_usecountersignature_without_countersignature_block(sandbox):
    pk = await sandbox.create_request()
    uid = await sandbox.upload_pdf(pk)
    body = {"secret": await sandbox.otp(pk),
            "options": {uid: {"position": "1,1,90,40", "page": 0, "usecountersignature": True}}}
    answer = await sandbox.sign(pk, body)
    assert answer.body == {"status": "400 Bad Request", "details": "Missing required parameter: 'countersignature'"}
