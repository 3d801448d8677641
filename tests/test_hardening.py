"""Garbage in, envelope out: deep JSON, odd paths; and a control API that can be guarded or removed."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers import DEFAULT_TOKEN

DEEP = b"[" * 50_000


@pytest.mark.parametrize(
    ("path", "status_text", "details"),
    [
        ("/api/v1/sign/1", "400 Bad Request", "Could not parse JSON body - nested too deeply"),
        ("/api/v1/token", "400 Bad Request", "Could not parse JSON body - nested too deeply"),
        # The vendor's documented answer for settings carries no parser message.
        ("/api/v1/settings", "Invalid JSON", "Could not parse JSON body"),
        ("/oneshot/api/v1/otp/1", None, "Could not parse request body: nested too deeply"),
    ],
)
async def test_deeply_nested_json_is_a_400_not_a_crash(sandbox, path, status_text, details):
    answer = await sandbox.call("POST", path, data=DEEP, headers={"Content-Type": "application/json"})
    assert answer.status == 400, answer.body
    if status_text:
        assert answer.body == {"status": status_text, "details": details}
    else:
        assert answer.body["status"] == "error" and answer.body["message"] == details


async def test_deeply_nested_scenario_is_refused(sandbox):
    answer = await sandbox.call("POST", "/_mock/scenarios", data=DEEP)
    assert answer.status == 400 and "nested too deeply" in answer.body["error"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/document/1/original/..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/v1/image/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/api/v1/request/1%00",
        "/api/v1/documents/-1",
        "/oneshot/api/v1/document/1/%2Fetc%2Fshadow?document_type=original",
    ],
)
async def test_odd_path_parameters_are_404_in_the_envelope(sandbox, path):
    answer = await sandbox.call("GET", path)
    assert answer.status == 404
    assert answer.content_type == "application/json"
    status = answer.body["status"]
    assert status in ("404 Not Found", "error")


async def test_control_api_needs_the_admin_token(make_client):
    sandbox = await make_client(admin_token="s3cret")
    assert (await sandbox.call("GET", "/_mock/health")).status == 401
    wrong = await sandbox.call("GET", "/_mock/health", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 403 and "admin token" in wrong.body["error"]
    right = await sandbox.call("GET", "/_mock/health", headers={"Authorization": "Bearer s3cret"})
    assert right.status == 200 and right.body["status"] == "ok"
    tokens = await sandbox.call("GET", "/api/v1/tokens")
    assert tokens.status == 200 and DEFAULT_TOKEN in tokens.body["details"], "the vendor API stays open"


async def test_control_api_can_be_removed(make_client):
    sandbox = await make_client(control_api=False)
    for path in ("/_mock/health", "/_mock/sms", "/_mock/pki/ca.pem"):
        assert (await sandbox.call("GET", path)).status == 404
    assert (await sandbox.call("GET", "/api/v1/hello")).status == 200


async def test_sms_outbox_keeps_the_newest_entries(make_client):
    sandbox = await make_client(max_log_entries=3, otp_resend_seconds=0)
    pk = await sandbox.create_request()
    codes = [await sandbox.otp(pk) for _ in range(5)]
    kept = (await sandbox.call("GET", f"/_mock/sms?request={pk}")).body["messages"]
    assert [m["otp"] for m in kept] == codes[-3:]


async def _settled(sandbox) -> list[dict]:
    """The webhook log once no event is pending any more."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        events = (await sandbox.call("GET", "/_mock/webhooks")).body["webhooks"]
        if all(e["state"] != "pending" for e in events) or asyncio.get_running_loop().time() > deadline:
            return events
        await asyncio.sleep(0.02)


async def test_webhook_log_keeps_the_newest_finished_events(make_client):
    # A target that refuses connections at once: every event fails fast and is given up.
    sandbox = await make_client(max_log_entries=3, webhook_retry_scale=0.0001,
                                ra_webhooks=(("9999", "http://127.0.0.1:9/hook"),))
    pks = []
    for _ in range(3):
        pks.append(await sandbox.create_request())
        await _settled(sandbox)
    events = await _settled(sandbox)
    assert [(e["request"], e["event"]) for e in events] == [
        (pks[1], "ENROLLREADY"), (pks[2], "CREATED"), (pks[2], "ENROLLREADY"),
    ]
    assert all(e["state"] == "failed" for e in events)
