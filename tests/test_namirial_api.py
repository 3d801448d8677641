"""The newer Namirial API family under ``/oneshot/api/v1``, driven over HTTP like a client would.

Expected paths, envelopes and texts come from the API notes §6 and the issue "The newer Namirial
API family": the same sandbox as the legacy family, answering ``{"status": "success", "message",
"details"|"detail"}``, and the legacy catalogue's errors in ``{"status": "error", ...}``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import subprocess
from http import HTTPStatus
from typing import Any

import aiohttp
import pytest
from pyhanko.pdf_utils.reader import PdfFileReader

from mock_server.domain.fakes import fake_evidences
from tests.helpers import IDENTITY, Answer, SandboxClient, blank_pdf, picture, validate

NEW = "/oneshot/api/v1"
NAMIRIAL_TOKEN = "3bf8d8eb-d96c-41ea-83ad-d78a7016c7da"
RAO = {"username": "9001800", "password": "oneshot-mock", "pin": "123456"}
CONTACT = {"email": "eva.martin@example.com", "mobile_phone_number": "+34600000002"}
EXTERNAL_RA = "9998"
VIDEO = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + bytes(range(256)) * 8
ASYNC_MESSAGE = "Your documents are going to be signed. You will receive them in a few seconds"
SIGNER_CN = "ANA LÓPEZ RUIZ"
NEW_WEBHOOK_KEYS = {"event_type", "sent_at", "request", "certificates"}


# Answers of the newer family -------------------------------------------------------------------


def success(answer: Answer, http_status: int = 200, message_key: str | None = "message") -> dict[str, Any]:
    """The body of a success answer, checked to be ``{"status": "success", "message": ...}`` (the
    message under ``message_key``; none at all where that is None, as a document upload has)."""
    assert answer.status == http_status, (answer.status, answer.body)
    assert answer.content_type == "application/json", answer.raw[:200]
    assert answer.body["status"] == "success", answer.body
    if message_key is not None:
        assert isinstance(answer.body[message_key], str), answer.body
    return answer.body


def error(answer: Answer, http_status: int, key: str | None, message: str | None = None) -> dict[str, Any]:
    """The ``details`` of an error answer in the newer envelope, checked key by key
    (the catalogue key too unless ``key`` is None)."""
    assert answer.status == http_status, (answer.status, answer.body)
    assert answer.content_type == "application/json", answer.raw[:200]
    body = answer.body
    assert set(body) == {"status", "message", "details"}, body
    assert body["status"] == "error", body
    details = body["details"]
    assert set(details) == {"code", "error", "vendor_status", "vendor_details"}, details
    assert details["code"] == http_status, details
    assert isinstance(details["error"], str) and details["error"] == (key or details["error"]), details
    assert details["vendor_status"] == f"{http_status} {HTTPStatus(http_status).phrase}", details
    if message is not None:
        assert body["message"] == message, body
    return details


# Client calls of the newer family -----------------------------------------------------------------


async def create_raw(sandbox: SandboxClient, *, multipart: bool = True, **changes: Any) -> Answer:
    fields = {k: v for k, v in {**IDENTITY, **changes}.items() if v is not None}
    if not multipart:
        return await sandbox.call("POST", f"{NEW}/create", json=fields)
    form = aiohttp.FormData()
    for key, value in fields.items():
        form.add_field(key, str(value))
    return await sandbox.call("POST", f"{NEW}/create", data=form)


async def create(sandbox: SandboxClient, *, multipart: bool = True, **changes: Any) -> int:
    """A request created through ``POST /create``; its pk."""
    body = success(await create_raw(sandbox, multipart=multipart, **changes), 201)
    assert set(body["details"]) == {"request_pk", "status", "asyncmode"}, body
    pk = body["details"]["request_pk"]
    assert isinstance(pk, int) and not isinstance(pk, bool), body
    return pk


async def upload(sandbox: SandboxClient, pk: int, *parts: tuple[str, str, bytes]) -> Answer:
    """One upload call of ``(field, filename, bytes)`` parts; ``hashfile*`` parts go as JSON."""
    form = aiohttp.FormData()
    for name, filename, data in parts:
        kind = "application/json" if name.startswith("hashfile") else "application/pdf"
        form.add_field(name, data, filename=filename, content_type=kind)
    return await sandbox.call("POST", f"{NEW}/document/{pk}", data=form)


async def upload_one(sandbox: SandboxClient, pk: int, data: bytes | None = None, name: str = "file",
                     filename: str = "doc.pdf") -> str:
    """Upload one part; its document uid."""
    body = success(await upload(sandbox, pk, (name, filename, blank_pdf() if data is None else data)), message_key=None)
    detail = body["detail"]
    assert set(detail) == {"name", "uid"} and detail["name"] == name, body
    return detail["uid"]


async def otp(sandbox: SandboxClient, pk: int) -> str:
    """Ask for an OTP through the newer family and read it from the sandbox's SMS outbox."""
    success(await sandbox.call("POST", f"{NEW}/otp/{pk}"))
    outbox = await sandbox.call("GET", f"/_mock/sms?request={pk}")
    return outbox.body["messages"][-1]["otp"]


async def sign(sandbox: SandboxClient, pk: int, body: dict[str, Any]) -> Answer:
    return await sandbox.call("POST", f"{NEW}/sign/{pk}", json=body)


async def sign_with_otp(sandbox: SandboxClient, pk: int, **extra: Any) -> None:
    answer = await sign(sandbox, pk, {"secret": await otp(sandbox, pk), **extra})
    assert success(answer)["message"] == "Documents correctly signed", answer.body


async def document(sandbox: SandboxClient, pk: int, uid: str, kind: str = "signed") -> Answer:
    return await sandbox.call("GET", f"{NEW}/document/{pk}/{uid}?document_type={kind}")


async def signed_pdf(sandbox: SandboxClient, pk: int, uid: str) -> bytes:
    answer = await document(sandbox, pk, uid)
    assert answer.status == 200 and answer.content_type == "application/pdf", (answer.status, answer.body)
    return answer.raw


async def request_detail(sandbox: SandboxClient, pk: int) -> dict[str, Any]:
    return success(await sandbox.call("GET", f"{NEW}/request/{pk}"))["details"]


async def status_of(sandbox: SandboxClient, pk: int) -> str:
    return (await request_detail(sandbox, pk))["status"]


async def upload_image(sandbox: SandboxClient, data: bytes) -> Answer:
    form = aiohttp.FormData()
    form.add_field("image", data, filename="firma.png", content_type="image/png")
    return await sandbox.call("POST", f"{NEW}/image", data=form)


async def assert_valid_signature(pdf: bytes) -> None:
    """The checks the legacy classic flow makes on its signed PDFs."""
    status = await validate(pdf)
    assert status.bottom_line, status.pretty_print_details()
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    assert status.signing_cert.subject.native["common_name"] == SIGNER_CN


# 1. The acceptance: the classic flow through /oneshot/api/v1 ---------------------------------------


@pytest.mark.parametrize("multipart", [True, False], ids=["multipart", "json"])
@pytest.mark.parametrize("credentials", [{"token": NAMIRIAL_TOKEN}, {}], ids=["sandbox-token", "no-credentials"])
async def test_classic_flow_through_the_newer_family(sandbox, credentials, multipart):
    token = success(await sandbox.call("GET", f"{NEW}/token/{NAMIRIAL_TOKEN}"))["details"]

    pk = await create(sandbox, multipart=multipart, **credentials)
    detail = await request_detail(sandbox, pk)
    assert detail["approving_rao"]["id_document_number"] == token["username"], "the sandbox token's RAO"

    uid = await upload_one(sandbox, pk, blank_pdf(2), filename="contrato.pdf")
    await sign_with_otp(sandbox, pk)

    await assert_valid_signature(await signed_pdf(sandbox, pk, uid))
    assert (await request_detail(sandbox, pk))["status"] == "ISSUED"
    state = success(await sandbox.call("GET", f"{NEW}/request/{pk}/status"))["details"]
    assert state["status"] == "ISSUED", state


# 2. Hash flow --------------------------------------------------------------------------------------


async def test_hash_flow_through_the_newer_family(sandbox, openssl, tmp_path):
    content = tmp_path / "contrato.txt"
    content.write_bytes(b"Contrato de prestacion de servicios\n" * 100 + bytes(range(256)))
    hash_file = {
        "messageDigest": base64.b64encode(hashlib.sha256(content.read_bytes()).digest()).decode(),
        "digestAlgorithm": "sha256",
        "addAuthAttribute": 1,
        "addSigningTime": 1,
        "otherAuthAttributes": [],
    }
    pk = await create(sandbox, token=NAMIRIAL_TOKEN)
    uid = await upload_one(sandbox, pk, json.dumps(hash_file).encode(), name="hashfile", filename="hash.json")
    await sign_with_otp(sandbox, pk)

    answer = await document(sandbox, pk, uid, "signed")
    assert answer.status == 200 and answer.content_type == "application/pkcs7-mime", (answer.status, answer.body)
    signature = tmp_path / "contrato.p7m"
    signature.write_bytes(answer.raw)
    ca = tmp_path / "ca.pem"
    ca.write_bytes((await sandbox.call("GET", "/_mock/pki/ca.pem")).raw)
    verified = subprocess.run(
        [openssl, "cms", "-verify", "-binary", "-inform", "DER", "-in", str(signature),
         "-content", str(content), "-CAfile", str(ca), "-out", "/dev/null"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert verified.returncode == 0, verified.stderr


# 3. Asynchronous mode and the new webhook format ----------------------------------------------------


async def test_async_request_sends_new_format_webhooks(receiver, make_client):
    # The sandbox-wide default stays legacy: the new format must come from the API family.
    sandbox = await make_client(webhook_format="legacy", webhook_retry_scale=0.01)
    pk = await create(sandbox, multipart=False, asyncmode=True, callback=receiver.url)
    await upload_one(sandbox, pk)

    answer = await sign(sandbox, pk, {"secret": await otp(sandbox, pk)})
    assert answer.body == {"status": "success", "message": ASYNC_MESSAGE}, answer.body

    payloads = [d.json for d in await receiver.wait_for(3, timeout=30)]
    assert all(set(p) == NEW_WEBHOOK_KEYS for p in payloads), payloads
    assert [(p["event_type"], p["request"]["status"]) for p in payloads] == [
        ("REQUEST_CREATED", "CREATED"), ("REQUEST_APPROVED", "ENROLLREADY"), ("REQUEST_ENROLLED", "ISSUED"),
    ]
    assert {p["request"]["pk"] for p in payloads} == {pk}
    assert all(re.fullmatch(r"\d{14}", p["sent_at"]) for p in payloads), payloads
    certificates = payloads[2]["certificates"]
    assert certificates and all(c["status"] == "VALID" for c in certificates), certificates


# 4. VideoID keyed by videoid_pk ------------------------------------------------------------------


async def create_videoid(sandbox: SandboxClient, ra: str = EXTERNAL_RA) -> Answer:
    body = {**CONTACT, "registration_authority": ra, "profile": "PFnubeQAFCiudadano", "env": "sandbox"}
    return await sandbox.call("POST", f"{NEW}/videoid", json=body)


async def videoid_in_review(sandbox: SandboxClient) -> tuple[int, int]:
    """An external-mode VideoID with evidences and video sent through the newer family:
    ``(videoid_pk, request_pk)`` in VIDEOREVIEW."""
    detail = success(await create_videoid(sandbox), message_key="messsage")["detail"]
    videoid_pk, request_pk = detail["videoid_pk"], detail["request_pk"]
    success(await sandbox.call("POST", f"{NEW}/videoid/{videoid_pk}/evidences", json=fake_evidences(5)))
    form = aiohttp.FormData()
    form.add_field("video", VIDEO, filename="identification.mp4", content_type="video/mp4")
    success(await sandbox.call("POST", f"{NEW}/videoid/{videoid_pk}/video", data=form))
    assert await status_of(sandbox, request_pk) == "VIDEOREVIEW"
    return videoid_pk, request_pk


async def test_videoid_approve_by_videoid_pk(sandbox):
    videoid_pk, request_pk = await videoid_in_review(sandbox)
    answer = await sandbox.call("POST", f"{NEW}/videoid/{videoid_pk}/approve", json={"token": NAMIRIAL_TOKEN})
    success(answer)
    assert await status_of(sandbox, request_pk) == "ENROLLREADY"


async def test_videoid_refuse_by_videoid_pk(sandbox):
    videoid_pk, request_pk = await videoid_in_review(sandbox)
    answer = await sandbox.call("POST", f"{NEW}/videoid/{videoid_pk}/refuse",
                                json={"token": NAMIRIAL_TOKEN, "reason": "blurry document"})
    success(answer)
    assert await status_of(sandbox, request_pk) == "CANCELLED"


# Each newer VideoID call and the legacy call it stands for.
LEGACY_VIDEOID_CALLS = {
    "approve": "/api/v1/requests/{pk}/approve",
    "refuse": "/api/v1/videoid/{pk}/refuse",
    "evidences": "/api/v1/videoid/{pk}/evidences",
    "video": "/api/v1/videoid/{pk}/evidences/video",
}


async def videoid_call(sandbox: SandboxClient, path: str, action: str) -> Answer:
    if action == "video":
        form = aiohttp.FormData()
        form.add_field("video", VIDEO, filename="identification.mp4", content_type="video/mp4")
        return await sandbox.call("POST", path, data=form)
    body = {"token": NAMIRIAL_TOKEN, "reason": "late"} if action in ("approve", "refuse") else fake_evidences(5)
    return await sandbox.call("POST", path, json=body)


@pytest.mark.parametrize("action", sorted(LEGACY_VIDEOID_CALLS))
async def test_unknown_videoid_pk_is_404_in_the_new_envelope(sandbox, action):
    legacy = await videoid_call(sandbox, LEGACY_VIDEOID_CALLS[action].format(pk=999999), action)
    assert legacy.status == 404, legacy.body
    answer = await videoid_call(sandbox, f"{NEW}/videoid/999999/{action}", action)
    assert answer.status == 404, answer.body
    details = error(answer, 404, None, legacy.body["details"])
    assert re.fullmatch(r"[a-z_]+\.404\.[a-z_]+", details["error"]), details
    assert (details["vendor_status"], details["vendor_details"]) == (legacy.body["status"], legacy.body["details"])


async def test_videoid_calls_are_not_keyed_by_request_pk(sandbox):
    videoid_pk, request_pk = await videoid_in_review(sandbox)
    assert request_pk != videoid_pk, "the check below needs two different numbers"
    answer = await sandbox.call("POST", f"{NEW}/videoid/{request_pk}/approve", json={"token": NAMIRIAL_TOKEN})
    assert answer.status == 404, answer.body
    assert answer.body["status"] == "error", answer.body
    assert await status_of(sandbox, request_pk) == "VIDEOREVIEW"


# 5. One sandbox, both families ---------------------------------------------------------------------


async def test_legacy_request_is_read_and_signed_through_the_newer_family(sandbox):
    pk = await sandbox.create_request()
    uid = await sandbox.upload_pdf(pk)
    detail = await request_detail(sandbox, pk)
    assert (detail["pk"], detail["given_name"]) == (pk, IDENTITY["given_name"])

    await sign_with_otp(sandbox, pk)
    await assert_valid_signature(await signed_pdf(sandbox, pk, uid))


async def test_newer_request_is_signed_and_downloaded_through_the_legacy_family(sandbox):
    pk = await create(sandbox)
    uid = await upload_one(sandbox, pk)
    answer = await sandbox.sign(pk, {"secret": await sandbox.otp(pk)})
    assert answer.body == {"status": "200 OK", "details": "Documents correctly signed"}, answer.body
    await assert_valid_signature(await sandbox.signed(pk, uid))


# 6. Envelopes, key by key ----------------------------------------------------------------------------


async def test_token_lifecycle_envelopes(sandbox):
    created = success(await sandbox.call("POST", f"{NEW}/token", json=RAO))
    assert created["message"] == "Token created"
    assert set(created["details"]) == {"token_uid"}, created
    uid = created["details"]["token_uid"]

    shown = success(await sandbox.call("GET", f"{NEW}/token/{uid}"))
    assert shown["details"]["username"] == RAO["username"], shown
    assert uid in success(await sandbox.call("GET", f"{NEW}/tokens"))["details"]

    success(await sandbox.call("DELETE", f"{NEW}/token/{uid}"))
    error(await sandbox.call("GET", f"{NEW}/token/{uid}"), 404, "get_token.404.not_found")


async def test_image_lifecycle_envelopes(sandbox):
    data = picture()
    created = success(await upload_image(sandbox, data))
    assert set(created["details"]) == {"image_uid"}, created
    uid = created["details"]["image_uid"]
    assert created["message"] == f"Image uploaded with uid '{uid}'"

    shown = await sandbox.call("GET", f"{NEW}/image/{uid}")
    assert (shown.status, shown.content_type, shown.raw) == (200, "image/png", data)
    assert uid in success(await sandbox.call("GET", f"{NEW}/images"))["details"]

    success(await sandbox.call("DELETE", f"{NEW}/image/{uid}"))
    error(await sandbox.call("GET", f"{NEW}/image/{uid}"), 404, "retrieve_image.404.not_found")


async def test_document_upload_detail_is_one_object_for_one_file(sandbox):
    pk = await create(sandbox)
    body = success(await upload(sandbox, pk, ("file", "doc.pdf", blank_pdf())), message_key=None)
    assert set(body) == {"status", "detail"}, body
    assert set(body["detail"]) == {"name", "uid"} and body["detail"]["name"] == "file", body


async def test_document_upload_detail_is_a_list_for_two_files(sandbox):
    pk = await create(sandbox)
    body = success(await upload(sandbox, pk, ("file", "one.pdf", blank_pdf()), ("file2", "two.pdf", blank_pdf())),
                   message_key=None)
    assert set(body) == {"status", "detail"}, body
    detail = body["detail"]
    assert isinstance(detail, list) and [d["name"] for d in detail] == ["file", "file2"], body
    assert all(set(d) == {"name", "uid"} for d in detail) and detail[0]["uid"] != detail[1]["uid"], body


async def test_delete_all_documents_message(sandbox):
    pk = await create(sandbox)
    uid = await upload_one(sandbox, pk)
    answer = await sandbox.call("DELETE", f"{NEW}/document/{pk}")
    assert success(answer)["message"] == f"Documents deleted for Request {pk}"
    error(await document(sandbox, pk, uid, "original"), 404, "retrieve_document.404.not_found")


async def test_videoid_create_envelope(sandbox):
    body = success(await create_videoid(sandbox), message_key="messsage")
    assert set(body) == {"status", "messsage", "detail"}, body
    detail = body["detail"]
    assert set(detail) == {"videoid_pk", "videoid_link", "request_pk"}, detail
    assert body["messsage"] == f"VideoID created with pk {detail['videoid_pk']}"
    assert await status_of(sandbox, detail["request_pk"]) == "VIDEOPENDING"


async def test_wrong_otp_error_envelope(sandbox):
    pk = await create(sandbox)
    await upload_one(sandbox, pk)
    code = await otp(sandbox, pk)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    answer = await sign(sandbox, pk, {"secret": wrong})
    assert answer.body == {"status": "error", "message": "Confirmation Code invalid", "details": {
        "code": 403, "error": "sign.403.invalid_otp", "vendor_status": "403 Forbidden",
        "vendor_details": "Confirmation Code invalid",
    }}, answer.body
    assert answer.status == 403


async def test_unknown_request_error_envelope_carries_the_legacy_answer(sandbox):
    legacy = await sandbox.call("GET", "/api/v1/request/999999")
    assert legacy.status == 404, legacy.body
    details = error(await sandbox.call("GET", f"{NEW}/request/999999"), 404, "get_request.404.not_found",
                    legacy.body["details"])
    assert (details["vendor_status"], details["vendor_details"]) == (legacy.body["status"], legacy.body["details"])


async def test_unknown_route_error_envelope(sandbox):
    answer = await sandbox.call("GET", f"{NEW}/no-such-route")
    error(answer, 404, "api.404.unknown_route")
    assert f"{NEW}/no-such-route" in answer.body["message"], answer.body


async def test_prod_environment_is_refused_like_legacy(sandbox):
    answer = await create_raw(sandbox, env="prod")
    error(answer, 400, "create_request.400.environment_unavailable", "The specified environment is not available")
    assert (await sandbox.call("GET", "/_mock/requests")).body["requests"] == []


# 7. signature.appearance ------------------------------------------------------------------------------


def signature_field(pdf: bytes):
    return PdfFileReader(io.BytesIO(pdf)).embedded_signatures[0].sig_field


def signature_page(pdf: bytes) -> int:
    """The index of the page whose annotations hold the signature field."""
    reader = PdfFileReader(io.BytesIO(pdf))
    name = reader.embedded_signatures[0].sig_field["/T"]
    for index, page in enumerate(reader.root["/Pages"]["/Kids"]):
        if any(annot.get_object().get("/T") == name for annot in page.get_object().get("/Annots", [])):
            return index
    raise AssertionError("the signature field is on no page")


def appearance_streams(pdf: bytes) -> list:
    """The signature's normal appearance and every XObject it draws."""
    pending, found = [signature_field(pdf)["/AP"]["/N"].get_object()], []
    while pending:
        stream = pending.pop()
        found.append(stream)
        resources = stream.get("/Resources")
        pending.extend(ref.get_object() for ref in (resources or {}).get("/XObject", {}).values())
    return found


def shown_text(pdf: bytes) -> list[str]:
    """Every literal string the appearance shows with Tj (image streams skipped)."""
    content = b"".join(s.data for s in appearance_streams(pdf) if s.get("/Subtype") != "/Image")
    strings = re.findall(rb"\(((?:[^()\\]|\\.)*)\)\s*Tj", content)
    decode = lambda m: bytes([int(m.group(1), 8)])  # noqa: E731
    return [re.sub(rb"\\([0-7]{1,3})", decode, raw).decode("latin-1") for raw in strings]


@pytest.mark.parametrize("image_source", ["b64_image", "image"])
async def test_signature_appearance_places_text_and_image(sandbox, image_source):
    pk = await create(sandbox)
    uid = await upload_one(sandbox, pk, blank_pdf(3))
    if image_source == "image":
        image = {"image": success(await upload_image(sandbox, picture()))["details"]["image_uid"]}
    else:
        image = {"b64_image": base64.b64encode(picture()).decode()}
    appearance = {"text": "Signed in the sandbox\nOneShot test", "position": "50,60,250,140", "page": 1, **image}
    await sign_with_otp(sandbox, pk, signature={"appearance": appearance})

    pdf = await signed_pdf(sandbox, pk, uid)
    assert [float(v) for v in signature_field(pdf)["/Rect"]] == [50.0, 60.0, 250.0, 140.0]
    assert signature_page(pdf) == 1
    assert shown_text(pdf)[:2] == ["Signed in the sandbox", "OneShot test"]
    assert any(s.get("/Subtype") == "/Image" for s in appearance_streams(pdf))
    await assert_valid_signature(pdf)


async def test_signature_appearance_with_bad_base64_is_refused(sandbox):
    pk = await create(sandbox)
    uid = await upload_one(sandbox, pk)
    appearance = {"position": "50,60,250,140", "page": 0, "b64_image": "%%% not base64 %%%"}
    answer = await sign(sandbox, pk, {"secret": await otp(sandbox, pk), "signature": {"appearance": appearance}})
    error(answer, 400, "sign.400.invalid_options")
    assert (await document(sandbox, pk, uid, "signed")).status == 404, "nothing was signed"


# 8. Documents and contract -----------------------------------------------------------------------------


async def test_original_document_is_the_uploaded_bytes(sandbox):
    pk = await create(sandbox)
    pdf = blank_pdf(2)
    uid = await upload_one(sandbox, pk, pdf)
    answer = await document(sandbox, pk, uid, "original")
    assert (answer.status, answer.content_type) == (200, "application/pdf"), answer.body
    assert answer.raw == pdf


async def test_deleted_document_is_gone(sandbox):
    pk = await create(sandbox)
    body = success(await upload(sandbox, pk, ("file", "one.pdf", blank_pdf()), ("file2", "two.pdf", blank_pdf(2))),
                   message_key=None)
    kept, deleted = (d["uid"] for d in body["detail"])
    success(await sandbox.call("DELETE", f"{NEW}/document/{pk}/{deleted}"))
    error(await document(sandbox, pk, deleted, "original"), 404, "retrieve_document.404.not_found")
    assert (await document(sandbox, pk, kept, "original")).status == 200


@pytest.mark.parametrize("suffix", ["", "/"], ids=["plain", "trailing-slash"])
async def test_contract(sandbox, suffix):
    pk = await create(sandbox)
    answer = await sandbox.call("GET", f"{NEW}/contract/{pk}{suffix}")
    assert (answer.status, answer.content_type) == (200, "application/pdf"), answer.body
    assert answer.raw.startswith(b"%PDF-")
