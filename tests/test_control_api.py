"""The control API under /_mock/: health, reset, request inspection, SMS outbox, PKI download."""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.helpers import DEFAULT_TOKEN


async def test_health(sandbox):
    answer = await sandbox.call("GET", "/_mock/health")
    assert answer.status == 200
    assert answer.body["status"] == "ok" and answer.body["seed"] == 1234


async def test_reset_returns_to_start_state(sandbox):
    first_pk = await sandbox.create_request()
    created = await sandbox.call("POST", "/api/v1/token", json={"username": "9001800"})
    token = created.body["details"]
    await sandbox.call("DELETE", f"/api/v1/token/{DEFAULT_TOKEN}")
    await sandbox.call("POST", f"/api/v1/otp/{first_pk}")

    assert (await sandbox.call("POST", "/_mock/reset")).status == 200

    assert (await sandbox.call("GET", "/_mock/requests")).body["requests"] == []
    tokens = (await sandbox.call("GET", "/api/v1/tokens")).body["details"]
    assert DEFAULT_TOKEN in tokens and token not in tokens
    assert (await sandbox.call("GET", "/_mock/sms")).body["messages"] == []
    assert await sandbox.create_request() == first_pk, "the seeded sequence replays after a reset"


async def test_request_inspection_with_history(sandbox):
    pk = await sandbox.create_request()
    listing = (await sandbox.call("GET", "/_mock/requests")).body["requests"]
    assert [(r["pk"], r["status"]) for r in listing] == [(pk, "ENROLLREADY")]
    detail = (await sandbox.call("GET", f"/_mock/requests/{pk}")).body
    assert [(h["status"], h["previous_status"]) for h in detail["history"]] == [
        ("CREATED", None), ("ENROLLREADY", "CREATED")
    ]
    uid = await sandbox.upload_pdf(pk)
    await sandbox.sign(pk, {"secret": await sandbox.otp(pk)})
    detail = (await sandbox.call("GET", f"/_mock/requests/{pk}")).body
    assert detail["history"][-1]["status"] == "ISSUED"
    assert detail["history"][-1]["previous_status"] == "ENROLLREADY"
    assert detail["documents"][0]["uid"] == uid and detail["documents"][0]["signed"] is True
    assert detail["contract_signed"] is True
    missing = await sandbox.call("GET", "/_mock/requests/999")
    assert missing.status == 404 and "999" in missing.body["error"]


async def test_sms_outbox_filters_by_request(sandbox):
    first = await sandbox.create_request(mobile_phone_number="+34600000011")
    second = await sandbox.create_request(mobile_phone_number="+48500000022", communication_language="PL")
    await sandbox.call("POST", f"/api/v1/otp/{first}")
    await sandbox.call("POST", f"/api/v1/otp/{second}", json={"delivery_method": "whatsapp"})
    everything = (await sandbox.call("GET", "/_mock/sms")).body["messages"]
    assert [m["request"] for m in everything] == [first, second]
    [polish] = (await sandbox.call("GET", f"/_mock/sms?request={second}")).body["messages"]
    assert polish["to"] == "+48500000022" and polish["channel"] == "whatsapp"
    assert polish["otp"] in polish["text"] and polish["text"].startswith("Twój kod")
    assert (await sandbox.call("GET", "/_mock/sms?request=abc")).status == 400


async def test_ca_bundle_has_root_issuing_ca_and_tsa(sandbox):
    answer = await sandbox.call("GET", "/_mock/pki/ca.pem")
    assert answer.status == 200 and answer.content_type == "application/x-pem-file"
    certs = x509.load_pem_x509_certificates(answer.raw)
    names = [c.subject.rfc4514_string() for c in certs]
    assert all("TEST" in n and "NOT FOR PRODUCTION" in n for n in names)
    root, issuing, tsa = certs
    assert root.subject == root.issuer and issuing.issuer == root.subject and tsa.issuer == root.subject
    issuing.verify_directly_issued_by(root)
    tsa.verify_directly_issued_by(root)
    eku = tsa.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]


async def test_control_api_is_not_under_api(sandbox):
    answer = await sandbox.call("GET", "/api/v1/_mock/health")
    assert answer.status == 404 and answer.body["status"] == "404 Not Found"
