"""Every bad input gets the family's envelope and a clear message: no 500, no side effect."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import struct
import time
import zlib

import aiohttp
import pytest

from tests.helpers import DEFAULT_TOKEN, IDENTITY, multipart_body

HUGE_NUMBER = "9" * 5000  # beyond Python's int() digit limit
_PARAMETER = re.compile(r"\{[^}]+\}")


def parameterised_routes(app) -> list[tuple[str, str]]:
    """(method, path) of every route with a path parameter, in all three APIs."""
    found = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method != "HEAD" and _PARAMETER.search(path) and not path.endswith("/"):
            found.add((route.method, path))
    return sorted(found)


async def test_a_number_too_long_for_int_in_any_path_parameter_is_not_a_500(sandbox):
    routes = parameterised_routes(sandbox.http.server.app)
    assert len(routes) > 40
    assert {prefix for prefix in ("/api/v1/", "/oneshot/api/v1/", "/_mock/")
            if any(path.startswith(prefix) for _, path in routes)} == {"/api/v1/", "/oneshot/api/v1/", "/_mock/"}
    failures = []
    for method, path in routes:
        pieces = _PARAMETER.split(path)
        count = len(pieces) - 1
        # One value at a time is huge (all of them would pass the HTTP parser's line limit).
        variants = [([HUGE_NUMBER if i == huge else "1" for i in range(count)], "") for huge in range(count)]
        variants.append((["1"] * count, f"?request={HUGE_NUMBER}"))
        for values, query in variants:
            url = "".join(piece + value for piece, value in zip(pieces, [*values, ""], strict=True))
            answer = await sandbox.call(method, url + query, json={})
            if answer.status >= 500 or (answer.content_type != "application/json" and answer.status >= 400
                                        and not path.startswith(("/_mock/dashboard", "/videoid/"))):
                failures.append((method, path, query[:12], answer.status, answer.raw[:120]))
    assert not failures, failures


@pytest.mark.parametrize("path", ["/_mock/sms", "/_mock/webhooks"])
async def test_a_listing_narrowed_to_a_huge_pk_is_a_400(sandbox, path):
    answer = await sandbox.call("GET", f"{path}?request={HUGE_NUMBER}")
    assert answer.status == 400 and answer.body["error"] == "request must be a request pk"


async def test_a_registration_authority_too_long_for_int_is_the_vendors_412(sandbox):
    fields = {**IDENTITY, "token": DEFAULT_TOKEN, "registration_authority": HUGE_NUMBER}
    answer = await sandbox.create_request_raw(fields)
    assert answer.status == 412, answer.body
    assert "registration_authority" in answer.body["details"]



@pytest.mark.parametrize(("path", "body"), [
    ("/api/v1/sign/{pk}", {"signature_format": {"text_format": 5}}),
    ("/api/v1/sign/{pk}", {"signature_format": {"text_format": ["Signed", {"by": "me"}]}}),
    ("/oneshot/api/v1/sign/{pk}", {"signature_format": {"text_format": 5}}),
    ("/oneshot/api/v1/sign/{pk}", {"signature_format": "large", "signature": {"appearance": {"text": ["Signed"]}}}),
    ("/oneshot/api/v1/sign/{pk}", {"signature_format": [1], "signature": {"appearance": {"date": "dd/MM/yyyy"}}}),
])
async def test_a_sign_body_of_the_wrong_shape_is_a_400_and_spends_no_otp(sandbox, path, body):
    pk = await sandbox.create_request()
    await sandbox.upload_pdf(pk)
    secret = await sandbox.otp(pk)
    answer = await sandbox.call("POST", path.format(pk=pk), json={"secret": secret, **body})
    assert answer.status == 400, answer.body
    assert "text_format" in str(answer.body) or "signature_format must be an object" in str(answer.body)
    assert (await sandbox.sign(pk, {"secret": secret})).status == 200  # the OTP still works


def png_declaring(width: int, height: int) -> bytes:
    """A valid PNG header (and one tiny IDAT) that declares ``width`` by ``height`` pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(
        b"IEND", b"")


@pytest.mark.parametrize("size", [(20_000, 20_000), (6_000, 6_000)])
@pytest.mark.parametrize("path", ["/api/v1/image", "/oneshot/api/v1/image"])
async def test_an_image_declaring_too_many_pixels_is_a_413_and_not_stored(sandbox, path, size):
    form = aiohttp.FormData()
    form.add_field("image", png_declaring(*size), filename="bomb.png", content_type="image/png")
    answer = await sandbox.call("POST", path, data=form)
    assert answer.status == 413, answer.body
    assert "declares" in json.dumps(answer.body) and "25000000" in json.dumps(answer.body)
    listed = await sandbox.call("GET", "/api/v1/images")
    assert "bomb.png" not in json.dumps(listed.body)


async def test_an_inline_signature_image_declaring_too_many_pixels_is_the_sign_400(sandbox):
    pk = await sandbox.create_request()
    uid = await sandbox.upload_pdf(pk)
    secret = await sandbox.otp(pk)
    options = {uid: {"position": "10, 10, 200, 80", "page": 0,
                     "b64_image": base64.b64encode(png_declaring(20_000, 20_000)).decode()}}
    answer = await sandbox.sign(pk, {"secret": secret, "options": options})
    assert answer.status == 400 and "pixels" in json.dumps(answer.body), answer.body


@pytest.mark.parametrize(("field", "value", "status", "shown"), [
    ("given_name", "A" * 65, 412, "common name would take"),
    ("given_name", "Ñ" * 40, 412, "common name would take"),  # 40 characters, 80 bytes of UTF-8
    ("surname_2", "Lopez-" * 10, 412, "surname_2"),
    ("given_name", "\ud800", 400, "not valid Unicode"),
    ("surname_1", "Ok\udfffay", 400, "not valid Unicode"),
])
async def test_a_name_no_certificate_can_hold_is_refused_at_create(sandbox, field, value, status, shown):
    before = await sandbox.call("GET", "/_mock/requests")
    answer = await sandbox.call("POST", "/api/v1/request",
                                json={**IDENTITY, "token": DEFAULT_TOKEN, field: value})
    assert answer.status == status, answer.body
    assert shown in answer.body["details"], answer.body
    assert (await sandbox.call("GET", "/_mock/requests")).body == before.body


async def test_the_longest_names_a_certificate_holds_sign(sandbox):
    pk = await sandbox.create_request(given_name="A" * 30, surname_1="B" * 16, surname_2="C" * 16)  # 64 bytes
    await sandbox.upload_pdf(pk)
    answer = await sandbox.sign(pk, {"secret": await sandbox.otp(pk)})
    assert answer.status == 200, answer.body


async def test_a_lone_surrogate_is_refused_by_the_newer_family_too(sandbox):
    answer = await sandbox.call("POST", "/oneshot/api/v1/create",
                                json={**IDENTITY, "token": DEFAULT_TOKEN, "given_name": "\ud800"})
    assert answer.status == 400 and "not valid Unicode" in answer.body["message"], answer.body


async def test_a_body_of_forty_thousand_parts_is_refused_without_holding_other_calls_back(sandbox):
    boundary = "many-parts"
    body = multipart_body(boundary, [(f"f{i}", None, "text/plain", b"x") for i in range(40_000)])

    async def hello_while_posting() -> float:
        await asyncio.sleep(0.05)
        started = time.perf_counter()
        assert (await sandbox.call("GET", "/api/v1/hello")).status == 200
        return time.perf_counter() - started

    posted, waited = await asyncio.gather(
        sandbox.call("POST", "/api/v1/request", data=body,
                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}),
        hello_while_posting())
    assert posted.status == 413, posted.body
    assert posted.body == {"status": "413 Request Entity Too Large", "details": "Request body has more than 256 parts"}
    assert waited < 0.5, f"hello waited {waited:.2f} s behind the parts"
    assert (await sandbox.call("GET", "/_mock/requests")).body == {"requests": []}


@pytest.mark.parametrize("path", ["/api/v1/hello", "/oneshot/api/v1/tokens", "/_mock/errors", "/openapi.json"])
async def test_head_on_a_get_route_answers_its_headers_without_a_body(sandbox, path):
    got = await sandbox.call("GET", path)
    async with sandbox.http.request("HEAD", path) as head:
        assert head.status == got.status and await head.read() == b""
        assert head.content_type == got.content_type
        assert int(head.headers["Content-Length"]) == len(got.raw)


async def test_head_on_a_route_without_get_is_still_a_405(sandbox):
    async with sandbox.http.request("HEAD", "/api/v1/sign/1") as head:
        assert head.status == 405 and head.content_type == "application/json"


PROTOCOL_FAULTS = {
    "request line": (b"GARBAGE\r\n\r\n", "legacy"),
    "header": (b"GET /oneshot/api/v1/tokens HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n", "newer"),
    "header too long": (b"GET /api/v1/hello HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 10_000 + b"\r\n\r\n", "legacy"),
    "chunk size": (b"POST /oneshot/api/v1/sign/1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", "newer"),
    "content length": (b"POST /api/v1/sign/1 HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}", "legacy"),
    "length and chunked": (b"POST /oneshot/api/v1/otp/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n{}", "newer"),
    "version": (b"GET /api/v1/hello HTTP/9.9\r\nHost: x\r\n\r\n", "legacy"),
}


@pytest.mark.parametrize("fault", PROTOCOL_FAULTS)
async def test_a_protocol_fault_is_the_familys_400_and_one_warning_line(sandbox, caplog, fault):
    raw, family = PROTOCOL_FAULTS[fault]
    reader, writer = await asyncio.open_connection(sandbox.http.host, sandbox.http.port)
    writer.write(raw)
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 400 " in head.split(b"\r\n")[0], answer[:200]
    assert b"application/json" in head
    details = json.loads(body)
    if family == "legacy":
        assert details["status"] == "400 Bad Request" and details["details"].startswith("Malformed HTTP request: ")
    else:
        assert details["status"] == "error" and details["message"].startswith("Malformed HTTP request: ")
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(records) == 1 and records[0].levelno == logging.WARNING and records[0].exc_info is None, records
