"""VideoID workflows over HTTP: eIDAS link page, external evidences, RAO decisions, webhooks.

Expected texts come from the vendor's OpenAPI file (legacy-oneshot-videoid-v1.openapi.yaml),
the API notes (§2-§4) and the "VideoID workflows" issue.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import io
import json
import re
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any

import aiohttp
import pytest
from PIL import Image
from yarl import URL

from mock_server.domain.fakes import fake_evidences
from tests.helpers import DEFAULT_TOKEN, Answer, SandboxClient, validate

CONTACT = {"email": "eva.martin@example.com", "mobile_phone_number": "+34600000002"}
TOKEN = {"token": DEFAULT_TOKEN}
RAO_CREDENTIALS = {"username": "9001800", "password": "oneshot-mock", "pin": "123456"}
RAO_ID = 972
VIDEO = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + bytes(range(256)) * 8
DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
EIDAS, EXTERNAL, DISABLED = "9999", "9998", "9997"
FORM_ACTION = re.compile(r'<form[^>]*method="post"[^>]*action="([^"]+)"', re.IGNORECASE)


# Webhook helpers (the receiver: tests/receivers.py) -------------------------------------------------


def legacy_statuses(payloads: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(p["status"], p["previous_status"]) for p in payloads]


async def settled_webhook_log(sandbox: SandboxClient, pk: int, count: int, timeout: float = 15.0) -> list[dict]:
    """``GET /_mock/webhooks?request=pk`` once it holds ``count`` entries, all delivered."""
    deadline = time.monotonic() + timeout
    while True:
        answer = await sandbox.call("GET", f"/_mock/webhooks?request={pk}")
        assert answer.status == 200, answer.body
        log = answer.body["webhooks"]
        if len(log) >= count and all(e["state"] == "delivered" for e in log):
            return log
        assert time.monotonic() < deadline, f"webhook log never settled: {log}"
        await asyncio.sleep(0.02)


# Sandbox helpers ------------------------------------------------------------------------------------


async def create_videoid_raw(sandbox: SandboxClient, ra: str, **fields: Any) -> Answer:
    body = {**CONTACT, "registration_authority": ra, "profile": "PFnubeQAFCiudadano", "env": "sandbox", **fields}
    return await sandbox.call("POST", "/api/v1/videoid", json={k: v for k, v in body.items() if v is not None})


async def create_videoid(sandbox: SandboxClient, ra: str = EXTERNAL, **fields: Any) -> dict[str, Any]:
    """The details of a VideoID create answer (videoid_pk, videoid_link, request_pk)."""
    answer = await create_videoid_raw(sandbox, ra, **fields)
    assert answer.status == 200, answer.body
    assert answer.body["status"] == "200 OK"
    return answer.body["details"]


async def request_detail(sandbox: SandboxClient, pk: int) -> dict[str, Any]:
    answer = await sandbox.call("GET", f"/api/v1/request/{pk}")
    assert answer.status == 200, answer.body
    return answer.body["details"]


async def status_of(sandbox: SandboxClient, pk: int) -> str:
    return (await request_detail(sandbox, pk))["status"]


async def videoid_summary(sandbox: SandboxClient, pk: int) -> dict[str, Any]:
    answer = await sandbox.call("GET", f"/_mock/requests/{pk}")
    assert answer.status == 200, answer.body
    return answer.body["videoid"]


async def upload_evidences(sandbox: SandboxClient, pk: int, body: dict[str, Any]) -> Answer:
    return await sandbox.call("POST", f"/api/v1/videoid/{pk}/evidences", json=body)


async def upload_video(sandbox: SandboxClient, pk: int, data: bytes = VIDEO, part: str = "video",
                       suffix: str = "") -> Answer:
    form = aiohttp.FormData()
    form.add_field(part, data, filename="identification.mp4", content_type="video/mp4")
    return await sandbox.call("POST", f"/api/v1/videoid/{pk}/evidences/video{suffix}", data=form)


async def send_evidences(sandbox: SandboxClient, pk: int, body: dict[str, Any]) -> None:
    answer = await upload_evidences(sandbox, pk, body)
    assert answer.body == {"status": "200 OK", "details": "Videoid evidences uploaded"}, answer.body


async def send_video(sandbox: SandboxClient, pk: int, data: bytes = VIDEO) -> None:
    answer = await upload_video(sandbox, pk, data)
    assert answer.body == {"status": "200 OK", "details": "Videoid video upload completed"}, answer.body


async def identified_externally(sandbox: SandboxClient, ra: str = EXTERNAL, seed: int = 5, **fields: Any) -> int:
    """An external-mode request with complete evidences and video: VIDEOREVIEW."""
    pk = (await create_videoid(sandbox, ra, **fields))["request_pk"]
    await send_evidences(sandbox, pk, fake_evidences(seed))
    await send_video(sandbox, pk)
    assert await status_of(sandbox, pk) == "VIDEOREVIEW"
    return pk


async def identify(sandbox: SandboxClient, pk: int, outcome: str) -> Answer:
    return await sandbox.call("POST", f"/_mock/videoid/{pk}/{outcome}")


async def approve(sandbox: SandboxClient, pk: int, credentials: dict[str, Any] = TOKEN,
                  path: str = "requests") -> None:
    answer = await sandbox.call("POST", f"/api/v1/{path}/{pk}/approve", json=credentials)
    assert answer.body == {"status": "200 OK", "details": "Request approved successfully"}, answer.body


async def sign_one_document(sandbox: SandboxClient, pk: int) -> bytes:
    """Upload a PDF, OTP, sign: the signed PDF."""
    uid = await sandbox.upload_pdf(pk)
    signed = await sandbox.sign(pk, {"secret": await sandbox.otp(pk)})
    assert signed.body == {"status": "200 OK", "details": "Documents correctly signed"}, signed.body
    return await sandbox.signed(pk, uid)


async def submit(sandbox: SandboxClient, action: str, outcome: str) -> tuple[int, str, str]:
    """A browser's form submit on the link page: status, Location, text (no redirect followed)."""
    async with sandbox.http.post(action, data={"action": outcome}, allow_redirects=False) as response:
        return response.status, response.headers.get("Location", ""), await response.text()


def link_path(sandbox: SandboxClient, link: str) -> str:
    """The path of a link served by this very sandbox."""
    url = URL(link)
    assert (url.scheme, url.host, url.port) == ("http", "127.0.0.1", sandbox.http.port), link
    assert re.fullmatch(r"/videoid/[^/]+", url.path), link
    return url.path


def without(body: dict[str, Any], *path: str) -> dict[str, Any]:
    """A deep copy of ``body`` without the key at ``path``."""
    changed = copy.deepcopy(body)
    parent = changed
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return changed


def with_value(body: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    parent = changed
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return changed


# Acceptance ------------------------------------------------------------------------------------------


async def test_external_videoid_end_to_end(receiver, make_client):
    sandbox = await make_client(webhook_retry_scale=0.01)
    created = await create_videoid(sandbox, EXTERNAL, webhook_url=receiver.url)
    assert isinstance(created["videoid_pk"], int) and isinstance(created["request_pk"], int)
    assert created["videoid_link"] == "", "external RAs get no link"
    pk = created["request_pk"]
    detail = await request_detail(sandbox, pk)
    assert detail["status"] == "VIDEOPENDING" and detail["videoid_mode"] is True

    evidences = fake_evidences(11)
    await send_evidences(sandbox, pk, evidences)
    assert await status_of(sandbox, pk) == "VIDEOPENDING", "the video is still to come"
    await send_video(sandbox, pk)
    assert await status_of(sandbox, pk) == "VIDEOREVIEW"
    await approve(sandbox, pk)
    assert await status_of(sandbox, pk) == "ENROLLREADY"

    signed = await validate(await sign_one_document(sandbox, pk))
    assert signed.bottom_line, signed.pretty_print_details()
    ocr = evidences["videoid_data"]["ocr_data"]
    subject = signed.signing_cert.subject.native
    assert subject["given_name"] == ocr["given_name"]
    assert ocr["serial_number"] in subject["serial_number"]
    assert await status_of(sandbox, pk) == "ISSUED"

    flow = [("VIDEOPENDING", None), ("VIDEOREVIEW", "VIDEOPENDING"), ("ENROLLREADY", "VIDEOREVIEW"),
            ("ISSUED", "ENROLLREADY")]
    payloads = [d.json for d in await receiver.wait_for(4)]
    assert legacy_statuses(payloads) == flow
    assert {(p["request"], p["registration_authority"]) for p in payloads} == {(pk, 9998)}
    log = await settled_webhook_log(sandbox, pk, 4)
    assert [e["event"] for e in log] == [status for status, _ in flow]
    assert {e["target"] for e in log} == {receiver.url}
    assert len(receiver.deliveries) == 4, "one delivery per status change"


async def test_eidas_link_page_flow(sandbox):
    created = await create_videoid(sandbox, EIDAS)
    pk = created["request_pk"]
    path = link_path(sandbox, created["videoid_link"])

    page = await sandbox.call("GET", path)
    assert page.status == 200 and page.content_type == "text/html"
    text = page.raw.decode()
    for shown in (str(pk), "VIDEOPENDING", CONTACT["email"], CONTACT["mobile_phone_number"]):
        assert shown in text, shown
    actions = FORM_ACTION.findall(text)
    assert sorted(actions) == sorted(f"{path}/{outcome}" for outcome in ("complete", "incomplete", "error"))

    status, location, _ = await submit(sandbox, f"{path}/complete", "complete")
    assert status == 303
    assert URL(location).path == path
    assert "VIDEOREVIEW" in (await sandbox.call("GET", location)).raw.decode()
    detail = await request_detail(sandbox, pk)
    assert detail["status"] == "VIDEOREVIEW"
    assert detail["given_name"].strip() and detail["serial_number"].strip(), "identification fills the identity"

    await approve(sandbox, pk, {**RAO_CREDENTIALS, "rao": RAO_ID})
    uid = await sandbox.upload_pdf(pk)
    contract = await sandbox.call("GET", f"/api/v1/document/{pk}/contract")
    assert contract.status == 200 and contract.content_type == "application/pdf"
    signed = await sandbox.sign(pk, {"secret": await sandbox.otp(pk)})
    assert signed.body == {"status": "200 OK", "details": "Documents correctly signed"}
    result = await validate(await sandbox.signed(pk, uid))
    assert result.bottom_line, result.pretty_print_details()
    assert result.signing_cert.subject.native["given_name"] == detail["given_name"]
    assert await status_of(sandbox, pk) == "ISSUED"


# eIDAS link page and identification outcomes -------------------------------------------------------


DASHBOARD_LINK = re.compile(r'<a href="(/_mock/dashboard/requests/[^"]+)"')


@pytest.mark.parametrize("namespace", [None, "qa-team"])
async def test_link_page_links_back_to_the_requests_dashboard_page(sandbox, namespace):
    client = sandbox.in_namespace(namespace) if namespace else sandbox
    created = await create_videoid(client, EIDAS)
    pk = created["request_pk"]
    text = (await sandbox.call("GET", link_path(sandbox, created["videoid_link"]))).raw.decode()
    [back] = DASHBOARD_LINK.findall(text)
    url = URL(back.replace("&amp;", "&"))
    assert url.path == f"/_mock/dashboard/requests/{pk}"
    assert url.query.get("namespace") == namespace
    dashboard = await sandbox.call("GET", str(url))  # no namespace header: the link alone says which
    assert dashboard.status == 200 and f"Request {pk}" in dashboard.raw.decode()


async def test_link_page_has_no_dashboard_link_without_the_control_api(make_client):
    sandbox = await make_client(control_api=False)
    created = await create_videoid(sandbox, EIDAS)
    text = (await sandbox.call("GET", link_path(sandbox, created["videoid_link"]))).raw.decode()
    assert "Video identification" in text and "/_mock/" not in text


@pytest.mark.parametrize(("outcome", "expected"), [
    ("incomplete", "VIDEOINCOMPLETE"),
    ("error", "VIDEOERROR"),
])
async def test_link_page_outcome(sandbox, outcome, expected):
    created = await create_videoid(sandbox, EIDAS)
    path = link_path(sandbox, created["videoid_link"])
    status, location, _ = await submit(sandbox, f"{path}/{outcome}", outcome)
    assert (status, URL(location).path) == (303, path)
    assert await status_of(sandbox, created["request_pk"]) == expected


async def test_link_page_action_that_makes_no_sense_answers_412(sandbox):
    created = await create_videoid(sandbox, EIDAS)
    path = link_path(sandbox, created["videoid_link"])
    assert (await submit(sandbox, f"{path}/error", "error"))[0] == 303
    status, _, text = await submit(sandbox, f"{path}/complete", "complete")
    assert status == 412
    assert "VIDEOERROR" in text and "<html" in text.lower()
    assert await status_of(sandbox, created["request_pk"]) == "VIDEOERROR"


@pytest.mark.parametrize(("outcome", "expected"), [
    ("complete", "VIDEOREVIEW"),
    ("incomplete", "VIDEOINCOMPLETE"),
    ("error", "VIDEOERROR"),
])
async def test_identification_outcome_by_control_api(sandbox, outcome, expected):
    pk = (await create_videoid(sandbox, EIDAS))["request_pk"]
    answer = await identify(sandbox, pk, outcome)
    assert answer.status == 200 and answer.content_type == "application/json", answer.body
    assert answer.body["status"] == expected
    assert await status_of(sandbox, pk) == expected


async def test_identification_outcome_by_control_api_in_wrong_status(sandbox):
    pk = (await create_videoid(sandbox, EIDAS))["request_pk"]
    assert (await identify(sandbox, pk, "complete")).status == 200
    again = await identify(sandbox, pk, "incomplete")
    assert again.status == 412, again.body
    assert "VIDEOREVIEW" in json.dumps(again.body)
    assert await status_of(sandbox, pk) == "VIDEOREVIEW"


async def test_eidas_identification_completes_by_itself(make_client):
    # Sandbox time, moved by hand: a busy machine cannot let the identification complete early.
    sandbox = await make_client(videoid_auto_complete=3600)
    eidas = (await create_videoid(sandbox, EIDAS))["request_pk"]
    external = (await create_videoid(sandbox, EXTERNAL))["request_pk"]
    assert await status_of(sandbox, eidas) == "VIDEOPENDING"
    await sandbox.call("POST", "/_mock/clock", json={"advance_s": 3600})
    deadline = time.monotonic() + 10
    while (status := await status_of(sandbox, eidas)) == "VIDEOPENDING":
        assert time.monotonic() < deadline, "the identification never completed"
        await asyncio.sleep(0.05)
    assert status == "VIDEOREVIEW"
    assert (await request_detail(sandbox, eidas))["given_name"].strip()
    assert await status_of(sandbox, external) == "VIDEOPENDING", "external identifications are the integrator's"


# Create and the Registration Authority catalogue ----------------------------------------------------


async def test_create_without_content_type(sandbox):
    body = json.dumps({**CONTACT, "registration_authority": EXTERNAL}).encode()
    answer = await sandbox.call("POST", "/api/v1/videoid", data=body, skip_auto_headers=("Content-Type",))
    assert answer.status == 200, answer.body
    assert set(answer.body["details"]) == {"videoid_pk", "videoid_link", "request_pk"}
    assert await status_of(sandbox, answer.body["details"]["request_pk"]) == "VIDEOPENDING"


@pytest.mark.parametrize("missing", ["email", "mobile_phone_number"])
async def test_create_without_contact_is_refused(sandbox, missing):
    answer = await create_videoid_raw(sandbox, EXTERNAL, **{missing: None})
    assert answer.status == 400
    assert answer.body == {"status": "400 Bad Request", "details": "Missing required parameters"}
    assert (await sandbox.call("GET", "/_mock/requests")).body["requests"] == []


async def test_default_registration_authorities(sandbox):
    settings = (await sandbox.call("GET", "/api/v1/settings")).body["details"]
    modes = {ra: entry.get("videoid_mode") for ra, entry in settings["registration_authorities"].items()}
    assert {EIDAS: "eidas", EXTERNAL: "external", DISABLED: "disabled"}.items() <= modes.items()
    assert (await create_videoid(sandbox, EIDAS))["videoid_link"], "eIDAS RAs get a link"
    assert (await create_videoid(sandbox, EXTERNAL))["videoid_link"] == ""


async def test_videoid_disabled_authority(sandbox):
    answer = await create_videoid_raw(sandbox, DISABLED)
    assert answer.status == 400
    assert answer.body == {"status": "400 Bad Request",
                           "details": "Videoid not enabled for Registration Authority 9997"}


async def test_unknown_authority(sandbox):
    answer = await create_videoid_raw(sandbox, "4242")
    assert answer.status == 404
    assert answer.body == {"status": "404 Not Found", "details": "Registration Authority not found"}


async def test_authority_added_by_settings(sandbox):
    saved = await sandbox.call("POST", "/api/v1/settings",
                               json={"registration_authorities": {"4242": {"videoid_mode": "external"}}})
    assert saved.status == 200, saved.body
    created = await create_videoid(sandbox, "4242")
    assert created["videoid_link"] == ""
    detail = await request_detail(sandbox, created["request_pk"])
    assert (detail["status"], str(detail["registration_authority"])) == ("VIDEOPENDING", "4242")


async def test_bad_videoid_mode_is_refused(sandbox):
    before = (await sandbox.call("GET", "/api/v1/settings")).body["details"]
    answer = await sandbox.call("POST", "/api/v1/settings",
                                json={"registration_authorities": {"4242": {"videoid_mode": "kiosk"}}})
    assert answer.status == 400, answer.body
    assert (await sandbox.call("GET", "/api/v1/settings")).body["details"] == before
    assert (await create_videoid_raw(sandbox, "4242")).status == 404


# External mode: evidences and video -------------------------------------------------------------------


@pytest.mark.parametrize("order", ["evidences-first", "video-first"])
async def test_evidences_and_video_in_either_order(sandbox, order):
    pk = (await create_videoid(sandbox))["request_pk"]
    steps = [lambda: send_evidences(sandbox, pk, fake_evidences(2)), lambda: send_video(sandbox, pk)]
    if order == "video-first":
        steps.reverse()
    await steps[0]()
    assert await status_of(sandbox, pk) == "VIDEOPENDING", "one of the two is still to come"
    await steps[1]()
    assert await status_of(sandbox, pk) == "VIDEOREVIEW"
    summary = await videoid_summary(sandbox, pk)
    assert summary["evidences_complete"] is True and summary["video"] is True
    assert summary["reason"] is None


async def test_ocr_data_becomes_the_identity(sandbox):
    pk = (await create_videoid(sandbox))["request_pk"]
    evidences = fake_evidences(8)
    await send_evidences(sandbox, pk, evidences)
    ocr = evidences["videoid_data"]["ocr_data"]
    detail = await request_detail(sandbox, pk)
    assert (detail["given_name"], detail["surname_1"], detail["serial_number"]) == (
        ocr["given_name"], ocr["surname_1"], ocr["serial_number"])


@pytest.mark.parametrize(("path", "named"), [
    (("videoid_data", "images", "document_rear"), "document_rear"),
    (("videoid_data", "ocr_data", "serial_number"), "serial_number"),
    (("videoid_data", "security_checks", "liveliness"), "liveliness"),
    (("videoid_data", "similarity_level"), "similarity_level"),
], ids=["image", "ocr-field", "security-check", "similarity"])
async def test_partial_evidences_make_the_request_incomplete(sandbox, path, named):
    pk = (await create_videoid(sandbox))["request_pk"]
    await send_evidences(sandbox, pk, without(fake_evidences(4), *path))
    assert await status_of(sandbox, pk) == "VIDEOINCOMPLETE"
    assert named in (await videoid_summary(sandbox, pk))["reason"]
    await send_video(sandbox, pk)
    assert await status_of(sandbox, pk) == "VIDEOINCOMPLETE", "the video does not make up for missing evidences"


@pytest.mark.parametrize(("path", "value", "named"), [
    (("videoid_data", "images", "document_front"), "%%% not base64 %%%", "document_front"),
    (("videoid_data", "images", "document_owner"), base64.b64encode(b"not an image").decode(), "document_owner"),
    (("videoid_data", "security_checks", "document_notexpired"), False, "document_notexpired"),
    (("videoid_data", "similarity_level"), 10, "similarity_level"),
], ids=["undecodable-base64", "not-an-image", "security-check-false", "low-similarity"])
async def test_invalid_evidences_make_the_request_fail(sandbox, path, value, named):
    pk = (await create_videoid(sandbox))["request_pk"]
    await send_video(sandbox, pk)
    await upload_evidences(sandbox, pk, with_value(fake_evidences(4), value, *path))
    assert await status_of(sandbox, pk) == "VIDEOERROR"
    reason = (await videoid_summary(sandbox, pk))["reason"]
    assert reason and named in reason, reason


async def test_invalid_json_evidences(sandbox):
    pk = (await create_videoid(sandbox))["request_pk"]
    answer = await sandbox.call("POST", f"/api/v1/videoid/{pk}/evidences", data=b'{"acceptance": {',
                                headers={"Content-Type": "application/json"})
    assert answer.status == 400
    assert answer.body["status"] == "Invalid JSON"
    assert answer.body["details"].startswith("Could not parse JSON body")
    assert await status_of(sandbox, pk) == "VIDEOPENDING"


@pytest.mark.parametrize("operation", ["evidences", "video", "download"])
async def test_external_calls_on_unknown_request(sandbox, operation):
    if operation == "evidences":
        answer = await upload_evidences(sandbox, 999999, fake_evidences(1))
    elif operation == "video":
        answer = await upload_video(sandbox, 999999)
    else:
        answer = await sandbox.call("GET", "/api/v1/videoid/999999/download/video")
    assert answer.status == 404
    assert answer.body == {"status": "404 Not Found", "details": "Request not found"}


async def test_video_upload_without_video_part(sandbox):
    pk = (await create_videoid(sandbox))["request_pk"]
    answer = await upload_video(sandbox, pk, part="file")
    assert answer.status == 400, answer.body
    assert answer.body["status"] == "400 Bad Request"
    assert (await videoid_summary(sandbox, pk))["video"] is False


async def test_video_upload_path_with_trailing_slash(sandbox):
    pk = (await create_videoid(sandbox))["request_pk"]
    answer = await upload_video(sandbox, pk, suffix="/")
    assert answer.body == {"status": "200 OK", "details": "Videoid video upload completed"}, answer.body
    assert (await videoid_summary(sandbox, pk))["video"] is True


async def test_download_video_returns_the_uploaded_bytes(sandbox):
    pk = (await create_videoid(sandbox))["request_pk"]
    await send_video(sandbox, pk)
    answer = await sandbox.call("GET", f"/api/v1/videoid/{pk}/download/video")
    assert answer.status == 200
    assert answer.content_type == "video/mp4"
    assert answer.raw == VIDEO


# RAO decisions ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["videoid", "request"])
async def test_validate(sandbox, path):
    pk = await identified_externally(sandbox)
    answer = await sandbox.call("POST", f"/api/v1/{path}/{pk}/validate", json=TOKEN)
    assert answer.body == {"status": "200 OK", "details": "Videoid validated"}, answer.body
    assert await status_of(sandbox, pk) == "VIDEOREVIEW"
    assert (await videoid_summary(sandbox, pk))["validated"] is True


@pytest.mark.parametrize(("path", "credentials"), [
    ("requests", TOKEN),
    ("request", TOKEN),
    ("requests", RAO_CREDENTIALS),
    ("request", {**RAO_CREDENTIALS, "rao": RAO_ID}),
    ("requests", {**TOKEN, "rao": str(RAO_ID)}),
], ids=["requests-token", "request-token", "password", "password-rao", "token-rao"])
async def test_approve(sandbox, path, credentials):
    pk = await identified_externally(sandbox)
    await approve(sandbox, pk, credentials, path)
    detail = await request_detail(sandbox, pk)
    assert detail["status"] == "ENROLLREADY"
    assert detail["approving_rao"]["pk"] == RAO_ID


async def test_approve_as_another_rao_is_forbidden(sandbox):
    pk = await identified_externally(sandbox)
    answer = await sandbox.call("POST", f"/api/v1/requests/{pk}/approve", json={**TOKEN, "rao": 973})
    assert answer.status == 403
    assert answer.body == {"status": "403 Forbidden", "details": "Invalid RAO credentials"}
    assert await status_of(sandbox, pk) == "VIDEOREVIEW"


@pytest.mark.parametrize("path", ["videoid", "requests"])
async def test_refuse(sandbox, path):
    pk = await identified_externally(sandbox)
    answer = await sandbox.call("POST", f"/api/v1/{path}/{pk}/refuse", json={**TOKEN, "reason": "blurry document"})
    assert answer.body == {"status": "200 OK", "details": "Videoid refuse completed"}, answer.body
    assert await status_of(sandbox, pk) == "CANCELLED"


async def test_refuse_without_reason(sandbox):
    pk = await identified_externally(sandbox)
    answer = await sandbox.call("POST", f"/api/v1/videoid/{pk}/refuse", json=TOKEN)
    assert answer.status == 400
    assert answer.body == {"status": "400 Bad Request", "details": "No reason specified"}
    assert await status_of(sandbox, pk) == "VIDEOREVIEW"


@pytest.mark.parametrize("path", ["request", "requests"])
async def test_cancel(sandbox, path):
    pk = (await create_videoid(sandbox, EIDAS))["request_pk"]
    answer = await sandbox.call("DELETE", f"/api/v1/{path}/{pk}")
    assert answer.body == {"status": "200 OK", "details": "Request directory removed successfully"}, answer.body
    assert await status_of(sandbox, pk) == "CANCELLED"


@pytest.mark.parametrize("path", ["request", "requests"])
async def test_cancel_unknown_request(sandbox, path):
    answer = await sandbox.call("DELETE", f"/api/v1/{path}/999999")
    assert answer.status == 404
    assert answer.body == {"status": "404 Not Found", "details": "Request 999999 not found"}


def update_body(detail: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {
        "scratchcard": detail["scratchcard"], "email": detail["email"], "profile": detail["profile"],
        "registration_authority": str(detail["registration_authority"]), "country_name": "ES", **changes,
    }


async def test_update(sandbox):
    pk = await identified_externally(sandbox)
    body = update_body(await request_detail(sandbox, pk), given_name="Corregida", email="corregida@example.com")
    answer = await sandbox.call("PUT", f"/api/v1/request/{pk}", json=body)
    assert answer.body == {"status": "200 OK", "details": "Request updated"}, answer.body
    detail = await request_detail(sandbox, pk)
    assert (detail["given_name"], detail["email"]) == ("Corregida", "corregida@example.com")


async def test_update_with_wrong_scratchcard_is_refused(sandbox):
    pk = await identified_externally(sandbox)
    before = await request_detail(sandbox, pk)
    wrong = str((int(before["scratchcard"]) + 1) % 10_000_000)
    answer = await sandbox.call("PUT", f"/api/v1/request/{pk}",
                                json=update_body(before, scratchcard=wrong, given_name="Intrusa"))
    assert answer.status == 400, answer.body
    assert answer.body["status"] == "400 Bad Request"
    assert await request_detail(sandbox, pk) == before


# Decisions in a status where they make no sense → 412 ------------------------------------------------


async def pending(sandbox: SandboxClient) -> int:
    return (await create_videoid(sandbox))["request_pk"]


async def enrollready(sandbox: SandboxClient) -> int:
    pk = await identified_externally(sandbox)
    await approve(sandbox, pk)
    return pk


async def issued(sandbox: SandboxClient) -> int:
    pk = await enrollready(sandbox)
    await sign_one_document(sandbox, pk)
    return pk


async def cancelled(sandbox: SandboxClient) -> int:
    pk = await pending(sandbox)
    assert (await sandbox.call("DELETE", f"/api/v1/request/{pk}")).status == 200
    return pk


Setup = Callable[[SandboxClient], Awaitable[int]]
BodyOf = Callable[[dict[str, Any]], dict[str, Any] | None]


@pytest.mark.parametrize(("setup", "current", "method", "path", "body_of"), [
    (pending, "VIDEOPENDING", "POST", "/api/v1/requests/{pk}/approve", lambda _: TOKEN),
    (pending, "VIDEOPENDING", "POST", "/api/v1/videoid/{pk}/validate", lambda _: TOKEN),
    (enrollready, "ENROLLREADY", "POST", "/api/v1/videoid/{pk}/refuse", lambda _: {**TOKEN, "reason": "late"}),
    (issued, "ISSUED", "DELETE", "/api/v1/request/{pk}", lambda _: None),
    (cancelled, "CANCELLED", "PUT", "/api/v1/request/{pk}", lambda detail: update_body(detail, given_name="X")),
], ids=["approve-pending", "validate-pending", "refuse-enrollready", "cancel-issued", "update-cancelled"])
async def test_decision_in_wrong_status_answers_412(sandbox, setup: Setup, current, method, path, body_of: BodyOf):
    pk = await setup(sandbox)
    body = body_of(await request_detail(sandbox, pk))
    answer = await sandbox.call(method, path.format(pk=pk), **({"json": body} if body is not None else {}))
    assert answer.status == 412, answer.body
    assert answer.body["status"] == "412 Precondition Failed"
    assert current in answer.body["details"]
    assert await status_of(sandbox, pk) == current


# RAO credentials and two-step mode ---------------------------------------------------------------------


DECISIONS = {
    "validate": ("/api/v1/videoid/{pk}/validate", {}),
    "approve": ("/api/v1/requests/{pk}/approve", {}),
    "refuse": ("/api/v1/videoid/{pk}/refuse", {"reason": "blurry document"}),
}


@pytest.mark.parametrize("credentials", [
    {**RAO_CREDENTIALS, "password": "wrong"},
    {**RAO_CREDENTIALS, "pin": "000000"},
    {"username": "1234567", "password": "oneshot-mock", "pin": "123456"},
    {"token": "00000000000000000000000000000000"},
], ids=["password", "pin", "username", "token"])
@pytest.mark.parametrize("decision", sorted(DECISIONS))
async def test_bad_rao_credentials(sandbox, decision, credentials):
    pk = await identified_externally(sandbox)
    path, extra = DECISIONS[decision]
    answer = await sandbox.call("POST", path.format(pk=pk), json={**credentials, **extra})
    assert answer.status == 403
    assert answer.body == {"status": "403 Forbidden", "details": "Invalid RAO credentials"}
    assert await status_of(sandbox, pk) == "VIDEOREVIEW"


@pytest.mark.parametrize("decision", sorted(DECISIONS))
async def test_missing_rao_credentials(sandbox, decision):
    pk = await identified_externally(sandbox)
    path, extra = DECISIONS[decision]
    answer = await sandbox.call("POST", path.format(pk=pk), json={"username": "9001800", **extra})
    assert answer.status == 400
    assert answer.body == {"status": "400 Bad Request",
                           "details": "Missing required parameters: incomplete RAO's credentials"}
    assert await status_of(sandbox, pk) == "VIDEOREVIEW"


async def test_two_step_authority_requires_validate_before_approve(sandbox):
    saved = await sandbox.call("POST", "/api/v1/settings", json={
        "registration_authorities": {"4242": {"videoid_mode": "external", "videoid_two_step": True}}})
    assert saved.status == 200, saved.body
    pk = await identified_externally(sandbox, "4242")
    early = await sandbox.call("POST", f"/api/v1/requests/{pk}/approve", json=TOKEN)
    assert early.status == 412, early.body
    assert early.body["status"] == "412 Precondition Failed"
    assert await status_of(sandbox, pk) == "VIDEOREVIEW"

    validated = await sandbox.call("POST", f"/api/v1/videoid/{pk}/validate", json=TOKEN)
    assert validated.body == {"status": "200 OK", "details": "Videoid validated"}
    await approve(sandbox, pk)
    assert await status_of(sandbox, pk) == "ENROLLREADY"


# Webhooks of every branch ------------------------------------------------------------------------------


async def incomplete_branch(sandbox: SandboxClient, url: str) -> int:
    pk = (await create_videoid(sandbox, EIDAS, webhook_url=url))["request_pk"]
    assert (await identify(sandbox, pk, "incomplete")).status == 200
    return pk


async def error_branch(sandbox: SandboxClient, url: str) -> int:
    pk = (await create_videoid(sandbox, EXTERNAL, webhook_url=url))["request_pk"]
    await upload_evidences(sandbox, pk, with_value(fake_evidences(6), 10, "videoid_data", "similarity_level"))
    return pk


async def refuse_branch(sandbox: SandboxClient, url: str) -> int:
    pk = await identified_externally(sandbox, webhook_url=url)
    answer = await sandbox.call("POST", f"/api/v1/videoid/{pk}/refuse", json={**TOKEN, "reason": "not the owner"})
    assert answer.status == 200, answer.body
    return pk


async def cancel_branch(sandbox: SandboxClient, url: str) -> int:
    pk = (await create_videoid(sandbox, EIDAS, webhook_url=url))["request_pk"]
    assert (await sandbox.call("DELETE", f"/api/v1/request/{pk}")).status == 200
    return pk


async def approve_branch(sandbox: SandboxClient, url: str) -> int:
    pk = await identified_externally(sandbox, webhook_url=url)
    await approve(sandbox, pk)
    return pk


Branch = Callable[[SandboxClient, str], Awaitable[int]]


@pytest.mark.parametrize(("branch", "flow"), [
    (incomplete_branch, [("VIDEOPENDING", None), ("VIDEOINCOMPLETE", "VIDEOPENDING")]),
    (error_branch, [("VIDEOPENDING", None), ("VIDEOERROR", "VIDEOPENDING")]),
    (refuse_branch, [("VIDEOPENDING", None), ("VIDEOREVIEW", "VIDEOPENDING"), ("CANCELLED", "VIDEOREVIEW")]),
    (cancel_branch, [("VIDEOPENDING", None), ("CANCELLED", "VIDEOPENDING")]),
], ids=["incomplete", "error", "refuse", "cancel"])
async def test_branch_webhooks_legacy(receiver, make_client, branch: Branch, flow):
    sandbox = await make_client(webhook_retry_scale=0.01)
    pk = await branch(sandbox, receiver.url)
    payloads = [d.json for d in await receiver.wait_for(len(flow))]
    assert legacy_statuses(payloads) == flow
    assert {p["request"] for p in payloads} == {pk}
    log = await settled_webhook_log(sandbox, pk, len(flow))
    assert [e["event"] for e in log] == [status for status, _ in flow]
    assert [e["payload"] for e in log] == payloads
    assert len(receiver.deliveries) == len(flow), "one delivery per status change"


@pytest.mark.parametrize(("branch", "events"), [
    (incomplete_branch, [("REQUEST_CREATED", "VIDEOPENDING"), ("VIDEOID_UPDATED", "VIDEOINCOMPLETE")]),
    (error_branch, [("REQUEST_CREATED", "VIDEOPENDING"), ("VIDEOID_FAILED", "VIDEOERROR")]),
    (refuse_branch, [("REQUEST_CREATED", "VIDEOPENDING"), ("VIDEOID_UPDATED", "VIDEOREVIEW"),
                     ("VIDEOID_REFUSED", "CANCELLED")]),
    (approve_branch, [("REQUEST_CREATED", "VIDEOPENDING"), ("VIDEOID_UPDATED", "VIDEOREVIEW"),
                      ("REQUEST_APPROVED", "ENROLLREADY")]),
], ids=["incomplete", "error", "refuse", "approve"])
async def test_branch_webhooks_new_format(receiver, make_client, branch: Branch, events):
    sandbox = await make_client(webhook_format="new", webhook_retry_scale=0.01)
    pk = await branch(sandbox, receiver.url)
    payloads = [d.json for d in await receiver.wait_for(len(events))]
    assert [(p["event_type"], p["request"]["status"]) for p in payloads] == events
    assert {p["request"]["pk"] for p in payloads} == {pk}
    scratchcard = (await request_detail(sandbox, pk))["scratchcard"]
    assert {p["request"]["scratchcard"] for p in payloads} == {scratchcard}
    log = await settled_webhook_log(sandbox, pk, len(events))
    assert [(e["event"], e["format"]) for e in log] == [(event, "new") for event, _ in events]
    assert len(receiver.deliveries) == len(events)


# fake-evidences --------------------------------------------------------------------------------------------


def run_fake_evidences(seed: int) -> str:
    """``python -m mock_server fake-evidences --seed SEED``'s output."""
    done = subprocess.run([sys.executable, "-m", "mock_server", "fake-evidences", "--seed", str(seed)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@cache
def cli_evidences(seed: int) -> str:
    return run_fake_evidences(seed)


def test_fake_evidences_cli_is_deterministic_per_seed():
    started = time.monotonic()
    first = json.loads(run_fake_evidences(3))
    assert json.loads(run_fake_evidences(4)) != first
    # The same seed a little later must print the same: nothing in the output may follow the clock
    # (2 s apart, a value drifting with the time of day shows up in its seconds).
    time.sleep(max(0.0, 2.0 - (time.monotonic() - started)))
    again = json.loads(run_fake_evidences(3))
    assert again == first, [key for key in first if again.get(key) != first[key]]


def test_fake_evidences_cli_prints_the_library_value():
    assert json.loads(cli_evidences(5))["videoid_data"] == fake_evidences(5)["videoid_data"]


def dni_is_valid(serial: str) -> bool:
    return bool(re.fullmatch(r"\d{8}[A-Z]", serial)) and serial[-1] == DNI_LETTERS[int(serial[:8]) % 23]


def test_fake_evidences_serial_is_a_dni_with_its_check_letter():
    serial = json.loads(cli_evidences(3))["videoid_data"]["ocr_data"]["serial_number"]
    assert dni_is_valid(serial), serial
    assert not dni_is_valid(serial[:8] + DNI_LETTERS[(DNI_LETTERS.index(serial[8]) + 1) % 23])
    serials = [fake_evidences(seed)["videoid_data"]["ocr_data"]["serial_number"] for seed in range(10)]
    assert all(dni_is_valid(s) for s in serials), serials


def test_fake_evidences_images_decode():
    images = json.loads(cli_evidences(3))["videoid_data"]["images"]
    assert set(images) == {"document_front", "document_rear", "document_photo", "document_owner"}
    for name, encoded in images.items():
        with Image.open(io.BytesIO(base64.b64decode(encoded, validate=True))) as picture:
            assert picture.format in ("JPEG", "PNG"), name
            picture.load()
            assert picture.width > 0 and picture.height > 0


async def test_fake_evidences_cli_output_is_accepted_as_complete(sandbox):
    pk = (await create_videoid(sandbox))["request_pk"]
    await send_evidences(sandbox, pk, json.loads(cli_evidences(3)))
    summary = await videoid_summary(sandbox, pk)
    assert (summary["evidences_complete"], summary["reason"]) == (True, None)
    await send_video(sandbox, pk)
    assert await status_of(sandbox, pk) == "VIDEOREVIEW"
