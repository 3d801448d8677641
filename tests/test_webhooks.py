"""Asynchronous mode and webhooks, delivered over HTTP to real receivers on the loopback."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import itertools
import re
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.conftest import free_port
from tests.helpers import DEFAULT_TOKEN, IDENTITY, SandboxClient, blank_pdf, validate
from tests.receivers import Delivery, Reply

ASYNC_ANSWER = {"status": "200 OK",
                "details": "Your documents are going to be signed. You will receive them in a few seconds"}
LEGACY_KEYS = {"status", "date", "previous_status", "request", "registration_authority"}
NEW_KEYS = {"event_type", "sent_at", "request", "certificates"}
NEW_REQUEST_KEYS = {"status", "profile", "registration_authority", "scratchcard", "pk"}
CERTIFICATE_KEYS = {"status", "serial_number", "valid_from", "valid_to"}
LOG_KEYS = {"id", "request", "event", "target", "format", "state", "created_at", "payload", "attempts",
            "next_attempt_at"}
ATTEMPT_KEYS = {"at", "target", "status", "error", "latency_ms"}
LEGACY_DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}")
SENT_AT = re.compile(r"\d{14}")
CERTIFICATE_TIME = re.compile(r"\d{8} \d{2}:\d{2}:\d{2}")
FLOW = [("CREATED", None), ("ENROLLREADY", "CREATED"), ("ISSUED", "ENROLLREADY")]


# Sandbox helpers ----------------------------------------------------------------------------------


async def create_async(sandbox: SandboxClient, callback: str, **changes: Any) -> int:
    return await sandbox.create_request(useasync="true", callback=callback, **changes)


async def sign_with_otp(sandbox: SandboxClient, pk: int):
    return await sandbox.sign(pk, {"secret": await sandbox.otp(pk)})


async def async_status(sandbox: SandboxClient, pk: int) -> str:
    answer = await sandbox.call("GET", f"/api/v1/async/status/{pk}")
    assert answer.status == 200, answer.body
    return answer.body["details"]


async def wait_signed(sandbox: SandboxClient, pk: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while (status := await async_status(sandbox, pk)) != "signed":
        assert status == "signing", status
        assert time.monotonic() < deadline, f"request {pk} still {status} after {timeout} s"
        await asyncio.sleep(0.05)


async def webhook_log(sandbox: SandboxClient, pk: int | None = None) -> list[dict[str, Any]]:
    answer = await sandbox.call("GET", "/_mock/webhooks" + (f"?request={pk}" if pk is not None else ""))
    assert answer.status == 200, answer.body
    return answer.body["webhooks"]


async def wait_log(sandbox: SandboxClient, pk: int, done: Callable[[list[dict[str, Any]]], bool],
                   timeout: float = 15.0) -> list[dict[str, Any]]:
    """The request's webhook log once ``done(log)`` holds."""
    deadline = time.monotonic() + timeout
    while not done(log := await webhook_log(sandbox, pk)):
        assert time.monotonic() < deadline, f"webhook log never settled: {log}"
        await asyncio.sleep(0.02)
    return log


def all_delivered(log: list[dict[str, Any]]) -> bool:
    return bool(log) and all(e["state"] == "delivered" for e in log)


def statuses(deliveries: list[Delivery]) -> list[tuple[str, str | None]]:
    return [(d.json["status"], d.json["previous_status"]) for d in deliveries]


def expected_signature(secret_key: bytes, delivery: Delivery) -> str:
    """Standard Webhooks: v1,base64(HMAC-SHA256(key, "id.timestamp.body")), written independently."""
    message = f"{delivery.id}.{delivery.headers['webhook-timestamp']}.".encode() + delivery.body
    return "v1," + base64.b64encode(hmac.digest(secret_key, message, "sha256")).decode()


def signature_matches(secret_key: bytes, delivery: Delivery) -> bool:
    sent = delivery.headers["webhook-signature"].split(" ")
    return any(hmac.compare_digest(s, expected_signature(secret_key, delivery)) for s in sent)


# Asynchronous mode --------------------------------------------------------------------------------


async def test_async_flow_end_to_end(receiver, sandbox):
    downloads = []

    async def fetch_signed(delivery: Delivery) -> None:
        """A client fetches the signed document as soon as it is told the request is ISSUED."""
        if delivery.status == "ISSUED":
            downloads.append(await sandbox.call("GET", f"/api/v1/document/{pk}/signed/{uid}"))

    receiver.on_delivery = fetch_signed
    pk = await create_async(sandbox, receiver.url)
    uid = await sandbox.upload_pdf(pk, blank_pdf(2))
    assert await async_status(sandbox, pk) == "approved"

    answer = await sign_with_otp(sandbox, pk)
    assert (answer.status, answer.body) == (200, ASYNC_ANSWER)
    assert await async_status(sandbox, pk) == "signing", "sign answered before the signing was done"
    await wait_signed(sandbox, pk)

    deliveries = await receiver.wait_for(3)
    assert statuses(deliveries) == FLOW
    assert all(d.method == "POST" and d.path == "/hooks/oneshot" for d in deliveries)
    assert all(d.headers["Content-Type"].startswith("application/json") for d in deliveries)
    assert [d.json["request"] for d in deliveries] == [pk] * 3
    assert len({d.id for d in deliveries}) == 3, "every event has its own webhook-id"
    [download] = downloads
    assert download.status == 200 and download.content_type == "application/pdf", download.body
    status = await validate(download.raw)
    assert status.bottom_line, status.pretty_print_details()
    detail = (await sandbox.call("GET", f"/api/v1/request/{pk}")).body["details"]
    assert detail["status"] == "ISSUED"


@pytest.mark.parametrize("multipart", [True, False], ids=["multipart", "json"])
async def test_async_mode_from_either_create_body(receiver, sandbox, multipart):
    fields = {"token": DEFAULT_TOKEN, **IDENTITY, "useasync": True, "callback": receiver.url}
    if multipart:
        fields["useasync"] = "true"
    created = await sandbox.create_request_raw(fields, multipart=multipart)
    assert created.status == 201, created.body
    pk = created.body["details"]
    await sandbox.upload_pdf(pk)
    assert (await sign_with_otp(sandbox, pk)).body == ASYNC_ANSWER
    await wait_signed(sandbox, pk)
    assert statuses(await receiver.wait_for(3)) == FLOW


async def test_wrong_otp_in_async_mode_is_refused_at_once(receiver, sandbox):
    pk = await create_async(sandbox, receiver.url)
    uid = await sandbox.upload_pdf(pk)
    await sandbox.otp(pk)
    answer = await sandbox.sign(pk, {"secret": "000000x"})
    assert answer.status == 403
    assert answer.body == {"status": "403 Forbidden", "details": "Confirmation Code invalid"}
    assert await async_status(sandbox, pk) == "approved"
    assert (await sandbox.call("GET", f"/api/v1/document/{pk}/signed/{uid}")).status == 404
    log = await webhook_log(sandbox, pk)
    assert [e["event"] for e in log] == ["CREATED", "ENROLLREADY"], "nothing was signed"


async def slow_async_request(sandbox: SandboxClient, callback: str) -> tuple[int, str]:
    """An async request whose background signing takes a while: ten 40-page documents."""
    pk = await create_async(sandbox, callback)
    pdf = blank_pdf(40)
    answer = await sandbox.upload(pk, *[("file", f"doc{i}.pdf", pdf) for i in range(10)])
    assert answer.status == 200, answer.body
    return pk, answer.body["details"][-1]["uid"]


async def test_signed_document_not_found_while_signing(receiver, sandbox):
    pk, uid = await slow_async_request(sandbox, receiver.url)
    assert (await sign_with_otp(sandbox, pk)).body == ASYNC_ANSWER
    early = await sandbox.call("GET", f"/api/v1/document/{pk}/signed/{uid}")
    assert await async_status(sandbox, pk) == "signing", "the check below ran too late to mean anything"
    assert early.status == 404
    assert early.body == {"status": "404 Not Found", "details": "Document not found"}
    await wait_signed(sandbox, pk, timeout=60)
    assert (await sandbox.call("GET", f"/api/v1/document/{pk}/signed/{uid}")).status == 200


async def test_second_sign_while_signing_is_refused(receiver, sandbox):
    pk, _ = await slow_async_request(sandbox, receiver.url)
    code = await sandbox.otp(pk)
    assert (await sandbox.sign(pk, {"secret": code})).body == ASYNC_ANSWER
    again = await sandbox.sign(pk, {"secret": code})
    assert (again.status, again.body["status"]) == (412, "412 Precondition Failed"), again.body
    assert await async_status(sandbox, pk) == "signing", f"answered only once signing was over: {again.body}"
    await wait_signed(sandbox, pk, timeout=60)
    issued = [e for e in await webhook_log(sandbox, pk) if e["event"] == "ISSUED"]
    assert len(issued) == 1, "the request was signed once"


async def test_async_status_of_unknown_request(sandbox):
    answer = await sandbox.call("GET", "/api/v1/async/status/999")
    assert answer.status == 404
    assert answer.body == {"status": "404 Not Found",
                           "details": "Request 999 not found. Make sure the upload directory is correct"}


@pytest.mark.parametrize("multipart", [True, False], ids=["multipart", "json"])
async def test_non_http_callback_is_refused_at_create(sandbox, multipart):
    fields = {"token": DEFAULT_TOKEN, **IDENTITY, "useasync": "true", "callback": "ftp://x"}
    answer = await sandbox.create_request_raw(fields, multipart=multipart)
    assert answer.status == 400
    assert answer.body["status"] == "400 Bad Request"
    assert (await sandbox.call("GET", "/_mock/requests")).body["requests"] == []


# Delivery: retries, ordering, give up, timeout -----------------------------------------------------


async def test_failed_deliveries_are_retried_with_the_same_id(receiver, make_client):
    sandbox = await make_client(webhook_retry_scale=0.01)
    receiver.script.extend([500, 500])
    pk = await create_async(sandbox, receiver.url)
    await sandbox.upload_pdf(pk)
    await sign_with_otp(sandbox, pk)
    await wait_signed(sandbox, pk)

    deliveries = await receiver.wait_for(5)
    assert statuses(deliveries) == [FLOW[0], FLOW[0], FLOW[0], FLOW[1], FLOW[2]]
    first, second, third = deliveries[:3]
    assert first.id == second.id == third.id
    assert len({first.id, deliveries[3].id, deliveries[4].id}) == 3
    assert second.at - first.at >= 0.01 and third.at - second.at >= 0.05, "retries follow 1 s, 5 s (scaled)"
    log = await wait_log(sandbox, pk, lambda log: len(log) == 3 and all_delivered(log))
    assert [a["status"] for a in log[0]["attempts"]] == [500, 500, 200]
    assert [len(e["attempts"]) for e in log[1:]] == [1, 1]
    assert [e["id"] for e in log] == [first.id, deliveries[3].id, deliveries[4].id]


@pytest.mark.parametrize("status", [202, 204, 299])
async def test_any_2xx_answer_is_a_success(receiver, make_client, status):
    sandbox = await make_client(webhook_retry_scale=0.01)
    receiver.script.append(status)
    pk = await create_async(sandbox, receiver.url)
    assert statuses(await receiver.wait_for(2)) == FLOW[:2]
    log = await wait_log(sandbox, pk, lambda log: len(log) == 2 and all_delivered(log))
    assert [a["status"] for a in log[0]["attempts"]] == [status]


async def test_receiver_down_then_up_gets_every_event_in_order(start_receiver, make_client):
    port = free_port()
    callback = f"http://127.0.0.1:{port}/hooks/oneshot"
    sandbox = await make_client()  # retries after 1 s, then 5 s: the flush below makes them now
    pk = await create_async(sandbox, callback)
    await sandbox.upload_pdf(pk)
    await sign_with_otp(sandbox, pk)
    await wait_signed(sandbox, pk)

    log = await wait_log(sandbox, pk, lambda log: len(log) == 3 and bool(log[0]["attempts"]))
    assert [e["state"] for e in log] == ["pending"] * 3
    assert [len(e["attempts"]) for e in log[1:]] == [0, 0], "later events wait for the first"
    receiver = await start_receiver(port)
    flushed = await sandbox.call("POST", "/_mock/webhooks/flush")
    assert flushed.body == {"pending": 3}

    assert statuses(await receiver.wait_for(3, timeout=10)) == FLOW
    log = await wait_log(sandbox, pk, all_delivered)
    *refused, delivered = log[0]["attempts"]
    assert refused and all(a["status"] is None and a["error"] for a in refused), refused
    assert all(a["target"] == callback for a in log[0]["attempts"])
    assert delivered["status"] == 200 and delivered["error"] is None


@pytest.mark.slow
async def test_receiver_slower_than_the_timeout_counts_as_a_failure(receiver, make_client):
    # The 5 s timeout is not configurable: this test takes a little over 5 s.
    sandbox = await make_client(webhook_retry_scale=0.01)
    receiver.script.append(Reply(200, delay=8))
    pk = await create_async(sandbox, receiver.url)
    deliveries = await receiver.wait_for(3, timeout=12)
    assert statuses(deliveries) == [FLOW[0], FLOW[0], FLOW[1]]
    assert deliveries[0].id == deliveries[1].id
    assert 4.5 <= deliveries[1].at - deliveries[0].at < 7.5
    log = await wait_log(sandbox, pk, lambda log: len(log) == 2 and all_delivered(log))
    timed_out, delivered = log[0]["attempts"]
    assert timed_out["status"] is None and timed_out["error"], timed_out
    assert 4500 <= timed_out["latency_ms"] < 7500
    assert delivered["status"] == 200


async def test_delivery_is_given_up_after_six_attempts_then_the_next_event_goes(receiver, make_client):
    sandbox = await make_client(webhook_retry_scale=0.001)  # 1, 5, 30, 120, 600 ms
    receiver.script.extend([503] * 6)
    pk = await create_async(sandbox, receiver.url)

    deliveries = await receiver.wait_for(7, timeout=10)
    assert statuses(deliveries) == [FLOW[0]] * 6 + [FLOW[1]]
    assert len({d.id for d in deliveries[:6]}) == 1
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(deliveries[:6])]
    assert all(gap >= wanted for gap, wanted in zip(gaps, (0.001, 0.005, 0.03, 0.12, 0.6), strict=True)), gaps
    log = await wait_log(sandbox, pk, lambda log: len(log) == 2 and log[1]["state"] == "delivered")
    assert log[0]["state"] == "failed"
    assert [a["status"] for a in log[0]["attempts"]] == [503] * 6
    await asyncio.sleep(0.05)
    assert len(receiver.deliveries) == 7, "a given-up event is not sent again"


# Signatures -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "key"),
    [("a plain sandbox secret ü", "a plain sandbox secret ü".encode()),
     ("whsec_" + base64.b64encode(b"\x00\x01binary key\xff").decode(), b"\x00\x01binary key\xff")],
    ids=["utf8", "whsec"],
)
async def test_deliveries_are_signed_per_standard_webhooks(receiver, make_client, secret, key):
    sandbox = await make_client(webhook_secret=secret)
    await create_async(sandbox, receiver.url)
    deliveries = await receiver.wait_for(2)
    for delivery in deliveries:
        assert delivery.headers["webhook-signature"].startswith("v1,")
        assert signature_matches(key, delivery), delivery.headers["webhook-signature"]
        assert not signature_matches(b"another secret", delivery)
        assert abs(int(delivery.headers["webhook-timestamp"]) - time.time()) < 60
        tampered = Delivery(delivery.method, delivery.path, delivery.headers, delivery.body + b" ", delivery.at)
        assert not signature_matches(key, tampered)


async def test_no_signature_without_a_secret(receiver, sandbox):
    await create_async(sandbox, receiver.url)
    for delivery in await receiver.wait_for(2):
        assert "webhook-signature" not in delivery.headers
        assert delivery.id.strip() and delivery.headers["webhook-timestamp"].isdigit()


# Payloads ----------------------------------------------------------------------------------------------


async def test_legacy_payloads_key_by_key(receiver, sandbox):
    pk = await create_async(sandbox, receiver.url)
    await sandbox.upload_pdf(pk)
    await sign_with_otp(sandbox, pk)
    await wait_signed(sandbox, pk)
    deliveries = await receiver.wait_for(3)
    for delivery, (status, previous) in zip(deliveries, FLOW, strict=True):
        payload = delivery.json
        assert set(payload) == LEGACY_KEYS
        assert payload["status"] == status and payload["previous_status"] == previous
        assert payload["request"] == pk and payload["registration_authority"] == 9999
        assert LEGACY_DATE.fullmatch(payload["date"]), payload["date"]
    dates = [datetime.fromisoformat(d.json["date"]) for d in deliveries]
    assert dates == sorted(dates)


async def test_legacy_target_gets_no_revocation_event(receiver, sandbox):
    pk = await create_async(sandbox, receiver.url)
    await sandbox.upload_pdf(pk)
    await sign_with_otp(sandbox, pk)
    await wait_signed(sandbox, pk)
    await receiver.wait_for(3)
    revoked = await sandbox.call("POST", "/_mock/pki/revoke", json={"request": pk})
    assert revoked.status == 200, revoked.body
    assert [e["event"] for e in await webhook_log(sandbox, pk)] == ["CREATED", "ENROLLREADY", "ISSUED"]
    assert (await sandbox.call("POST", "/_mock/webhooks/flush")).body == {"pending": 0}
    assert len(receiver.deliveries) == 3


def check_new_payload(payload: dict[str, Any], event_type: str, status: str, detail: dict[str, Any]) -> None:
    assert set(payload) == NEW_KEYS, payload
    assert payload["event_type"] == event_type
    assert SENT_AT.fullmatch(payload["sent_at"]), payload["sent_at"]
    datetime.strptime(payload["sent_at"], "%Y%m%d%H%M%S")
    assert payload["request"] == {
        "status": status, "profile": "PFnubeQAFCiudadano", "registration_authority": 9999,
        "scratchcard": detail["scratchcard"], "pk": detail["pk"],
    }
    assert set(payload["request"]) == NEW_REQUEST_KEYS


def check_certificate(entry: dict[str, Any], status: str, detail: dict[str, Any]) -> None:
    [issued] = detail["certificate_set"]
    assert set(entry) == CERTIFICATE_KEYS, entry
    assert entry["status"] == status
    assert entry["serial_number"] == issued["serial_number"]
    int(entry["serial_number"], 16)
    for key in ("valid_from", "valid_to"):
        assert CERTIFICATE_TIME.fullmatch(entry[key]), entry[key]
        same_moment = datetime.strptime(issued[key], "%Y-%m-%d %H:%M:%S+00:00")
        assert datetime.strptime(entry[key], "%Y%m%d %H:%M:%S") == same_moment


async def test_new_payloads_from_config_key_by_key(receiver, make_client):
    sandbox = await make_client(webhook_format="new")
    pk = await create_async(sandbox, receiver.url)
    await sandbox.upload_pdf(pk)
    await sign_with_otp(sandbox, pk)
    await wait_signed(sandbox, pk)
    created, approved, enrolled = [d.json for d in await receiver.wait_for(3)]
    detail = (await sandbox.call("GET", f"/api/v1/request/{pk}")).body["details"]
    check_new_payload(created, "REQUEST_CREATED", "CREATED", detail)
    check_new_payload(approved, "REQUEST_APPROVED", "ENROLLREADY", detail)
    check_new_payload(enrolled, "REQUEST_ENROLLED", "ISSUED", detail)
    assert created["certificates"] == [] and approved["certificates"] == []
    [certificate] = enrolled["certificates"]
    check_certificate(certificate, "VALID", detail)

    revoked = await sandbox.call("POST", "/_mock/pki/revoke", json={"request": pk})
    assert revoked.status == 200, revoked.body
    revocation = (await receiver.wait_for(4))[3].json
    detail = (await sandbox.call("GET", f"/api/v1/request/{pk}")).body["details"]
    check_new_payload(revocation, "CERTIFICATE_REVOKED", "ISSUED", detail)
    [certificate] = revocation["certificates"]
    check_certificate(certificate, "REVOKED", detail)
    log = await webhook_log(sandbox, pk)
    assert [(e["event"], e["format"]) for e in log][-1] == ("CERTIFICATE_REVOKED", "new")


async def test_new_format_per_registration_authority(receiver, sandbox):
    saved = await sandbox.call("POST", "/api/v1/settings", json={
        "registration_authorities": {"9999": {"webhook_url": receiver.url, "webhook_format": "new"}}})
    assert saved.status == 200, saved.body
    pk = await sandbox.create_request()
    await sandbox.upload_pdf(pk)
    await sign_with_otp(sandbox, pk)
    deliveries = await receiver.wait_for(3)
    detail = (await sandbox.call("GET", f"/api/v1/request/{pk}")).body["details"]
    for delivery, event_type, status in zip(
        deliveries, ("REQUEST_CREATED", "REQUEST_APPROVED", "REQUEST_ENROLLED"),
        ("CREATED", "ENROLLREADY", "ISSUED"), strict=True,
    ):
        check_new_payload(delivery.json, event_type, status, detail)
    check_certificate(deliveries[2].json["certificates"][0], "VALID", detail)


# Targets ----------------------------------------------------------------------------------------------


async def test_registration_authority_webhook_from_settings(receiver, sandbox):
    saved = await sandbox.call("POST", "/api/v1/settings",
                               json={"registration_authorities": {"9999": {"webhook_url": receiver.url}}})
    assert saved.status == 200, saved.body
    pk = await sandbox.create_request()
    await sandbox.upload_pdf(pk)
    assert (await sign_with_otp(sandbox, pk)).body["details"] == "Documents correctly signed"
    deliveries = await receiver.wait_for(3)
    assert statuses(deliveries) == FLOW
    assert all(set(d.json) == LEGACY_KEYS and d.json["request"] == pk for d in deliveries)
    assert {e["target"] for e in await webhook_log(sandbox, pk)} == {receiver.url}


async def test_registration_authority_webhook_from_config(receiver, make_client):
    sandbox = await make_client(ra_webhooks=(("9999", receiver.url),))
    pk = await sandbox.create_request()
    await sandbox.upload_pdf(pk)
    await sign_with_otp(sandbox, pk)
    assert statuses(await receiver.wait_for(3)) == FLOW


async def test_registration_authority_webhook_from_seed_file(receiver, make_client, tmp_path):
    seed = tmp_path / "seed.yaml"
    seed.write_text(yaml.safe_dump({"settings": {"registration_authorities": {"9999": {
        "webhook_url": receiver.url, "webhook_format": "new"}}}}))
    sandbox = await make_client(seed_file=seed)
    pk = await sandbox.create_request()
    deliveries = await receiver.wait_for(2)
    assert [d.json["event_type"] for d in deliveries] == ["REQUEST_CREATED", "REQUEST_APPROVED"]
    assert [d.json["request"]["pk"] for d in deliveries] == [pk, pk]


async def test_registration_authority_webhook_from_the_command_line(receiver, tmp_path):
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mock_server", "serve", "--port", str(port), "--workers", "1",
            "--ra-webhook", f"9999={receiver.url}", stdout=sink, stderr=sink,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            await wait_healthy(http, base, process, log)
            form = aiohttp.FormData({"token": DEFAULT_TOKEN, **IDENTITY})
            async with http.post(base + "/api/v1/request", data=form) as answer:
                assert answer.status == 201, await answer.text()
                pk = (await answer.json())["details"]
            deliveries = await receiver.wait_for(2)
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), timeout=15)
    assert statuses(deliveries) == FLOW[:2]
    assert [d.json["request"] for d in deliveries] == [pk, pk]


async def wait_healthy(http: aiohttp.ClientSession, base: str, process: asyncio.subprocess.Process,
                       log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert process.returncode is None, f"server exited: {log.read_text()}"
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(base + "/_mock/health") as answer:
                if answer.status == 200:
                    return
        assert time.monotonic() < deadline, f"server not up: {log.read_text()}"
        await asyncio.sleep(0.2)


async def test_callback_takes_precedence_over_the_authority_webhook(start_receiver, sandbox):
    authority, callback = await start_receiver(), await start_receiver()
    await sandbox.call("POST", "/api/v1/settings",
                       json={"registration_authorities": {"9999": {"webhook_url": authority.url}}})
    await create_async(sandbox, callback.url)
    assert statuses(await callback.wait_for(2)) == FLOW[:2]
    assert authority.deliveries == []


async def test_request_without_target_sends_nothing(receiver, sandbox):
    await sandbox.call("POST", "/api/v1/settings",
                       json={"registration_authorities": {"8888": {"webhook_url": receiver.url}}})
    silent = await sandbox.create_request()
    silent_async = await sandbox.create_request(useasync="true")
    for pk in (silent, silent_async):
        await sandbox.upload_pdf(pk)
        await sign_with_otp(sandbox, pk)
    await wait_signed(sandbox, silent_async)
    heard = await sandbox.create_request(registration_authority="8888")  # the receiver works
    deliveries = await receiver.wait_for(2)
    assert {d.json["request"] for d in deliveries} == {heard}
    assert await webhook_log(sandbox, silent) == [] and await webhook_log(sandbox, silent_async) == []
    assert {e["request"] for e in await webhook_log(sandbox)} == {heard}


@pytest.mark.parametrize("entry", [
    {"webhook_url": "ftp://example.test/hook"},
    {"webhook_url": "not a url"},
    {"webhook_url": "http://127.0.0.1:9/hook", "webhook_format": "xml"},
], ids=["ftp-url", "no-scheme", "bad-format"])
async def test_invalid_authority_settings_are_refused(sandbox, entry):
    before = (await sandbox.call("GET", "/api/v1/settings")).body["details"]
    answer = await sandbox.call("POST", "/api/v1/settings", json={"registration_authorities": {"9999": entry}})
    assert answer.status == 400
    assert answer.body["status"] == "400 Bad Request"
    assert (await sandbox.call("GET", "/api/v1/settings")).body["details"] == before


# Observability -----------------------------------------------------------------------------------------


async def test_delivery_log_shape(receiver, sandbox):
    pk = await create_async(sandbox, receiver.url)
    deliveries = await receiver.wait_for(2)
    log = await wait_log(sandbox, pk, lambda log: len(log) == 2 and all_delivered(log))
    for entry, delivery in zip(log, deliveries, strict=True):
        assert set(entry) == LOG_KEYS, entry
        assert entry["id"] == delivery.id and entry["request"] == pk
        assert entry["target"] == receiver.url and entry["format"] == "legacy"
        assert entry["payload"] == delivery.json
        datetime.fromisoformat(entry["created_at"])
        [attempt] = entry["attempts"]
        assert set(attempt) == ATTEMPT_KEYS, attempt
        assert attempt["target"] == receiver.url and attempt["status"] == 200 and attempt["error"] is None
        assert isinstance(attempt["latency_ms"], int | float) and attempt["latency_ms"] >= 0
        datetime.fromisoformat(attempt["at"])
    assert [e["event"] for e in log] == ["CREATED", "ENROLLREADY"]


async def test_delivery_log_filters_by_request(start_receiver, sandbox):
    first, second = await start_receiver(), await start_receiver()
    one = await create_async(sandbox, first.url)
    two = await create_async(sandbox, second.url)
    assert {e["request"] for e in await webhook_log(sandbox)} == {one, two}
    only_two = await webhook_log(sandbox, two)
    assert [(e["request"], e["event"]) for e in only_two] == [(two, "CREATED"), (two, "ENROLLREADY")]
    assert await webhook_log(sandbox, 999) == []
    await first.wait_for(2)
    await second.wait_for(2)


async def test_replay_sends_the_same_event_again(receiver, sandbox):
    pk = await create_async(sandbox, receiver.url)
    created, _ = await receiver.wait_for(2)
    [entry, _] = await wait_log(sandbox, pk, lambda log: len(log) == 2 and all_delivered(log))

    answer = await sandbox.call("POST", f"/_mock/webhooks/{entry['id']}/replay")
    assert answer.status == 200, answer.body
    assert set(answer.body) == ATTEMPT_KEYS and answer.body["status"] == 200
    replayed = receiver.deliveries[2]
    assert replayed.id == created.id and replayed.body == created.body
    [after, _] = await webhook_log(sandbox, pk)
    assert len(after["attempts"]) == 2 and after["attempts"][-1]["status"] == 200


async def test_replay_of_unknown_event(sandbox):
    answer = await sandbox.call("POST", "/_mock/webhooks/msg_unknown/replay")
    assert answer.status == 404


async def test_flush_sends_waiting_retries_now(receiver, make_client):
    sandbox = await make_client(webhook_retry_scale=10)  # the first retry would wait 10 s
    receiver.script.append(500)
    pk = await create_async(sandbox, receiver.url)
    await wait_log(sandbox, pk, lambda log: len(log) == 2 and bool(log[0]["attempts"]))
    flushed = await sandbox.call("POST", "/_mock/webhooks/flush")
    assert flushed.status == 200 and flushed.body == {"pending": 2}
    deliveries = await receiver.wait_for(3, timeout=3)
    assert statuses(deliveries) == [FLOW[0], FLOW[0], FLOW[1]]
    await wait_log(sandbox, pk, all_delivered)
    assert (await sandbox.call("POST", "/_mock/webhooks/flush")).body == {"pending": 0}


async def test_reset_clears_the_delivery_log(receiver, sandbox):
    pk = await create_async(sandbox, receiver.url)
    await wait_log(sandbox, pk, lambda log: len(log) == 2 and all_delivered(log))
    assert (await sandbox.call("POST", "/_mock/reset")).status == 200
    assert await webhook_log(sandbox) == []


async def test_an_event_keeps_its_id_whatever_happened_around_it(receiver, make_client):
    """Ids follow the event (sandbox, request, its place in the history), not the order of the
    sandbox's random draws: a request signed again after a restart, beside other work, repeats its
    events under the ids they had, and receivers can de-duplicate."""
    ids = []
    for order in ((0, 1), (1, 0)):
        sandbox = await make_client(ra_webhooks=(("9999", receiver.url),))
        pks = [await sandbox.create_request(), await sandbox.create_request()]
        for index in order:
            assert (await sandbox.call("DELETE", f"/api/v1/request/{pks[index]}")).status == 200
            await sandbox.create_request()  # more random draws in between, in a different place
        events = {pk: (await sandbox.call("GET", "/_mock/webhooks", params={"request": str(pk)})).body["webhooks"]
                  for pk in pks}
        ids.append({pk: [(e["event"], e["id"]) for e in found] for pk, found in events.items()})
    assert ids[0] == ids[1]
    assert len({event_id for found in ids[0].values() for _, event_id in found}) == sum(map(len, ids[0].values()))
