"""Every operation of ``/oneshot/api/v1`` answers as the vendor's current pages document it.

One row per documented example: the operation, the call, the documented HTTP status, the answer's
top-level keys, the literal texts the page gives and the content type of binary answers. Pages:

- REF: docs.namirial.app → One-Shot → OpenAPI reference (tags Tokens, Requests, Documents, Images,
  Video ID, Settings);
- MIGRATION: "Migrate REST API clients from old Optimizer to New Optimizer One-Shot" (create
  request answer, the sign body's ``signature.appearance``, the removed settings calls);
- ASYNC: One-Shot → "Asynchronous flow" (``asyncmode`` of a request created with ``useasync``);
- VIDEOID: One-Shot → "VideoID external" ("Download Videoid Video") and the VideoID create example
  (its ``messsage`` key, ``profile`` required);
- SAMPLES: the vendor's code samples (legacy family: a VideoID ``webhook_url`` without a scheme; a
  valid token sent with placeholder credentials).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from cryptography import x509

from mock_server.api.namirial import ROUTES
from mock_server.domain.fakes import fake_evidences
from tests.helpers import DEFAULT_TOKEN, IDENTITY, Answer, SandboxClient, blank_pdf, picture
from tests.test_namirial_api import (
    NEW,
    RAO,
    VIDEO,
    create,
    create_videoid,
    otp,
    shown_text,
    sign,
    signed_pdf,
    upload_one,
)

REF, MIGRATION, ASYNC, VIDEOID, SAMPLES = "REF", "MIGRATION", "ASYNC", "VIDEOID", "SAMPLES"


class World:
    """What the rows' calls refer to, made on first use in the row's own sandbox."""

    def __init__(self, sandbox: SandboxClient) -> None:
        self.sandbox = sandbox
        self.values: dict[str, Any] = {}

    async def get(self, name: str) -> Any:
        if name not in self.values:
            self.values[name] = await getattr(self, f"_{name}")()
        return self.values[name]

    async def _pk(self) -> int:
        return await create(self.sandbox)

    async def _uid(self) -> str:
        return await upload_one(self.sandbox, await self.get("pk"))

    async def _signed(self) -> bool:
        pk, _ = await self.get("pk"), await self.get("uid")
        answer = await sign(self.sandbox, pk, {"secret": await otp(self.sandbox, pk)})
        assert answer.status == 200, answer.body
        return True

    async def _token(self) -> str:
        return (await self.sandbox.call("POST", f"{NEW}/token", json=RAO)).body["details"]["token_uid"]

    async def _image(self) -> str:
        form = aiohttp.FormData()
        form.add_field("image", picture(), filename="firma.png", content_type="image/png")
        return (await self.sandbox.call("POST", f"{NEW}/image", data=form)).body["details"]["image_uid"]

    async def _videoid(self) -> int:
        return (await create_videoid(self.sandbox)).body["detail"]["videoid_pk"]

    async def _video(self) -> bool:
        videoid = await self.get("videoid")
        await self.sandbox.call("POST", f"{NEW}/videoid/{videoid}/evidences", json=fake_evidences(5))
        form = aiohttp.FormData()
        form.add_field("video", VIDEO, filename="identification.mp4", content_type="video/mp4")
        assert (await self.sandbox.call("POST", f"{NEW}/videoid/{videoid}/video", data=form)).status == 200
        return True


def pdf_form() -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", blank_pdf(), filename="doc.pdf", content_type="application/pdf")
    return form


def video_form() -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("video", VIDEO, filename="identification.mp4", content_type="video/mp4")
    return form


def image_form() -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("image", picture(), filename="firma.png", content_type="image/png")
    return form


@dataclass(frozen=True)
class Row:
    """One documented example: ``path`` is formatted with the world values it names; ``needs``
    are made before the call (``signed``, ``video``); ``texts`` maps a dotted key of the answer to
    its documented literal (formatted with the world values too)."""

    page: str
    operation: str
    method: str
    path: str
    status: int
    keys: frozenset[str] = frozenset()
    needs: tuple[str, ...] = ()
    body: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    texts: dict[str, Any] = field(default_factory=dict)
    detail_keys: frozenset[str] | None = None
    content_type: str = "application/json"


def keys(*names: str) -> frozenset[str]:
    return frozenset(names)


MESSAGE_ONLY = keys("status", "message")
WITH_DETAILS = keys("status", "message", "details")
WITH_DETAIL = keys("status", "message", "detail")

ROWS = [
    # Tokens
    Row(REF, "Create Token", "POST", "/token", 200, WITH_DETAILS, body=lambda w: {"json": RAO},
        texts={"message": "Token created"}, detail_keys=keys("token_uid")),
    Row(REF, "Retrieve Token", "GET", "/token/{token}", 200, WITH_DETAILS),
    Row(REF, "List Tokens", "GET", "/tokens", 200, WITH_DETAILS),
    Row(REF, "Delete Token", "DELETE", "/token/{token}", 200, MESSAGE_ONLY),
    # Requests
    Row(MIGRATION, "Create Request", "POST", "/create", 201, WITH_DETAILS, body=lambda w: {"json": IDENTITY},
        texts={"status": "success", "details.asyncmode": False, "details.status": "ENROLLREADY"},
        detail_keys=keys("request_pk", "status", "asyncmode")),
    Row(ASYNC, "Create Request (asynchronous)", "POST", "/create", 201, WITH_DETAILS,
        body=lambda w: {"json": {**IDENTITY, "useasync": "true"}}, texts={"details.asyncmode": True},
        detail_keys=keys("request_pk", "status", "asyncmode")),
    Row(REF, "Retrieve Request", "GET", "/request/{pk}", 200, WITH_DETAILS),
    Row(REF, "Request Status", "GET", "/request/{pk}/status", 200, WITH_DETAILS,
        detail_keys=keys("status", "async_status")),
    Row(REF, "Generate OTP", "POST", "/otp/{pk}", 200, MESSAGE_ONLY, needs=("uid",)),
    Row(REF, "Sign", "POST", "/sign/{pk}", 200, MESSAGE_ONLY, needs=("uid", "otp"),
        body=lambda w: {"json": {"secret": w["otp"]}}, texts={"message": "Documents correctly signed"}),
    # Documents
    Row(REF, "Upload Document", "POST", "/document/{pk}", 200, keys("status", "detail"),
        body=lambda w: {"data": pdf_form()}, texts={"detail.name": "file"}, detail_keys=keys("name", "uid")),
    Row(REF, "List Documents", "GET", "/document/{pk}", 200, WITH_DETAIL, needs=("uid",)),
    Row(REF, "Retrieve Original Document", "GET", "/document/{pk}/{uid}?document_type=original", 200,
        content_type="application/pdf"),
    Row(REF, "Retrieve Signed Document", "GET", "/document/{pk}/{uid}?document_type=signed", 200,
        needs=("signed",), content_type="application/pdf"),
    Row(REF, "Delete Document", "DELETE", "/document/{pk}/{uid}", 200, MESSAGE_ONLY),
    Row(REF, "Delete All Documents", "DELETE", "/document/{pk}", 200, MESSAGE_ONLY, needs=("uid",),
        texts={"message": "Documents deleted for Request {pk}"}),
    Row(REF, "Retrieve Contract", "GET", "/contract/{pk}", 200, needs=("signed",), content_type="application/pdf"),
    # Images
    Row(REF, "Upload Image", "POST", "/image", 200, WITH_DETAILS, body=lambda w: {"data": image_form()},
        detail_keys=keys("image_uid")),
    Row(REF, "Retrieve Image", "GET", "/image/{image}", 200, content_type="image/png"),
    Row(REF, "List Images", "GET", "/images", 200, WITH_DETAILS, needs=("image",)),
    Row(REF, "Delete Image", "DELETE", "/image/{image}", 200, MESSAGE_ONLY),
    # Video ID
    Row(VIDEOID, "Create VideoID", "POST", "/videoid", 200, keys("status", "messsage", "detail"),
        body=lambda w: {"json": {"email": "eva@example.com", "mobile_phone_number": "+34600000002",
                                 "registration_authority": "9998", "profile": "PFnubeQAFCiudadano"}},
        detail_keys=keys("videoid_pk", "videoid_link", "request_pk")),
    Row(REF, "Upload Videoid Evidences", "POST", "/videoid/{videoid}/evidences", 200, WITH_DETAIL,
        body=lambda w: {"json": fake_evidences(5)}, texts={"message": "Videoid evidences uploaded"}),
    Row(REF, "Upload Videoid Video", "POST", "/videoid/{videoid}/video", 200, WITH_DETAIL,
        body=lambda w: {"data": video_form()}, texts={"message": "Videoid video upload completed"}),
    Row(VIDEOID, "Download Videoid Video", "GET", "/videoid/{videoid}/video", 200, needs=("video",),
        content_type="video/mp4"),
    Row(REF, "Approve VideoID", "POST", "/videoid/{videoid}/approve", 200, WITH_DETAIL, needs=("video",),
        body=lambda w: {"json": {"token": DEFAULT_TOKEN}}, texts={"message": "Request approved successfully"}),
    Row(REF, "Refuse VideoID", "POST", "/videoid/{videoid}/refuse", 200, WITH_DETAIL, needs=("video",),
        body=lambda w: {"json": {"token": DEFAULT_TOKEN, "reason": "blurred document"}},
        texts={"message": "Videoid refuse completed"}),
    # Settings
    Row(REF, "Retrieve Settings", "GET", "/settings", 200, WITH_DETAILS),
    Row(REF, "Update Settings", "POST", "/settings", 200, MESSAGE_ONLY,
        body=lambda w: {"json": {"request": {"default_profile": "PFnubeQAFCiudadano"}}},
        texts={"message": "Settings saved successfully"}),
]


def dotted(body: dict[str, Any], path: str) -> Any:
    value: Any = body
    for part in path.split("."):
        value = value[part]
    return value


@pytest.mark.parametrize("row", ROWS, ids=[f"{row.page}: {row.operation}" for row in ROWS])
async def test_documented_operation_answers_as_documented(sandbox, row):
    world = World(sandbox)
    names = set(re.findall(r"{(\w+)}", row.path)) | set(row.needs) - {"otp"}
    for name in sorted(names, key=("pk", "uid", "signed", "token", "image", "videoid", "video").index):
        await world.get(name)
    values = dict(world.values)
    if "otp" in row.needs:
        values["otp"] = await otp(sandbox, values["pk"])
    kwargs = row.body(values) if row.body else {}
    answer = await sandbox.call(row.method, NEW + row.path.format(**values), **kwargs)

    assert answer.status == row.status, (answer.status, answer.raw[:300])
    assert answer.content_type == row.content_type, (answer.content_type, answer.raw[:200])
    if row.content_type != "application/json":
        assert answer.raw, "a binary answer has a body"
        return
    assert set(answer.body) == row.keys, answer.body
    assert answer.body["status"] == "success", answer.body
    for path, literal in row.texts.items():
        expected = literal.format(**values) if isinstance(literal, str) else literal
        assert dotted(answer.body, path) == expected, (path, answer.body)
    if row.detail_keys is not None:
        inner = answer.body.get("details", answer.body.get("detail"))
        assert set(inner) == row.detail_keys, answer.body


def test_every_route_of_the_family_has_a_documented_row():
    def shape(path: str) -> str:
        return re.sub(r"{\w+}", "{}", re.sub(r"\?.*", "", path))

    documented = {(row.method, shape(row.path)) for row in ROWS}
    # The legacy path's shape for the video download is served as well, beside the documented one.
    served = {(method, shape(path)) for method, path, _ in ROUTES if path != "/videoid/{videoid_pk}/download/video"}
    assert served == documented


# Points the documentation makes beyond the table ----------------------------------------------------


async def test_create_message_names_the_pk(sandbox):
    answer = await sandbox.call("POST", f"{NEW}/create", json=IDENTITY)
    pk = answer.body["details"]["request_pk"]
    assert answer.body["message"] == f"Request created with pk {pk}", answer.body


# Date formats as clients send them: the vendor's Java-style patterns, strftime, and text that only
# looks like one (kept as it is); zones east and west of UTC. No minutes: the line is compared with
# the clock read after the sign call.
DATE_FORMATS = [
    ("yyyy-MM-dd", "Asia/Tokyo", "%Y-%m-%d"),
    ("dd/MM/yyyy", "America/New_York", "%d/%m/%Y"),
    ("EEEE dd MMMM yyyy", "Europe/Madrid", "%A %d %B %Y"),
    ("%d.%m.%Y", "Australia/Sydney", "%d.%m.%Y"),
    ("Fecha dd/MM", "UTC", "Fecha dd/MM"),
]


@pytest.mark.parametrize(("date", "zone", "expected"), DATE_FORMATS, ids=[d for d, _, _ in DATE_FORMATS])
async def test_appearance_text_is_an_array_of_lines_dated_in_the_format_and_zone_given(sandbox, date, zone, expected):
    pk = await create(sandbox)
    uid = await upload_one(sandbox, pk)
    appearance = {"text": ["Signed in the sandbox", "OneShot test"], "date": date, "timezone": zone,
                  "position": "50,60,250,140", "page": 0}
    answer = await sign(sandbox, pk, {"secret": await otp(sandbox, pk), "signature": {"appearance": appearance}})
    assert answer.status == 200, answer.body
    now = datetime.fromisoformat((await sandbox.call("GET", "/_mock/clock")).body["now"])
    lines = shown_text(await signed_pdf(sandbox, pk, uid))
    today_there = now.astimezone(ZoneInfo(zone)).strftime(expected)
    assert lines[:3] == ["Signed in the sandbox", "OneShot test", today_there]
    assert not any("[" in line for line in lines), lines


async def test_a_failed_sign_with_an_inline_image_stores_nothing(sandbox):
    before = (await sandbox.call("GET", f"{NEW}/images")).body["details"]
    appearance = {"position": "50,60,250,140", "page": 0, "b64_image": base64.b64encode(picture()).decode()}
    unknown = await sign(sandbox, 999_999, {"secret": "123456", "signature": {"appearance": appearance}})
    assert unknown.status == 404, unknown.body
    pk = await create(sandbox)
    await upload_one(sandbox, pk)
    await otp(sandbox, pk)
    wrong = await sign(sandbox, pk, {"secret": "not-the-otp", "signature": {"appearance": appearance}})
    assert wrong.status == 403, wrong.body
    assert (await sandbox.call("GET", f"{NEW}/images")).body["details"] == before


async def test_videoid_without_profile_is_refused_as_missing_parameters(sandbox):
    answer = await sandbox.call("POST", f"{NEW}/videoid", json={
        "email": "eva@example.com", "mobile_phone_number": "+34600000002", "registration_authority": "9998"})
    assert answer.status == 400, answer.body
    assert answer.body["message"] == "Missing required parameters", answer.body


async def test_legacy_videoid_webhook_url_without_a_scheme_is_accepted(sandbox):
    answer = await sandbox.call("POST", "/api/v1/videoid", json={
        "email": "eva@example.com", "mobile_phone_number": "+34600000002", "registration_authority": "9998",
        "webhook_url": "my-webhook-url.com"})
    assert answer.status == 200 and answer.body["status"] == "200 OK", answer.body


async def test_legacy_request_shows_the_approving_officers_certificate(sandbox, tmp_path):
    pk = await sandbox.create_request()
    detail = (await sandbox.call("GET", f"/api/v1/request/{pk}")).body["details"]
    certificate = detail["approving_rao"]["certificate"]
    assert {"profile", "status", "valid_from", "valid_to", "valid", "revokation_reason", "serial_number",
            "issuer", "data"} <= set(certificate), certificate
    issued = x509.load_der_x509_certificate(base64.b64decode(certificate["data"]))
    ca = x509.load_pem_x509_certificates((await sandbox.call("GET", "/_mock/pki/ca.pem")).raw)
    issuing = next(c for c in ca if c.subject == issued.issuer)
    issued.verify_directly_issued_by(issuing)
    assert certificate["serial_number"] == format(issued.serial_number, "x")
    again = (await sandbox.call("GET", f"/api/v1/request/{pk}")).body["details"]["approving_rao"]["certificate"]
    assert again == certificate, "one certificate per officer"


async def test_a_valid_token_wins_over_placeholder_credentials(sandbox):
    answer: Answer = await sandbox.call("POST", "/api/v1/request", json={
        **IDENTITY, "token": DEFAULT_TOKEN, "username": "username", "password": "password", "pin": "pin"})
    assert answer.status == 201, answer.body

