"""The classic SMS workflow end to end, with the signatures checked by independent validators."""

from __future__ import annotations

import io
import re

from pyhanko.pdf_utils.reader import PdfFileReader

from tests.helpers import DEFAULT_TOKEN, blank_pdf, covers_whole_document, pdfsig, picture, validate


async def test_classic_flow_signs_document_and_contract(sandbox, nss_db, tmp_path):
    tokens = await sandbox.call("GET", "/api/v1/tokens")
    assert DEFAULT_TOKEN in tokens.body["details"]

    pk = await sandbox.create_request()
    uid = await sandbox.upload_pdf(pk, blank_pdf(2), "contrato.pdf")
    contract = await sandbox.call("GET", f"/api/v1/document/{pk}/contract")
    assert contract.status == 200 and contract.content_type == "application/pdf"
    assert contract.raw.startswith(b"%PDF-")

    code = await sandbox.otp(pk)
    signed = await sandbox.sign(pk, {"secret": code})
    assert signed.body == {"status": "200 OK", "details": "Documents correctly signed"}

    document = await sandbox.signed(pk, uid)
    signed_contract = (await sandbox.call("GET", f"/api/v1/document/{pk}/contract")).raw
    for pdf in (document, signed_contract):
        status = await validate(pdf)
        assert status.intact and status.valid and status.trusted, status.pretty_print_details()
        assert status.signing_cert.subject.native["common_name"] == "ANA LÓPEZ RUIZ"
        assert status.timestamp_validity is not None
        assert status.timestamp_validity.intact and status.timestamp_validity.valid
        assert status.timestamp_validity.trusted
        assert covers_whole_document(status), status.pretty_print_details()
        report = await pdfsig(pdf, nss_db, tmp_path)
        assert "Signature is Valid" in report, report
        assert "Certificate is Trusted" in report, report
        assert "ETSI.CAdES.detached" in report, report

    detail = (await sandbox.call("GET", f"/api/v1/request/{pk}")).body["details"]
    assert detail["status"] == "ISSUED"
    [certificate] = detail["certificate_set"]
    assert "CN=ANA LÓPEZ RUIZ" in certificate["subject"]
    assert "IDCES-12345678Z" in certificate["subject"]

    deleted = await sandbox.call("DELETE", f"/api/v1/documents/{pk}")
    assert deleted.body == {"status": "200 OK", "details": "Documents deleted successfully"}
    gone = await sandbox.call("GET", f"/api/v1/documents/{pk}")
    assert gone.status == 404


async def test_contract_is_signed_under_the_requests_certificate_on_first_demand(sandbox):
    pk = await sandbox.create_request()
    uid = await sandbox.upload_pdf(pk)
    await sandbox.sign(pk, {"secret": await sandbox.otp(pk)})
    document = await validate(await sandbox.signed(pk, uid))
    first = (await sandbox.call("GET", f"/api/v1/document/{pk}/contract")).raw
    again = (await sandbox.call("GET", f"/api/v1/document/{pk}/contract")).raw
    assert first == again
    contract = await validate(first)
    assert contract.intact and contract.valid and contract.trusted, contract.pretty_print_details()
    [certificate] = (await sandbox.call("GET", f"/api/v1/request/{pk}")).body["details"]["certificate_set"]
    assert contract.signing_cert.dump() == document.signing_cert.dump()
    assert format(contract.signing_cert.serial_number, "x") == certificate["serial_number"]
    assert contract.signer_reported_dt == document.signer_reported_dt


async def test_one_shot_certificate_profile(sandbox):
    pk = await sandbox.create_request(surname_2="", id_document_type="PAS", id_document_country="PT",
                                      serial_number="X1234567")
    uid = await sandbox.upload_pdf(pk)
    await sandbox.sign(pk, {"secret": await sandbox.otp(pk)})
    status = await validate(await sandbox.signed(pk, uid))
    cert = status.signing_cert
    subject = cert.subject.native
    assert subject["common_name"] == "ANA LÓPEZ"
    assert subject["given_name"] == "Ana"
    assert subject["surname"] == "López"
    assert subject["serial_number"] == "PASPT-X1234567"
    assert subject["country_name"] == "PT"
    assert cert.subject_alt_name_value.native == ["ana.lopez@example.com"]
    assert set(cert.key_usage_value.native) == {"digital_signature", "non_repudiation"}
    lifetime = cert.not_valid_after - cert.not_valid_before
    assert lifetime.days <= 2


async def test_external_authentication_signs_without_otp(sandbox):
    pk = await sandbox.create_request()
    uid = await sandbox.upload_pdf(pk)
    answer = await sandbox.sign(pk, {"secret": "customer-code", "ext_unlock_type": "biometric",
                                     "ext_unlock_value": "bio-7781"})
    assert answer.status == 200, answer.body
    assert (await validate(await sandbox.signed(pk, uid))).bottom_line
    outbox = await sandbox.call("GET", f"/_mock/sms?request={pk}")
    assert outbox.body["messages"] == []


async def test_visible_signature_with_image_and_text(sandbox, tmp_path):
    pk = await sandbox.create_request()
    uid = await sandbox.upload_pdf(pk, blank_pdf(3))
    image = (await sandbox.upload_image(picture())).body["details"]
    body = {
        "secret": await sandbox.otp(pk),
        "options": {uid: {"position": "50,60, 250,140", "page": "2", "image": image}},
        "signature_format": {"text_format": ["Firmado por %(CN)s", "%(E)s", "%(DATE)s"],
                             "date_format": "%Y-%m-%d", "timezone": "Europe/Warsaw"},
    }
    answer = await sandbox.sign(pk, body)
    assert answer.status == 200, answer.body
    pdf = await sandbox.signed(pk, uid)
    status = await validate(pdf)
    assert status.bottom_line
    reader = PdfFileReader(io.BytesIO(pdf))
    field = reader.embedded_signatures[0].sig_field
    assert [float(v) for v in field["/Rect"]] == [50.0, 60.0, 250.0, 140.0]
    page = reader.root["/Pages"]["/Kids"][2].get_object()
    assert any(annot.get_object().get("/T") == field["/T"] for annot in page["/Annots"])
    streams = appearance_streams(field["/AP"]["/N"].get_object())
    text = shown_text(b"".join(s.data for s in streams if s.get("/Subtype") != "/Image"))
    assert text[:2] == ["Firmado por ANA LÓPEZ RUIZ", "ana.lopez@example.com"], text
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", text[2]), text
    assert any(s.get("/Subtype") == "/Image" for s in streams)


def shown_text(content: bytes) -> list[str]:
    """The literal strings a content stream shows with Tj, octal escapes decoded."""
    strings = re.findall(rb"\(((?:[^()\\]|\\.)*)\)\s*Tj", content)
    decode = lambda m: bytes([int(m.group(1), 8)])  # noqa: E731
    return [re.sub(rb"\\([0-7]{1,3})", decode, raw).decode("latin-1") for raw in strings]


def appearance_streams(stream) -> list:
    """An appearance stream and every XObject it draws, recursively."""
    found = [stream]
    resources = stream.get("/Resources")
    xobjects = resources.get("/XObject", {}) if resources is not None else {}
    for ref in xobjects.values():
        found.extend(appearance_streams(ref.get_object()))
    return found


async def test_invisible_signature_by_default(sandbox):
    pk = await sandbox.create_request()
    uid = await sandbox.upload_pdf(pk)
    await sandbox.sign(pk, {"secret": await sandbox.otp(pk)})
    field = PdfFileReader(io.BytesIO(await sandbox.signed(pk, uid))).embedded_signatures[0].sig_field
    assert [float(v) for v in field["/Rect"]] == [0.0, 0.0, 0.0, 0.0]
