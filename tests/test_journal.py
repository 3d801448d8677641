"""The request journal (``/_mock/journal``) and near-miss hints, over HTTP as a client sees them."""

from __future__ import annotations

import hashlib

import pytest

from mock_server.testing.client import ControlClient, JournalMismatch
from tests.helpers import blank_pdf, running_sandbox


async def journal(sandbox, **query) -> list[dict]:
    answer = await sandbox.call("GET", "/_mock/journal", params=query)
    assert answer.status == 200, answer.body
    return answer.body["entries"]


async def signed_flow(sandbox) -> tuple[int, str, bytes]:
    pk = await sandbox.create_request()
    pdf = blank_pdf()
    uid = await sandbox.upload_pdf(pk, pdf)
    assert (await sandbox.sign(pk, {"secret": "000000"})).status == 403
    assert (await sandbox.sign(pk, {"secret": await sandbox.otp(pk)})).status == 200
    assert len(await sandbox.signed(pk, uid)) > 0
    return pk, uid, pdf


async def test_a_classic_flow_is_journaled_in_order_with_secrets_redacted(sandbox):
    pk, uid, pdf = await signed_flow(sandbox)
    entries = await journal(sandbox)
    assert [entry["operation"] for entry in entries] == [
        "create_request", "upload_document", "sign", "generate_otp", "sign", "retrieve_document"]
    assert all(entry["request_pk"] == pk and entry["namespace"] == "" for entry in entries)
    created, upload, refused, _, signed, download = entries
    assert created["body"]["token"] == "[redacted]" and created["body"]["given_name"]
    assert created["status"] == 201 and created["response"]["details"] == pk
    [part] = upload["body"]["parts"]
    assert part == {"name": "file", "filename": "doc.pdf", "content_type": "application/pdf", "size": len(pdf),
                    "sha256": hashlib.sha256(pdf).hexdigest()}
    assert upload["response"]["details"] == uid
    assert refused["status"] == 403 and refused["error"] == "sign.403.invalid_otp"
    assert refused["body"] == {"secret": "[redacted]"} and signed["body"] == {"secret": "[redacted]"}
    assert download["response"]["content_type"] == "application/pdf" and "sha256" not in download["response"]
    assert download["response"]["size"] > len(pdf)
    assert all(entry["ms"] >= 0 and entry["at"] for entry in entries)


async def test_credentials_in_headers_and_token_answers_are_redacted(sandbox):
    created = await sandbox.call("POST", "/api/v1/token", json={"username": "9001800", "password": "oneshot-mock",
                                                               "pin": "123456"},
                                 headers={"Authorization": "Basic c2VjcmV0", "X-Trace": "kept"})
    assert created.status in (200, 201), created.body
    [entry] = await journal(sandbox, operation="create_token")
    assert entry["headers"]["Authorization"] == "[redacted]" and entry["headers"]["X-Trace"] == "kept"
    assert entry["body"] == {"username": "9001800", "password": "[redacted]", "pin": "[redacted]"}
    token = created.body["details"]
    assert token not in str(entry), "the token handed out is not shown"


async def test_filters_narrow_the_journal(sandbox):
    pk, _, _ = await signed_flow(sandbox)
    other = await sandbox.create_request()
    assert [e["status"] for e in await journal(sandbox, path="/api/v1/sign/*")] == [403, 200]
    assert [e["status"] for e in await journal(sandbox, path="/api/v1/sign/*", status=200)] == [200]
    assert {e["request_pk"] for e in await journal(sandbox, method="post")} == {pk, other}
    assert [e["operation"] for e in await journal(sandbox, pk=other)] == ["create_request"]
    everything = await journal(sandbox)
    since = await journal(sandbox, since=everything[-2]["id"])
    assert since == everything[-1:]
    assert len(await journal(sandbox, limit=2)) == 2
    assert len(await journal(sandbox, since="2000-01-01T00:00:00")) == len(everything), "no zone: UTC"
    refused = await sandbox.call("GET", "/_mock/journal", params={"status": "ok"})
    assert refused.status == 400 and "status" in refused.body["error"]
    unknown = await sandbox.call("GET", "/_mock/journal", params={"colour": "blue"})
    assert unknown.status == 400 and "colour" in unknown.body["error"]


async def test_count_and_verify(sandbox):
    pk, _, _ = await signed_flow(sandbox)
    sign_with_secret = {"operation": "sign", "pk": pk, "body": {"secret": "present"}}
    assert (await sandbox.call("POST", "/_mock/journal/count", json=sign_with_secret)).body == {"count": 2}
    exact = await sandbox.call("POST", "/_mock/journal/verify", json={**sign_with_secret, "status": 200, "count": 1})
    assert exact.body["verified"] is True, exact.body
    wrong = await sandbox.call("POST", "/_mock/journal/verify", json={**sign_with_secret, "count": 1})
    assert wrong.body["verified"] is False and wrong.body["count"] == 2
    assert "expected exactly 1 any method sign for request" in wrong.body["message"], wrong.body
    none = await sandbox.call("POST", "/_mock/journal/verify", json={"operation": "delete_document"})
    assert none.body["verified"] is False and "at least 1" in none.body["expected"]
    no_secret = {"operation": "sign", "body": {"secret": "absent"}}
    absent = await sandbox.call("POST", "/_mock/journal/count", json=no_secret)
    assert absent.body == {"count": 0}
    bad = await sandbox.call("POST", "/_mock/journal/verify", json={"count": 1, "at_least": 1})
    assert bad.status == 400


async def test_a_reset_clears_the_journal_and_it_keeps_the_newest_entries(make_client):
    sandbox = await make_client(max_log_entries=3)
    for _ in range(5):
        await sandbox.call("GET", "/api/v1/hello")
    kept = await journal(sandbox)
    assert [entry["id"] for entry in kept] == [3, 4, 5]
    assert (await sandbox.call("POST", "/_mock/reset")).status == 200
    assert await journal(sandbox) == []
    await sandbox.call("GET", "/api/v1/version")
    assert [entry["id"] for entry in await journal(sandbox)] == [6], "ids go on rising: since stays meaningful"


async def test_namespaces_keep_journals_of_their_own(sandbox):
    qa = sandbox.in_namespace("qa")
    await qa.call("GET", "/api/v1/hello")
    assert [entry["path"] for entry in await journal(qa)] == ["/api/v1/hello"]
    assert await journal(sandbox) == []


@pytest.mark.parametrize(("method", "path", "closest"), [
    ("GET", "/api/v1/requests", "GET /api/v1/request/{pk}"),
    ("POST", "/api/v1/sing/35247", "POST /api/v1/sign/{pk}"),
    ("GET", "/oneshot/api/v1/reqest/35247", "GET /oneshot/api/v1/request/{request_pk}"),
    ("PUT", "/api/v1/hello", "GET /api/v1/hello"),
])
async def test_an_unknown_route_names_the_closest_of_its_family(sandbox, method, path, closest):
    answer = await sandbox.call(method, path)
    assert answer.status in (404, 405)
    assert path in str(answer.body), "the body stays the vendor's"
    hints = answer.headers["X-Mock-Near-Miss"].split(", ")
    assert hints[0] == closest, hints
    family = "/oneshot/api/v1/" if path.startswith("/oneshot") else "/api/v1/"
    assert all(hint.split(" ", 1)[1].startswith(family) for hint in hints), hints
    [entry] = await journal(sandbox)
    assert entry["near_misses"] == hints and entry["error"].startswith("api.40")


def test_the_client_helpers_assert_on_the_journal(tmp_path):
    with running_sandbox(tmp_path) as server:
        control = ControlClient(server.base)
        control.call("GET", "/api/v1/hello")
        assert control.count_calls(operation="hello") == 1
        assert [entry["path"] for entry in control.journal(method="GET")] == ["/api/v1/hello"]
        assert control.assert_called(operation="hello", count=1)["verified"]
        with pytest.raises(JournalMismatch, match=r"expected exactly 1 any method sign for request 5: 0 matched"):
            control.assert_called(operation="sign", pk=5, count=1)
