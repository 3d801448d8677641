"""Create request, get request, OTP and sign over HTTP: happy paths and every documented error."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from cryptography import x509
from pyhanko.pdf_utils.reader import PdfFileReader

from tests.helpers import DEFAULT_TOKEN, IDENTITY, Answer, SandboxClient, blank_pdf, multipart_body, picture

STATUS_LINES = {
    200: "200 OK",
    201: "201 Created",
    400: "400 Bad Request",
    403: "403 Forbidden",
    404: "404 Not Found",
    412: "412 Precondition Failed",
}
UNKNOWN_PK = 1  # pks are drawn from 10000-60000
RAO_PASSWORD = "oneshot-mock"
RAO_PIN = "123456"
TOO_SOON = "Error occured during OTP generation: Otp generated less than a minute ago"
INVALID_CODE = "Confirmation Code invalid"


def assert_answer(answer: Answer, http_status: int, details: Any = None) -> None:
    """``answer`` is the legacy envelope with ``http_status`` (and ``details`` when given)."""
    assert answer.status == http_status, answer.body
    assert answer.content_type == "application/json"
    assert answer.body["status"] == STATUS_LINES[http_status]
    if details is not None:
        assert answer.body["details"] == details


async def create_raw(sandbox: SandboxClient, *, multipart: bool = True, **changes: Any) -> Answer:
    """A create-request call with the default identity and token, ``changes`` applied (None drops)."""
    fields = {"token": DEFAULT_TOKEN, **IDENTITY, **changes}
    fields = {k: v for k, v in fields.items() if v is not None}
    return await sandbox.create_request_raw(fields, multipart=multipart)


async def request_detail(sandbox: SandboxClient, pk: int) -> dict[str, Any]:
    answer = await sandbox.call("GET", f"/api/v1/request/{pk}")
    assert_answer(answer, 200)
    return answer.body["details"]


async def outbox(sandbox: SandboxClient, pk: int) -> list[dict[str, Any]]:
    answer = await sandbox.call("GET", f"/_mock/sms?request={pk}")
    assert answer.status == 200, answer.body
    return answer.body["messages"]


async def ask_otp(sandbox: SandboxClient, pk: int | str, **kwargs: Any) -> Answer:
    return await sandbox.call("POST", f"/api/v1/otp/{pk}", **kwargs)


def other_code(code: str) -> str:
    """A six-digit code that is certainly not ``code``."""
    return f"{(int(code) + 1) % 1_000_000:06d}"


def signature_rect(pdf: bytes) -> list[float]:
    field = PdfFileReader(io.BytesIO(pdf)).embedded_signatures[0].sig_field
    return [float(v) for v in field["/Rect"]]


def signature_page(pdf: bytes) -> int:
    """The index of the page whose annotations hold the signature field."""
    reader = PdfFileReader(io.BytesIO(pdf))
    name = reader.embedded_signatures[0].sig_field["/T"]
    for index, page in enumerate(reader.root["/Pages"]["/Kids"]):
        annots = page.get_object().get("/Annots", [])
        if any(annot.get_object().get("/T") == name for annot in annots):
            return index
    raise AssertionError("signature field is on no page")


def appearance_strings(pdf: bytes) -> list[bytes]:
    """Every literal string the signature's appearance shows with Tj (image streams skipped)."""
    field = PdfFileReader(io.BytesIO(pdf)).embedded_signatures[0].sig_field
    pending, shown = [field["/AP"]["/N"].get_object()], []
    while pending:
        stream = pending.pop()
        resources = stream.get("/Resources")
        pending.extend(ref.get_object() for ref in (resources or {}).get("/XObject", {}).values())
        if stream.get("/Subtype") != "/Image":
            shown.extend(re.findall(rb"\(((?:[^()\\]|\\.)*)\)\s*Tj", stream.data))
    return shown


# Create request: accepted bodies ------------------------------------------------------------


@pytest.mark.parametrize("multipart", [True, False], ids=["multipart", "json"])
async def test_create_request_returns_integer_pk(sandbox, multipart):
    answer = await create_raw(sandbox, multipart=multipart)
    assert_answer(answer, 201)
    pk = answer.body["details"]
    assert isinstance(pk, int) and not isinstance(pk, bool)
    assert (await request_detail(sandbox, pk))["pk"] == pk


async def test_create_request_json_without_content_type(sandbox):
    body = json.dumps({"token": DEFAULT_TOKEN, **IDENTITY}).encode()
    answer = await sandbox.call("POST", "/api/v1/request", data=body, skip_auto_headers=["Content-Type"])
    assert_answer(answer, 201)
    assert (await request_detail(sandbox, answer.body["details"]))["given_name"] == "Ana"


@pytest.mark.parametrize("multipart", [True, False], ids=["multipart", "json"])
@pytest.mark.parametrize("username", ["9001800", "1125824", "7000001"])
async def test_create_request_with_rao_credentials_instead_of_token(sandbox, username, multipart):
    pk = await sandbox.create_request(multipart=multipart, token=None, username=username,
                                      password=RAO_PASSWORD, pin=RAO_PIN)
    detail = await request_detail(sandbox, pk)
    assert detail["approving_rao"]["id_document_number"] == username


async def test_create_request_accepts_identity_images(sandbox):
    form = aiohttp.FormData()
    for key, value in {"token": DEFAULT_TOKEN, **IDENTITY}.items():
        form.add_field(key, value)
    form.add_field("document_front", picture("JPEG"), filename="front.jpg", content_type="image/jpeg")
    form.add_field("document_rear", picture("PNG"), filename="rear.png", content_type="image/png")
    answer = await sandbox.call("POST", "/api/v1/request", data=form)
    assert_answer(answer, 201)
    assert (await request_detail(sandbox, answer.body["details"]))["status"] == "ENROLLREADY"


@pytest.mark.parametrize("env", ["sandbox", "test"])
async def test_create_request_accepts_sandbox_environments(sandbox, env):
    assert_answer(await create_raw(sandbox, env=env), 201)


async def test_create_request_takes_env_from_settings_when_left_out(sandbox):
    assert_answer(await create_raw(sandbox, env=None), 201)


@pytest.mark.parametrize("id_type", ["IDC", "PAS", "PNO", "TIN", "CI", "CE"])
async def test_create_request_accepts_each_id_document_type(sandbox, id_type):
    pk = await sandbox.create_request(id_document_type=id_type)
    assert (await request_detail(sandbox, pk))["id_document_type"] == id_type


async def test_create_request_defaults_id_document_type_and_country(sandbox):
    pk = await sandbox.create_request(id_document_type=None, id_document_country=None)
    detail = await request_detail(sandbox, pk)
    assert detail["id_document_type"] == "IDC"
    assert detail["id_document_country"] == "ES"


async def test_create_request_takes_profile_and_ra_from_settings(sandbox):
    changed = await sandbox.call("POST", "/api/v1/settings",
                                 json={"request": {"default_profile": "PFnubeNC", "default_ra": "4321"}})
    assert_answer(changed, 200)
    pk = await sandbox.create_request(profile=None, registration_authority=None)
    detail = await request_detail(sandbox, pk)
    assert detail["profile"] == "PFnubeNC"
    assert detail["registration_authority"] == 4321


async def test_create_request_fields_override_settings(sandbox):
    pk = await sandbox.create_request(profile="PFnubeNC", registration_authority="777")
    detail = await request_detail(sandbox, pk)
    assert detail["profile"] == "PFnubeNC"
    assert detail["registration_authority"] == 777


# Create request: documented errors ----------------------------------------------------------

CREATE_ERRORS = [
    pytest.param({"mobile_phone_number": None}, 400, "Missing parameter: mobile_phone_number required",
                 id="missing-phone"),
    pytest.param({"mobile_phone_number": "600000001"}, 400,
                 "Please use the mobile phone number with an international prefix", id="phone-without-prefix"),
    pytest.param({"email": "not-an-email"}, 400, "Enter a valid email address", id="invalid-email"),
    pytest.param({"email": None}, 400, {"email": ["This field is required"]}, id="missing-email"),
    pytest.param({"email": ""}, 400, {"email": ["This field may not be blank"]}, id="blank-email"),
    pytest.param({"env": "prod"}, 400, "The specified environment is not available", id="env-prod"),
    pytest.param({"env": "staging"}, 400, "Environment staging does not exist", id="env-unknown"),
    pytest.param({"id_document_type": "XYZ"}, 400,
                 "The id_document_type specified is not valid. Valid options are IDC, PAS, PNO, TIN, CI, CE",
                 id="bad-id-document-type"),
    pytest.param({"id_document_country": "ESX"}, 400,
                 {"id_document_country": ["'ESX' is not a valid ISO 3166-1 alpha-2 country code"]},
                 id="bad-country"),
    pytest.param({"given_name": None, "serial_number": None}, 412,
                 "Error occured during request approval: Invalid request fields: given_name, serial_number",
                 id="missing-identity-fields"),
    pytest.param({"token": "0" * 32}, 403, "Invalid RAO Credentials", id="unknown-token"),
    pytest.param({"token": None, "username": "9001800", "password": RAO_PASSWORD, "pin": "000000"}, 404,
                 "Error getting RAO's id. Make sure the credentials are correct", id="wrong-pin"),
    pytest.param({"token": None}, 400, "Missing required parameters: incomplete RAO's credentials",
                 id="no-credentials"),
]


@pytest.mark.parametrize("multipart", [True, False], ids=["multipart", "json"])
@pytest.mark.parametrize(("changes", "http_status", "details"), CREATE_ERRORS)
async def test_create_request_error(sandbox, changes, http_status, details, multipart):
    answer = await create_raw(sandbox, multipart=multipart, **changes)
    assert_answer(answer, http_status, details)
    listing = await sandbox.call("GET", "/_mock/requests")
    assert listing.body["requests"] == []


async def test_create_request_without_env_anywhere(sandbox):
    blanked = await sandbox.call("POST", "/api/v1/settings", json={"general": {"environment": ""}})
    assert_answer(blanked, 200)
    answer = await create_raw(sandbox, env=None)
    assert_answer(answer, 400, "Missing env parameter. Please set it in settings or specify it as parameter")


async def test_create_request_malformed_json(sandbox):
    answer = await sandbox.call("POST", "/api/v1/request", data=b'{"given_name": "Ana",',
                                headers={"Content-Type": "application/json"})
    assert_answer(answer, 400)
    assert answer.body["details"].startswith("Could not parse JSON body - ")


@pytest.mark.parametrize("content_type, encode", [
    ("MULTIPART/Form-Data; BOUNDARY=b0undary",
     lambda fields: multipart_body("b0undary", [(k, None, "text/plain", v.encode()) for k, v in fields.items()])),
    ("application/x-www-form-urlencoded; charset=UTF-8", lambda fields: urlencode(fields).encode()),
    ("Application/JSON; charset=utf-8", lambda fields: json.dumps(fields).encode()),
    ("text/plain", lambda fields: json.dumps(fields).encode()),  # what some HTTP clients send for JSON
], ids=["multipart-upper-case", "urlencoded-charset", "json-charset", "json-as-text"])
async def test_create_request_reads_every_spelling_of_the_body_type(sandbox, content_type, encode):
    fields = {"token": DEFAULT_TOKEN, **IDENTITY}
    answer = await sandbox.call("POST", "/api/v1/request", data=encode(fields), headers={"Content-Type": content_type})
    assert_answer(answer, 201)
    detail = await request_detail(sandbox, answer.body["details"])
    assert (detail["given_name"], detail["surname_1"]) == (IDENTITY["given_name"], IDENTITY["surname_1"])


# Get request ---------------------------------------------------------------------------------


async def test_get_request_before_signing(sandbox):
    pk = await sandbox.create_request()
    detail = await request_detail(sandbox, pk)
    assert detail["pk"] == pk
    assert detail["status"] == "ENROLLREADY"
    for name in ("given_name", "surname_1", "surname_2", "email", "mobile_phone_number", "serial_number",
                 "id_document_type", "id_document_country", "profile"):
        assert detail[name] == IDENTITY[name], name
    assert detail["country_name"] == "ES"
    assert detail["registration_authority"] == 9999
    assert re.fullmatch(r"\d{7}", detail["scratchcard"])
    assert "validity_time" in detail
    assert isinstance(detail["approving_rao"], dict)
    assert detail["approving_rao"]["id_document_number"] == "9001800"
    assert detail["certificate_set"] == []


async def test_get_request_after_signing_lists_the_certificate(sandbox):
    pk = await sandbox.create_request()
    assert_answer(await sandbox.sign(pk, {"secret": await sandbox.otp(pk)}), 200)
    detail = await request_detail(sandbox, pk)
    assert detail["status"] == "ISSUED"
    [entry] = detail["certificate_set"]
    assert "oneshot-mock TEST Issuing CA" in entry["issuer"]
    assert "ANA LÓPEZ RUIZ" in entry["subject"]
    assert entry["valid_from"] < entry["valid_to"]
    cert = x509.load_der_x509_certificate(base64.b64decode(entry["data"], validate=True))
    assert int(entry["serial_number"], 16) == cert.serial_number
    assert "oneshot-mock TEST Issuing CA" in cert.issuer.rfc4514_string()


async def test_get_request_unknown_pk(sandbox):
    answer = await sandbox.call("GET", f"/api/v1/request/{UNKNOWN_PK}")
    assert_answer(answer, 404, "Request not found. Make sure the upload directory is correct.")


async def test_request_history_created_then_enrollready(sandbox):
    pk = await sandbox.create_request()
    history = (await sandbox.call("GET", f"/_mock/requests/{pk}")).body["history"]
    assert [(h["status"], h["previous_status"]) for h in history] == [
        ("CREATED", None), ("ENROLLREADY", "CREATED"),
    ]


async def test_request_history_records_issue(sandbox):
    pk = await sandbox.create_request()
    assert_answer(await sandbox.sign(pk, {"secret": await sandbox.otp(pk)}), 200)
    history = (await sandbox.call("GET", f"/_mock/requests/{pk}")).body["history"]
    assert [(h["status"], h["previous_status"]) for h in history] == [
        ("CREATED", None), ("ENROLLREADY", "CREATED"), ("ISSUED", "ENROLLREADY"),
    ]


# OTP ------------------------------------------------------------------------------------------


async def test_otp_without_body(sandbox):
    pk = await sandbox.create_request()
    assert_answer(await ask_otp(sandbox, pk), 200, "OTP generated")
    assert len(await outbox(sandbox, pk)) == 1


async def test_otp_with_empty_json_body(sandbox):
    pk = await sandbox.create_request()
    answer = await ask_otp(sandbox, pk, data=b"", headers={"Content-Type": "application/json"})
    assert_answer(answer, 200, "OTP generated")
    assert len(await outbox(sandbox, pk)) == 1


async def test_otp_by_whatsapp(sandbox):
    pk = await sandbox.create_request()
    assert_answer(await ask_otp(sandbox, pk, json={"delivery_method": "whatsapp"}), 200, "OTP generated")
    [message] = await outbox(sandbox, pk)
    assert message["channel"] == "whatsapp"


async def test_otp_bad_delivery_method(sandbox):
    pk = await sandbox.create_request()
    assert_answer(await ask_otp(sandbox, pk, json={"delivery_method": "pigeon"}), 400)
    assert await outbox(sandbox, pk) == []


async def test_otp_outbox_message(sandbox):
    pk = await sandbox.create_request(mobile_phone_number="+34611222333")
    assert_answer(await ask_otp(sandbox, pk), 200)
    [message] = await outbox(sandbox, pk)
    assert message["request"] == pk
    assert message["to"] == "+34611222333"
    assert message["channel"] == "sms"
    assert re.fullmatch(r"\d{6}", message["otp"])
    assert message["otp"] in message["text"]
    assert datetime.fromisoformat(message["sent_at"])


LANGUAGE_MARKERS = {"ES": "código", "EN": "code", "PL": "kod"}


@pytest.mark.parametrize(("language", "expected"), [(None, "ES"), ("ES", "ES"), ("EN", "EN"), ("PL", "PL")])
async def test_otp_text_language(sandbox, language, expected):
    pk = await sandbox.create_request(communication_language=language)
    await sandbox.otp(pk)
    [message] = await outbox(sandbox, pk)
    for lang, marker in LANGUAGE_MARKERS.items():
        assert (marker in message["text"]) == (lang == expected), (lang, message["text"])


async def test_otp_before_upload_signs_later_document(sandbox):
    pk = await sandbox.create_request()
    code = await sandbox.otp(pk)
    uid = await sandbox.upload_pdf(pk)
    assert_answer(await sandbox.sign(pk, {"secret": code}), 200, "Documents correctly signed")
    assert (await sandbox.signed(pk, uid)).startswith(b"%PDF-")


async def test_otp_again_too_soon(sandbox):
    pk = await sandbox.create_request()
    await sandbox.otp(pk)
    assert_answer(await ask_otp(sandbox, pk), 412, TOO_SOON)
    assert len(await outbox(sandbox, pk)) == 1


async def test_otp_resend_replaces_the_first_code(make_client):
    sandbox = await make_client(otp_resend_seconds=0)
    pk = await sandbox.create_request()
    first = await sandbox.otp(pk)
    second = await sandbox.otp(pk)
    assert first != second
    assert len(await outbox(sandbox, pk)) == 2
    assert_answer(await sandbox.sign(pk, {"secret": first}), 403, INVALID_CODE)
    assert_answer(await sandbox.sign(pk, {"secret": second}), 200)


async def test_otp_on_issued_request(sandbox):
    pk = await sandbox.create_request()
    assert_answer(await sandbox.sign(pk, {"secret": await sandbox.otp(pk)}), 200)
    answer = await ask_otp(sandbox, pk)
    assert_answer(answer, 412, "Error occured during OTP generation: Invalid request status")


async def test_otp_unknown_pk(sandbox):
    answer = await ask_otp(sandbox, UNKNOWN_PK)
    assert_answer(answer, 404, f"Request {UNKNOWN_PK} not found. Cannot send OTP secret")


@pytest.mark.parametrize("path", ["/api/v1/otp", "/api/v1/otp/"])
async def test_otp_without_pk(sandbox, path):
    answer = await sandbox.call("POST", path)
    assert_answer(answer, 400, "Missing parameters: Request's pk not specified")


async def test_otp_fixed_code(make_client):
    sandbox = await make_client(otp="111111")
    pk = await sandbox.create_request()
    assert await sandbox.otp(pk) == "111111"
    assert_answer(await sandbox.sign(pk, {"secret": "111111"}), 200)


async def first_pk_and_otp(make_client, seed: int) -> tuple[int, str]:
    sandbox = await make_client(seed=seed)
    pk = await sandbox.create_request()
    return pk, await sandbox.otp(pk)


async def test_same_seed_gives_same_pks_and_otps(make_client):
    assert await first_pk_and_otp(make_client, 7) == await first_pk_and_otp(make_client, 7)


async def test_different_seeds_give_different_pks_and_otps(make_client):
    first_pk, first_otp = await first_pk_and_otp(make_client, 7)
    other_pk, other_otp = await first_pk_and_otp(make_client, 8)
    assert first_pk != other_pk
    assert first_otp != other_otp


# Sign: authentication errors ------------------------------------------------------------------


async def test_sign_without_secret(sandbox):
    pk = await sandbox.create_request()
    await sandbox.otp(pk)
    assert_answer(await sandbox.sign(pk, {}), 400, "Missing required parameter: 'secret'")


async def test_sign_ext_unlock_type_without_value(sandbox):
    pk = await sandbox.create_request()
    answer = await sandbox.sign(pk, {"secret": "customer-code", "ext_unlock_type": "biometric"})
    assert_answer(answer, 400, "Missing required parameter: 'ext_unlock_value'")
    assert (await request_detail(sandbox, pk))["status"] == "ENROLLREADY"


async def test_sign_wrong_code(sandbox):
    pk = await sandbox.create_request()
    code = await sandbox.otp(pk)
    assert_answer(await sandbox.sign(pk, {"secret": other_code(code)}), 403, INVALID_CODE)
    assert (await request_detail(sandbox, pk))["status"] == "ENROLLREADY"


async def test_sign_right_code_after_two_wrong_ones(sandbox):
    pk = await sandbox.create_request()
    code = await sandbox.otp(pk)
    for _ in range(2):
        assert_answer(await sandbox.sign(pk, {"secret": other_code(code)}), 403, INVALID_CODE)
    assert_answer(await sandbox.sign(pk, {"secret": code}), 200)


async def test_sign_three_wrong_codes_kill_the_code(sandbox):
    pk = await sandbox.create_request()
    code = await sandbox.otp(pk)
    for _ in range(3):
        assert_answer(await sandbox.sign(pk, {"secret": other_code(code)}), 403, INVALID_CODE)
    assert_answer(await sandbox.sign(pk, {"secret": code}), 403, INVALID_CODE)
    assert (await request_detail(sandbox, pk))["status"] == "ENROLLREADY"


async def test_sign_expired_code(make_client):
    sandbox = await make_client(otp_ttl_seconds=0.3)
    pk = await sandbox.create_request()
    code = await sandbox.otp(pk)
    await asyncio.sleep(0.5)
    assert_answer(await sandbox.sign(pk, {"secret": code}), 403, INVALID_CODE)


async def test_sign_without_requesting_otp(sandbox):
    pk = await sandbox.create_request()
    assert_answer(await sandbox.sign(pk, {"secret": "123456"}), 403, INVALID_CODE)
    assert (await request_detail(sandbox, pk))["status"] == "ENROLLREADY"


async def test_sign_unknown_pk(sandbox):
    answer = await sandbox.sign(UNKNOWN_PK, {"secret": "123456"})
    assert_answer(answer, 404, f"Request {UNKNOWN_PK} not found. Cannot sign documents")


async def test_sign_twice(sandbox):
    pk = await sandbox.create_request()
    assert_answer(await sandbox.sign(pk, {"secret": await sandbox.otp(pk)}), 200)
    assert_answer(await sandbox.sign(pk, {"secret": "123456"}), 412, "Request already in ISSUED status")


# Sign: options errors -------------------------------------------------------------------------


async def test_sign_options_for_unknown_document(sandbox):
    pk = await sandbox.create_request()
    await sandbox.upload_pdf(pk)
    missing = "8af62bff-9d21-4416-a2c7-8d0e6c70605a"
    body = {"secret": await sandbox.otp(pk), "options": {missing: {"position": "50,60,250,140", "page": 0}}}
    answer = await sandbox.sign(pk, body)
    assert_answer(answer, 404)
    assert answer.body["details"].startswith("The following documents are not found in Request's folders")
    assert missing in answer.body["details"]


@pytest.mark.parametrize(("block", "missing"), [
    ({}, "position"),
    ({"page": 0}, "position"),
    ({"position": "50,60,250,140"}, "page"),
])
async def test_sign_options_missing_image_parameter(sandbox, block, missing):
    pk = await sandbox.create_request()
    uid = await sandbox.upload_pdf(pk)
    answer = await sandbox.sign(pk, {"secret": await sandbox.otp(pk), "options": {uid: block}})
    assert_answer(answer, 400, {uid: f"Missing required parameter '{missing}' for file {uid}"})


async def test_sign_options_unknown_image(sandbox):
    pk = await sandbox.create_request()
    uid = await sandbox.upload_pdf(pk)
    image = "13705f52-3211-49a8-9807-b65b8da25f3"
    body = {"secret": await sandbox.otp(pk),
            "options": {uid: {"position": "50,60,250,140", "page": 0, "image": image}}}
    answer = await sandbox.sign(pk, body)
    assert_answer(answer, 404, {uid: f"The image {image} cannot be found on disk"})


async def test_sign_options_page_beyond_document(sandbox):
    pk = await sandbox.create_request()
    uid = await sandbox.upload_pdf(pk, blank_pdf(2))
    body = {"secret": await sandbox.otp(pk), "options": {uid: {"position": "50,60,250,140", "page": 2}}}
    answer = await sandbox.sign(pk, body)
    assert_answer(answer, 400)
    assert list(answer.body["details"]) == [uid]


async def test_sign_unknown_metadata(sandbox):
    pk = await sandbox.create_request()
    await sandbox.upload_pdf(pk)
    answer = await sandbox.sign(pk, {"secret": await sandbox.otp(pk), "metadata": "0" * 32})
    assert_answer(answer, 404, "Metadata not found on disk")
    assert (await request_detail(sandbox, pk))["status"] == "ENROLLREADY"


# Sign: accepted variants ----------------------------------------------------------------------


async def test_sign_request_without_documents_signs_the_contract(sandbox):
    pk = await sandbox.create_request()
    assert_answer(await sandbox.sign(pk, {"secret": await sandbox.otp(pk)}), 200, "Documents correctly signed")
    assert (await request_detail(sandbox, pk))["status"] == "ISSUED"
    contract = await sandbox.call("GET", f"/api/v1/document/{pk}/contract")
    assert contract.status == 200 and contract.content_type == "application/pdf"
    assert len(PdfFileReader(io.BytesIO(contract.raw)).embedded_signatures) == 1


@pytest.mark.parametrize(("page", "position"), [
    (1, "50,60,250,140"),
    ("1", "50,60,250,140"),
    (1, "50, 60, 250, 140"),
    ("1", " 50 , 60 , 250 , 140 "),
])
async def test_sign_options_page_and_position_forms(sandbox, page, position):
    pk = await sandbox.create_request()
    uid = await sandbox.upload_pdf(pk, blank_pdf(2))
    body = {"secret": await sandbox.otp(pk), "options": {uid: {"position": position, "page": page}}}
    assert_answer(await sandbox.sign(pk, body), 200)
    pdf = await sandbox.signed(pk, uid)
    assert signature_rect(pdf) == [50.0, 60.0, 250.0, 140.0]
    assert signature_page(pdf) == 1


async def test_sign_accepts_unknown_keys(sandbox):
    pk = await sandbox.create_request()
    uid = await sandbox.upload_pdf(pk)
    body = {"secret": await sandbox.otp(pk), "disable_ltv": True, "some_future_flag": "x",
            "options": {uid: {"position": "50,60,250,140", "page": 0, "horizontal": "true"}}}
    assert_answer(await sandbox.sign(pk, body), 200)
    assert signature_rect(await sandbox.signed(pk, uid)) == [50.0, 60.0, 250.0, 140.0]


async def test_sign_without_signature_text(sandbox):
    pk = await sandbox.create_request()
    uid = await sandbox.upload_pdf(pk)
    image = (await sandbox.upload_image(picture())).body["details"]
    body = {"secret": await sandbox.otp(pk), "use_signature_text": False,
            "options": {uid: {"position": "50,60,250,140", "page": 0, "image": image}}}
    assert_answer(await sandbox.sign(pk, body), 200)
    pdf = await sandbox.signed(pk, uid)
    assert signature_rect(pdf) == [50.0, 60.0, 250.0, 140.0]
    assert not any(appearance_strings(pdf)), appearance_strings(pdf)


async def test_sign_legacy_flat_options_apply_to_every_document(sandbox):
    pk = await sandbox.create_request()
    uids = [await sandbox.upload_pdf(pk), await sandbox.upload_pdf(pk, blank_pdf(2), "second.pdf")]
    image = (await sandbox.upload_image(picture())).body["details"]
    body = {"secret": await sandbox.otp(pk),
            "options": {"position": "100,100,300,200", "page": 0, "image": image}}
    assert_answer(await sandbox.sign(pk, body), 200)
    for uid in uids:
        pdf = await sandbox.signed(pk, uid)
        assert signature_rect(pdf) == [100.0, 100.0, 300.0, 200.0]
        assert signature_page(pdf) == 0
