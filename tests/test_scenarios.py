"""Scenario files over HTTP: rules that make the sandbox misbehave on purpose (issue "Scenario files").

Every expectation comes from the issue's specification: the format, the actions, the matching,
activation by header, loading and unloading, the magic values, the sandbox clock and determinism.
Broken artefacts are judged by independent validators (pyHanko, cryptography, poppler, OpenSSL).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from pyhanko.sign.validation.status import PdfSignatureStatus

from tests.conftest import REPO, free_port
from tests.helpers import SandboxClient, eventually, pdfsig, validate

T = TypeVar("T")
SIGNED = {"status": "200 OK", "details": "Documents correctly signed"}
ASYNC_SIGNED = {"status": "200 OK",
                "details": "Your documents are going to be signed. You will receive them in a few seconds"}
INVALID_OTP = {"status": "403 Forbidden", "details": "Confirmation Code invalid"}
SIGNING_SERVICE_DOWN = {"status": "500 Internal Server Error",
                        "details": "Error occured during signature process: signing service unavailable"}
VENDOR_TIME = "%Y-%m-%d %H:%M:%S+00:00"
MAGIC_RULES = 5


# Scenario documents and the control API ---------------------------------------------------------


def scenario(name: str, *rules: dict[str, Any], **top: Any) -> dict[str, Any]:
    """A scenario document with ``rules``; ``top`` adds or overrides top-level keys."""
    return {"name": name, "description": f"{name} (test)", "rules": list(rules), **top}


def rule(then: dict[str, Any], match: dict[str, Any] | None = None, when: dict[str, Any] | None = None) -> dict:
    found: dict[str, Any] = {}
    if match is not None:
        found["match"] = match
    if when is not None:
        found["when"] = when
    return {**found, "then": then}


def write_scenario(directory: Path, document: dict[str, Any]) -> Path:
    path = directory / f"{document['name']}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


async def load(sandbox: SandboxClient, document: dict[str, Any], *, as_json: bool = False) -> dict[str, Any]:
    """POST a scenario (YAML unless ``as_json``); the loaded scenario as the sandbox shows it."""
    if as_json:
        answer = await sandbox.call("POST", "/_mock/scenarios", data=json.dumps(document),
                                    headers={"Content-Type": "application/json"})
    else:
        answer = await sandbox.call("POST", "/_mock/scenarios", data=yaml.safe_dump(document),
                                    headers={"Content-Type": "application/yaml"})
    assert answer.status == 201, answer.body
    return answer.body


async def loaded(sandbox: SandboxClient) -> dict[str, dict[str, Any]]:
    """GET /_mock/scenarios by name."""
    answer = await sandbox.call("GET", "/_mock/scenarios")
    assert answer.status == 200, answer.body
    return {entry["name"]: entry for entry in answer.body["scenarios"]}


async def unload(sandbox: SandboxClient, name: str) -> None:
    answer = await sandbox.call("DELETE", f"/_mock/scenarios/{name}")
    assert answer.status == 200, answer.body


async def counts(sandbox: SandboxClient, name: str) -> list[tuple[int, int]]:
    """(matches, hits) of each rule of scenario ``name``."""
    return [(r["matches"], r["hits"]) for r in (await loaded(sandbox))[name]["rules"]]


async def advance(sandbox: SandboxClient, seconds: float) -> dict[str, Any]:
    answer = await sandbox.call("POST", "/_mock/clock", json={"advance_s": seconds})
    assert answer.status == 200, answer.body
    return answer.body


async def reset(sandbox: SandboxClient) -> None:
    assert (await sandbox.call("POST", "/_mock/reset")).status == 200


# Sandbox helpers ------------------------------------------------------------------------------------


async def raw_call(sandbox: SandboxClient, method: str, path: str, **kwargs: Any) -> tuple[int, bytes]:
    """Status and body bytes, whatever the content type claims."""
    async with sandbox.http.request(method, path, **kwargs) as response:
        return response.status, await response.read()


async def timed(call: Awaitable[T]) -> tuple[T, float]:
    started = time.monotonic()
    result = await call
    return result, time.monotonic() - started


async def approved(sandbox: SandboxClient, **changes: Any) -> tuple[int, str]:
    """A request with one blank PDF, ready to sign: its pk and the document uid."""
    pk = await sandbox.create_request(**changes)
    return pk, await sandbox.upload_pdf(pk)


async def signed_pdf(sandbox: SandboxClient, **changes: Any) -> tuple[int, bytes]:
    """A request signed with its OTP: its pk and the signed PDF."""
    pk, uid = await approved(sandbox, **changes)
    answer = await sandbox.sign(pk, {"secret": await sandbox.otp(pk)})
    assert answer.body == SIGNED, answer.body
    return pk, await sandbox.signed(pk, uid)


async def status_of(sandbox: SandboxClient, pk: int) -> str:
    answer = await sandbox.call("GET", f"/api/v1/request/{pk}")
    assert answer.status == 200, answer.body
    return answer.body["details"]["status"]


async def outbox(sandbox: SandboxClient, pk: int, *, undelivered: bool = False) -> list[dict[str, Any]]:
    query = f"/_mock/sms?request={pk}" + ("&include=undelivered" if undelivered else "")
    answer = await sandbox.call("GET", query)
    assert answer.status == 200, answer.body
    return answer.body["messages"]


async def ask_otp(sandbox: SandboxClient, pk: int) -> None:
    answer = await sandbox.call("POST", f"/api/v1/otp/{pk}")
    assert answer.body == {"status": "200 OK", "details": "OTP generated"}, answer.body


async def certificate_entry(sandbox: SandboxClient, pk: int) -> dict[str, str]:
    answer = await sandbox.call("GET", f"/api/v1/request/{pk}")
    assert answer.status == 200, answer.body
    [entry] = answer.body["details"]["certificate_set"]
    return entry


async def hello_outcomes(sandbox: SandboxClient, count: int) -> list[int]:
    """The HTTP status of ``count`` successive GET /api/v1/hello calls."""
    return [(await sandbox.call("GET", "/api/v1/hello")).status for _ in range(count)]


# Independent judges of broken artefacts --------------------------------------------------------------


async def check_expired_signer(pdf: bytes) -> PdfSignatureStatus:
    """pyHanko: intact, but not valid, because the signer certificate had expired when it signed."""
    status = await validate(pdf)
    assert status.intact and status.valid, status.pretty_print_details()
    assert not status.bottom_line, status.pretty_print_details()
    assert status.trust_problem_indic is not None, status.pretty_print_details()
    assert "EXPIRED" in status.trust_problem_indic.name or "OUT_OF_BOUNDS" in status.trust_problem_indic.name, (
        status.trust_problem_indic)
    assert status.signing_cert.not_valid_after < status.signer_reported_dt, status.pretty_print_details()
    return status


async def issued_certificate(sandbox: SandboxClient, pk: int) -> x509.Certificate:
    return x509.load_der_x509_certificate(base64.b64decode((await certificate_entry(sandbox, pk))["data"]))


async def check_revoked_in_crl_and_ocsp(sandbox: SandboxClient, pk: int) -> None:
    """cryptography reads the sandbox's CRL and OCSP answers: the request's certificate is revoked."""
    certificate = await issued_certificate(sandbox, pk)
    crl = await sandbox.call("GET", "/_mock/pki/crl")
    assert crl.status == 200, crl.body
    listed = x509.load_der_x509_crl(crl.raw).get_revoked_certificate_by_serial_number(certificate.serial_number)
    assert listed is not None, f"serial {certificate.serial_number:x} not in the CRL"

    bundle = await sandbox.call("GET", "/_mock/pki/ca.pem")
    issuer = x509.load_pem_x509_certificates(bundle.raw)[1]
    query = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA1()).build()
    answer = await sandbox.call("POST", "/_mock/pki/ocsp", data=query.public_bytes(serialization.Encoding.DER),
                                headers={"Content-Type": "application/ocsp-request"})
    assert answer.status == 200, answer.body
    response = ocsp.load_der_ocsp_response(answer.raw)
    assert response.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert response.certificate_status == ocsp.OCSPCertStatus.REVOKED


async def check_pdfsig_revoked(pdf: bytes, nss_db: Path, tmp_path: Path) -> None:
    report = await pdfsig(pdf, nss_db, tmp_path)
    assert "Certificate has been Revoked." in report, report


# Webhooks (the receiver is in tests/receivers.py) -----------------------------------------------------


async def create_async(sandbox: SandboxClient, callback: str, **changes: Any) -> int:
    return await sandbox.create_request(useasync="true", callback=callback, **changes)


async def webhook_log(sandbox: SandboxClient, pk: int) -> list[dict[str, Any]]:
    answer = await sandbox.call("GET", f"/_mock/webhooks?request={pk}")
    assert answer.status == 200, answer.body
    return answer.body["webhooks"]


async def settled_log(sandbox: SandboxClient, pk: int, count: int) -> list[dict[str, Any]]:
    """The request's webhook log once it has ``count`` events, none of them pending."""

    async def check() -> list[dict[str, Any]] | None:
        log = await webhook_log(sandbox, pk)
        return log if len(log) == count and all(e["state"] != "pending" for e in log) else None

    return await eventually(check, f"{count} settled webhook events of request {pk}")


async def wait_signed(sandbox: SandboxClient, pk: int) -> None:
    async def check() -> bool:
        answer = await sandbox.call("GET", f"/api/v1/async/status/{pk}")
        return answer.body["details"] == "signed"

    await eventually(check, f"request {pk} signed", timeout=30)


# 1. The acceptance ------------------------------------------------------------------------------------

ACCEPTANCE = """\
name: otp-hiccup
description: The first sign is refused as a wrong code; every upload is slow.
seed: 42
rules:
  - match: {operation: sign}
    when: {times: 1}
    then: {error: sign.403.invalid_otp}
  - match: {operation: upload_document}
    then: {delay_ms: 300}
"""


async def test_acceptance_scenario_file_loaded_at_start(make_client, tmp_path):
    path = tmp_path / "otp-hiccup.yaml"
    path.write_text(ACCEPTANCE)
    sandbox = await make_client(scenarios=(path,))

    pk = await sandbox.create_request()
    _, first_upload = await timed(sandbox.upload_pdf(pk))
    _, second_upload = await timed(sandbox.upload_pdf(pk, filename="other.pdf"))
    assert first_upload >= 0.3 and second_upload >= 0.3, (first_upload, second_upload)

    code = await sandbox.otp(pk)
    first = await sandbox.sign(pk, {"secret": code})
    assert (first.status, first.body) == (403, INVALID_OTP)
    second = await sandbox.sign(pk, {"secret": code})
    assert (second.status, second.body) == (200, SIGNED)

    entry = (await loaded(sandbox))["otp-hiccup"]
    assert entry["source"].endswith("otp-hiccup.yaml")
    assert [(r["index"], r["matches"], r["hits"]) for r in entry["rules"]] == [(0, 2, 1), (1, 2, 2)]


@pytest.mark.parametrize(("then", "named"), [
    ({"eror": "sign.403.invalid_otp"}, ("rules[0].then", "eror")),
    ({"error": "sign.999.no_such_entry"}, ("rules[0].then.error",)),
], ids=["misspelt-key", "unknown-catalogue-key"])
def test_cli_refuses_a_bad_scenario_file_at_start(tmp_path, then, named):
    bad = write_scenario(tmp_path, scenario("bad", rule(then, {"operation": "sign"})))
    process = subprocess.run(
        [sys.executable, "-m", "mock_server", "serve", "--port", str(free_port()), "--workers", "1",
         "--scenario", str(bad)],
        capture_output=True, text=True, timeout=60, cwd=REPO, check=False,
    )
    assert process.returncode != 0, process.stderr
    assert "bad.yaml" in process.stderr, process.stderr
    for text in named:
        assert text in process.stderr, process.stderr


# 2. Every action ----------------------------------------------------------------------------------------


async def test_error_action_answers_the_catalogue_entry(sandbox):
    pk = await sandbox.create_request()
    await load(sandbox, scenario("lost", rule({"error": "get_request.404.not_found"}, {"operation": "get_request"})))
    answer = await sandbox.call("GET", f"/api/v1/request/{pk}")
    assert answer.status == 404
    assert answer.body == {"status": "404 Not Found",
                           "details": "Request not found. Make sure the upload directory is correct."}


async def test_respond_action_answers_the_canned_answer(sandbox):
    details = {"maintenance": True, "retry_after": 30}
    await load(sandbox, scenario("canned", rule({"respond": {"status": 503, "details": details}},
                                                {"operation": "hello"})))
    answer = await sandbox.call("GET", "/api/v1/hello")
    assert answer.status == 503
    assert answer.body["details"] == details
    assert answer.body["status"].startswith("503"), answer.body
    await load(sandbox, scenario("canned", rule({"respond": {"status": 299, "details": "unnamed"}},
                                                {"operation": "hello"})))
    answer = await sandbox.call("GET", "/api/v1/hello")
    assert (answer.status, answer.body) == (299, {"status": "299", "details": "unnamed"})


async def test_respond_gives_a_whole_json_body_or_bytes_with_headers(sandbox):
    """What a recording replays: the body as the upstream sent it, any envelope; bytes with their type."""
    body = {"status": "success", "message": "Tokens retrieved", "details": {}}
    pdf = b"%PDF-1.7\n% recorded\n"
    await load(sandbox, scenario(
        "recorded",
        rule({"respond": {"status": 200, "body": body}}, {"method": "GET", "path": "^/oneshot/api/v1/images$"}),
        rule({"respond": {"status": 200, "body_base64": base64.b64encode(pdf).decode(),
                          "content_type": "application/pdf",
                          "headers": {"Content-Disposition": 'attachment; filename="signed.pdf"'}}},
             {"operation": "retrieve_document"})))
    answer = await sandbox.call("GET", "/oneshot/api/v1/images")
    assert (answer.status, answer.content_type, answer.body) == (200, "application/json", body)
    answer = await sandbox.call("GET", "/api/v1/document/35247/signed/some-uid")
    assert (answer.status, answer.content_type, answer.raw) == (200, "application/pdf", pdf)
    assert answer.headers["Content-Disposition"] == 'attachment; filename="signed.pdf"'


async def test_delay_range_action_delays_within_the_range(sandbox):
    await load(sandbox, scenario("sluggish", rule({"delay_ms": [300, 600]}, {"operation": "hello"})))
    for _ in range(3):
        answer, elapsed = await timed(sandbox.call("GET", "/api/v1/hello"))
        assert answer.status == 200, answer.body
        assert 0.3 <= elapsed < 1.5, elapsed


async def test_a_delay_written_as_a_whole_float_is_a_delay(sandbox):
    """``delay_ms: 300.0`` is an integer to JSON Schema (and YAML writes it so): the draw takes an int."""
    document = scenario("sluggish", rule({"delay_ms": 300.0}, {"operation": "hello"}),
                        rule({"delay_ms": [10.0, 20.0]}, {"operation": "version"}))
    await load(sandbox, document, as_json=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # before Python 3.12 a float was a DeprecationWarning, since then a TypeError
        answer, elapsed = await timed(sandbox.call("GET", "/api/v1/hello"))
        assert answer.status == 200 and elapsed >= 0.3, (answer.body, elapsed)
        assert (await sandbox.call("GET", "/api/v1/version")).status == 200
    rules = (await loaded(sandbox))["sluggish"]["rules"]
    assert [rule["then"]["delay_ms"] for rule in rules] == [300, [10, 20]]


async def test_connection_reset_fault(sandbox):
    await load(sandbox, scenario("reset", rule({"fault": "connection_reset"}, {"operation": "hello"},
                                               {"times": 1})))
    with pytest.raises(aiohttp.ClientError):
        await sandbox.call("GET", "/api/v1/hello")
    assert (await sandbox.call("GET", "/api/v1/hello")).status == 200, "times: 1 resets one call only"


async def test_empty_response_fault(sandbox):
    await load(sandbox, scenario("empty", rule({"fault": "empty_response"}, {"operation": "hello"})))
    assert await raw_call(sandbox, "GET", "/api/v1/hello") == (200, b"")


async def test_malformed_json_fault(sandbox):
    await load(sandbox, scenario("garbled", rule({"fault": "malformed_json"}, {"operation": "hello"})))
    status, body = await raw_call(sandbox, "GET", "/api/v1/hello")
    assert status == 200
    with pytest.raises(ValueError):
        json.loads(body)


async def test_slow_body_fault_sends_the_whole_answer_slowly(sandbox):
    pk = await sandbox.create_request()
    normal = await sandbox.call("GET", f"/api/v1/request/{pk}")
    assert normal.status == 200, normal.body
    await load(sandbox, scenario("trickle", rule({"fault": "slow_body"}, {"operation": "get_request"})))
    (status, body), elapsed = await timed(raw_call(sandbox, "GET", f"/api/v1/request/{pk}"))
    assert status == 200
    assert json.loads(body) == normal.body
    assert elapsed >= 1.5, elapsed


async def test_sms_drop_keeps_the_message_undelivered(sandbox):
    await load(sandbox, scenario("no-sms", rule({"sms": "drop"}, {"operation": "generate_otp"})))
    pk = await sandbox.create_request()
    await ask_otp(sandbox, pk)
    assert await outbox(sandbox, pk) == []
    [message] = await outbox(sandbox, pk, undelivered=True)
    assert message["delivered_at"] is None and message["otp"], message


async def test_sms_duplicate_delivers_the_message_twice(sandbox):
    await load(sandbox, scenario("twice", rule({"sms": "duplicate"}, {"operation": "generate_otp"})))
    pk = await sandbox.create_request()
    await ask_otp(sandbox, pk)
    first, second = await outbox(sandbox, pk)
    assert first["otp"] == second["otp"] and first["delivered_at"] is not None
    assert first["text"] == second["text"]


async def test_sms_delay_delivers_when_the_clock_gets_there(sandbox):
    await load(sandbox, scenario("late-sms", rule({"sms": {"delay_s": 120}}, {"operation": "generate_otp"})))
    pk = await sandbox.create_request()
    await ask_otp(sandbox, pk)
    assert await outbox(sandbox, pk) == []
    [late] = await outbox(sandbox, pk, undelivered=True)
    await advance(sandbox, 60)
    assert await outbox(sandbox, pk) == [], "delivered before its delay"
    await advance(sandbox, 61)
    [delivered] = await outbox(sandbox, pk)
    assert delivered["otp"] == late["otp"]


async def test_otp_always_invalid_refuses_the_right_code(sandbox):
    await load(sandbox, scenario("bad-otp", rule({"otp": "always_invalid"}, {"operation": "sign"})))
    pk, _ = await approved(sandbox)
    code = await sandbox.otp(pk)
    refused = await sandbox.sign(pk, {"secret": code})
    assert (refused.status, refused.body) == (403, INVALID_OTP)
    await unload(sandbox, "bad-otp")
    assert (await sandbox.sign(pk, {"secret": code})).body == SIGNED, "the code refused was the right one"


async def test_webhook_fail_status_logs_failures_then_delivers(receiver, make_client):
    sandbox = await make_client(webhook_retry_scale=0.01)
    await load(sandbox, scenario("hooks-fail", rule({"webhook": {"fail_status": 502, "times": 2}},
                                                    {"operation": "create_request"})))
    pk = await create_async(sandbox, receiver.url)
    log = await settled_log(sandbox, pk, 2)
    for event in log:
        assert event["state"] == "delivered", event
        assert [a["status"] for a in event["attempts"]] == [502, 502, 200], event
        assert all("scenario" in (a["error"] or "").lower() for a in event["attempts"][:2]), event["attempts"]
    assert receiver.events() == ["CREATED", "ENROLLREADY"], "each event really delivered once"


async def test_webhook_drop_never_sends_the_event(receiver, make_client):
    sandbox = await make_client(webhook_retry_scale=0.01)
    await load(sandbox, scenario("hooks-drop", rule({"webhook": "drop"}, {"operation": "create_request"})))
    pk = await create_async(sandbox, receiver.url)
    await sandbox.upload_pdf(pk)
    assert (await sandbox.sign(pk, {"secret": await sandbox.otp(pk)})).body == ASYNC_SIGNED
    await receiver.wait_for(1)
    log = await settled_log(sandbox, pk, 3)
    assert [(e["event"], e["state"], e["attempts"]) for e in log[:2]] == [
        ("CREATED", "dropped", []), ("ENROLLREADY", "dropped", [])]
    assert log[2]["state"] == "delivered"
    assert (await sandbox.call("POST", "/_mock/webhooks/flush")).status == 200
    await asyncio.sleep(0.2)
    assert receiver.events() == ["ISSUED"]


async def test_webhook_duplicate_sends_each_event_twice(receiver, make_client):
    sandbox = await make_client(webhook_retry_scale=0.01)
    await load(sandbox, scenario("hooks-twice", rule({"webhook": "duplicate"}, {"operation": "create_request"})))
    await create_async(sandbox, receiver.url)
    deliveries = await receiver.wait_for(4)
    assert [d.event for d in deliveries] == ["CREATED", "CREATED", "ENROLLREADY", "ENROLLREADY"]
    assert deliveries[0].id == deliveries[1].id and deliveries[2].id == deliveries[3].id
    assert deliveries[0].body == deliveries[1].body


async def test_webhook_reorder_delivers_after_the_next_event(receiver, make_client):
    sandbox = await make_client(webhook_retry_scale=0.01, webhook_format="new")
    await load(sandbox, scenario("hooks-reorder", rule({"webhook": "reorder"}, {"operation": "sign"})))
    pk = await create_async(sandbox, receiver.url)
    await sandbox.upload_pdf(pk)
    assert (await sandbox.sign(pk, {"secret": await sandbox.otp(pk)})).body == ASYNC_SIGNED
    await wait_signed(sandbox, pk)
    await receiver.wait_for(2)
    await asyncio.sleep(0.3)
    assert receiver.events() == ["REQUEST_CREATED", "REQUEST_APPROVED"], "the enrolled event waits for the next one"

    revoked = await sandbox.call("POST", "/_mock/pki/revoke", json={"request": pk})
    assert revoked.status == 200, revoked.body
    await receiver.wait_for(4)
    assert receiver.events() == ["REQUEST_CREATED", "REQUEST_APPROVED", "CERTIFICATE_REVOKED", "REQUEST_ENROLLED"]


async def test_webhook_delay_waits_in_sandbox_seconds(receiver, make_client):
    sandbox = await make_client(webhook_retry_scale=0.01)
    await load(sandbox, scenario("hooks-late", rule({"webhook": {"delay_s": 100}}, {"operation": "create_request"})))
    pk = await create_async(sandbox, receiver.url)
    await advance(sandbox, 50)
    await asyncio.sleep(0.3)
    assert receiver.deliveries == [], "sent before 100 sandbox seconds"
    await advance(sandbox, 50)
    await receiver.wait_for(1, timeout=5)
    await advance(sandbox, 100)  # whether the next event's delay counts from its creation or its turn
    assert [d.event for d in await receiver.wait_for(2, timeout=5)] == ["CREATED", "ENROLLREADY"]
    assert [e["state"] for e in await settled_log(sandbox, pk, 2)] == ["delivered", "delivered"]


async def test_transition_after_sandbox_seconds(sandbox):
    await load(sandbox, scenario("vanish", rule({"transition": {"status": "CANCELLED", "after_s": 60}},
                                                {"operation": "create_request"})))
    pk = await sandbox.create_request()
    assert await status_of(sandbox, pk) == "ENROLLREADY"
    await advance(sandbox, 59)
    await asyncio.sleep(0.3)
    assert await status_of(sandbox, pk) == "ENROLLREADY", "moved before 60 sandbox seconds"
    await advance(sandbox, 1)

    async def cancelled() -> bool:
        return await status_of(sandbox, pk) == "CANCELLED"

    await eventually(cancelled, f"request {pk} CANCELLED", timeout=5)


async def test_expired_signer_artefact(sandbox, nss_db, tmp_path):
    await load(sandbox, scenario("expired", rule({"artefact": "expired_signer"}, {"operation": "sign"})))
    _, pdf = await signed_pdf(sandbox)
    await check_expired_signer(pdf)
    report = await pdfsig(pdf, nss_db, tmp_path)  # NSS, which asks the sandbox's OCSP responder by GET
    assert "Signature is Valid" in report and "Certificate has Expired" in report, report


async def test_revoked_signer_artefact(sandbox, nss_db, tmp_path):
    await load(sandbox, scenario("revoked", rule({"artefact": "revoked_signer"}, {"operation": "sign"})))
    pk, pdf = await signed_pdf(sandbox)
    await check_revoked_in_crl_and_ocsp(sandbox, pk)
    await check_pdfsig_revoked(pdf, nss_db, tmp_path)


async def test_tampered_artefact_is_not_intact(sandbox):
    await load(sandbox, scenario("tampered", rule({"artefact": "tampered"}, {"operation": "sign"})))
    _, pdf = await signed_pdf(sandbox)
    status = await validate(pdf)
    assert not status.intact, status.pretty_print_details()
    assert not status.bottom_line


@pytest.mark.slow  # the sandbox takes some 17 s to tamper with a P7M (asn1crypto re-encoding it all)
async def test_tampered_artefact_breaks_a_hash_file_p7m(sandbox, tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    content = tmp_path / "contract.txt"
    content.write_bytes(b"Contrato de prestacion de servicios\n" * 100)
    hash_file = {"messageDigest": base64.b64encode(hashlib.sha256(content.read_bytes()).digest()).decode(),
                 "digestAlgorithm": "sha256", "addAuthAttribute": 1, "addSigningTime": 1, "otherAuthAttributes": []}
    await load(sandbox, scenario("tampered", rule({"artefact": "tampered"}, {"operation": "sign"})))
    pk = await sandbox.create_request()
    form = aiohttp.FormData()
    form.add_field("hashfile", json.dumps(hash_file).encode(), filename="hash.json", content_type="application/json")
    uploaded = await sandbox.call("POST", f"/api/v1/document/{pk}", data=form)
    assert uploaded.status == 200, uploaded.body
    assert (await sandbox.sign(pk, {"secret": await sandbox.otp(pk)})).body == SIGNED
    signature = tmp_path / "contract.p7m"
    signature.write_bytes((await sandbox.call("GET", f"/api/v1/document/{pk}/signed/{uploaded.body['details']}")).raw)
    ca = tmp_path / "ca.pem"
    ca.write_bytes((await sandbox.call("GET", "/_mock/pki/ca.pem")).raw)
    verified = subprocess.run(
        ["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in", str(signature), "-content", str(content),
         "-CAfile", str(ca), "-out", "/dev/null"], capture_output=True, text=True, timeout=60, check=False,
    )
    assert verified.returncode != 0, verified.stderr


async def test_no_timestamp_artefact(sandbox):
    await load(sandbox, scenario("no-tsa", rule({"artefact": "no_timestamp"}, {"operation": "sign"})))
    _, pdf = await signed_pdf(sandbox)
    status = await validate(pdf)
    assert status.timestamp_validity is None
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()


# 3. Matching and when ----------------------------------------------------------------------------------


async def test_match_method(sandbox):
    await load(sandbox, scenario("no-cancel", rule({"error": "cancel_request.404.not_found"},
                                                   {"method": "DELETE", "path": "^/api/v1/request/"})))
    pk = await sandbox.create_request()
    assert (await sandbox.call("GET", f"/api/v1/request/{pk}")).status == 200
    refused = await sandbox.call("DELETE", f"/api/v1/request/{pk}")
    assert refused.status == 404, refused.body
    assert await status_of(sandbox, pk) == "ENROLLREADY"


async def test_match_path_regex(sandbox):
    await load(sandbox, scenario("no-listing", rule({"respond": {"status": 503, "details": "down"}},
                                                    {"path": r"^/api/v1/documents/\d+$"})))
    pk, _ = await approved(sandbox)
    assert (await sandbox.call("GET", f"/api/v1/documents/{pk}")).status == 503
    assert (await sandbox.call("GET", f"/api/v1/request/{pk}")).status == 200


async def test_match_json_body_field(sandbox):
    await load(sandbox, scenario("no-whatsapp", rule({"respond": {"status": 503, "details": "no WhatsApp"}},
                                                     {"operation": "generate_otp",
                                                      "body": {"delivery_method": "^whatsapp$"}})))
    pk = await sandbox.create_request()
    refused = await sandbox.call("POST", f"/api/v1/otp/{pk}", json={"delivery_method": "whatsapp"})
    assert (refused.status, refused.body["details"]) == (503, "no WhatsApp")
    sent = await sandbox.call("POST", f"/api/v1/otp/{pk}", json={"delivery_method": "sms"})
    assert sent.status == 200, sent.body


async def test_match_url_encoded_body_field(sandbox):
    await load(sandbox, scenario("blocked-domain", rule({"error": "create_request.403.invalid_rao"},
                                                        {"operation": "create_request",
                                                         "body": {"email": r"@blocked\.example$"}})))
    fields = {"token": "6d1cae4d55be4cdf9cac50ee36f73406", "given_name": "Ana", "surname_1": "López",
              "id_document_type": "IDC", "id_document_country": "ES", "serial_number": "12345678Z",
              "mobile_phone_number": "+34600000001", "registration_authority": "9999",
              "profile": "PFnubeQAFCiudadano", "env": "sandbox"}
    refused = await sandbox.call("POST", "/api/v1/request", data={**fields, "email": "eva@blocked.example"})
    assert (refused.status, refused.body["details"]) == (403, "Invalid RAO Credentials")
    created = await sandbox.call("POST", "/api/v1/request", data={**fields, "email": "eva@open.example"})
    assert created.status == 201, created.body


async def test_match_stored_request_field(sandbox):
    await load(sandbox, scenario("roaming", rule({"error": "generate_otp.412.invalid_status"},
                                                 {"operation": "generate_otp",
                                                  "body": {"mobile_phone_number": r"^\+44"}})))
    abroad = await sandbox.create_request(mobile_phone_number="+447700900123")
    home = await sandbox.create_request(mobile_phone_number="+34600000009")
    refused = await sandbox.call("POST", f"/api/v1/otp/{abroad}")
    assert (refused.status, refused.body["details"]) == (
        412, "Error occured during OTP generation: Invalid request status")
    await ask_otp(sandbox, home)


async def test_match_request_pk(sandbox):
    target = await sandbox.create_request()
    other = await sandbox.create_request()
    await load(sandbox, scenario("one-request", rule({"error": "get_request.404.not_found"},
                                                     {"request_pk": target})))
    assert (await sandbox.call("GET", f"/api/v1/request/{target}")).status == 404
    assert (await sandbox.call("GET", f"/api/v1/request/{other}")).status == 200


async def test_when_times(sandbox):
    await load(sandbox, scenario("twice", rule({"respond": {"status": 503, "details": "busy"}},
                                               {"operation": "hello"}, {"times": 2})))
    assert await hello_outcomes(sandbox, 4) == [503, 503, 200, 200]
    assert await counts(sandbox, "twice") == [(4, 2)]


async def test_when_after(sandbox):
    await load(sandbox, scenario("later", rule({"respond": {"status": 503, "details": "busy"}},
                                               {"operation": "hello"}, {"after": 2})))
    assert await hello_outcomes(sandbox, 4) == [200, 200, 503, 503]
    assert await counts(sandbox, "later") == [(4, 2)]


async def test_when_probability_is_seeded_and_replayed_after_reset(make_client, tmp_path):
    path = write_scenario(tmp_path, scenario(
        "coin", rule({"respond": {"status": 503, "details": "busy"}}, {"operation": "hello"}, {"probability": 0.5}),
        seed=11))
    sandbox = await make_client(scenarios=(path,))
    first = await hello_outcomes(sandbox, 20)
    assert 200 in first and 503 in first, first
    await reset(sandbox)
    assert await hello_outcomes(sandbox, 20) == first


# 4. Activation by header -----------------------------------------------------------------------------------


async def test_header_scenario_touches_only_calls_asking_for_it(sandbox):
    await load(sandbox, scenario("opt-in", rule({"respond": {"status": 503, "details": "busy"}}, {"operation": "*"}),
                                 activation="header"))
    tester, bystander = SandboxClient(sandbox.http), SandboxClient(sandbox.http)

    async def calls(client: SandboxClient, headers: dict[str, str]) -> list[int]:
        statuses = []
        for _ in range(10):
            statuses.append((await client.call("GET", "/api/v1/hello", headers=headers)).status)
            await asyncio.sleep(0)
        return statuses

    asking, not_asking = await asyncio.gather(calls(tester, {"X-Mock-Scenario": "opt-in"}), calls(bystander, {}))
    assert asking == [503] * 10
    assert not_asking == [200] * 10


# 5. Loading and unloading over the control API ------------------------------------------------------------


async def test_post_yaml_scenario(sandbox):
    document = scenario("yaml-one", rule({"error": "sign.403.invalid_otp"}, {"operation": "sign"}, {"times": 1}),
                        activation="header")
    body = await load(sandbox, document)
    assert body["name"] == "yaml-one" and body["description"] == "yaml-one (test)"
    assert body["activation"] == "header" and body["source"]
    assert body["rules"] == [{"index": 0, "match": {"operation": "sign"}, "when": {"times": 1},
                              "then": {"error": "sign.403.invalid_otp"}, "matches": 0, "hits": 0}]
    assert (await loaded(sandbox))["yaml-one"] == body


async def test_post_json_scenario(sandbox):
    body = await load(sandbox, scenario("json-one", rule({"respond": {"status": 503, "details": "x"}},
                                                         {"operation": "hello"})), as_json=True)
    assert body["name"] == "json-one" and body["activation"] == "always"
    assert (await sandbox.call("GET", "/api/v1/hello")).status == 503
    assert await counts(sandbox, "json-one") == [(1, 1)]


async def test_magic_values_scenario_is_always_listed(sandbox):
    magic = (await loaded(sandbox))["magic-values"]
    assert magic["activation"] == "always" and len(magic["rules"]) == MAGIC_RULES
    await reset(sandbox)
    assert "magic-values" in await loaded(sandbox)


async def test_delete_unloads_a_scenario(sandbox):
    await load(sandbox, scenario("gone", rule({"respond": {"status": 503, "details": "x"}}, {"operation": "hello"})))
    await unload(sandbox, "gone")
    assert "gone" not in await loaded(sandbox)
    assert (await sandbox.call("GET", "/api/v1/hello")).status == 200
    again = await sandbox.call("DELETE", "/_mock/scenarios/gone")
    assert again.status == 404 and "error" in again.body, again.body


@pytest.mark.parametrize(("document", "named"), [
    (scenario("x", rule({"eror": "sign.403.invalid_otp"})), "rules[0].then"),
    (scenario("x", rule({"error": "sign.999.nope"})), "rules[0].then.error"),
    (scenario("x", rule({"delay_ms": 10}), rule({"fault": "explode"})), "rules[1].then.fault"),
    (scenario("x", rule({"delay_ms": [500, 100]})), "rules[0].then.delay_ms"),
    (scenario("x", rule({"sms": "drop"}, {"path": "(unclosed"})), "rules[0].match.path"),
    (scenario("x", rule({"webhook": {"fail_status": 503, "tims": 2}})), "rules[0].then.webhook"),
    (scenario("x", rule({"otp": "always_valid"})), "rules[0].then.otp"),
    (scenario("x", rule({"delay_ms": 10}, when={"probability": 2})), "rules[0].when.probability"),
    (scenario("x", rule({"delay_ms": 10}), activation="sometimes"), "activation"),
    (scenario("x", rule({"respond": {"status": 200}})), "rules[0].then.respond"),
    (scenario("x", rule({"respond": {"status": 200, "body": {}, "details": "both"}})), "rules[0].then.respond"),
    (scenario("x", rule({"respond": {"status": 200, "body_base64": "not base64!"}})), "rules[0].then.respond"),
], ids=["unknown-action", "unknown-catalogue-key", "bad-fault", "reversed-range", "bad-regex", "webhook-typo",
        "bad-otp", "probability-over-one", "bad-activation", "respond-without-answer", "respond-twice",
        "respond-bad-base64"])
async def test_invalid_scenario_is_refused_naming_the_field(sandbox, document, named):
    answer = await sandbox.call("POST", "/_mock/scenarios", data=yaml.safe_dump(document))
    assert answer.status == 400, answer.body
    assert isinstance(answer.body["error"], str), answer.body
    assert named in answer.body["error"], answer.body
    assert "x" not in await loaded(sandbox)


async def test_reset_restores_the_start_set(make_client, tmp_path):
    start = write_scenario(tmp_path, scenario("at-start", rule({"respond": {"status": 503, "details": "x"}},
                                                               {"operation": "hello"}, {"times": 1})))
    sandbox = await make_client(scenarios=(start,))
    await load(sandbox, scenario("at-runtime", rule({"respond": {"status": 502, "details": "y"}},
                                                    {"operation": "get_request"})))
    assert await hello_outcomes(sandbox, 2) == [503, 200]
    await reset(sandbox)
    scenarios = await loaded(sandbox)
    assert set(scenarios) == {"magic-values", "at-start"}
    assert all(r["matches"] == r["hits"] == 0 for s in scenarios.values() for r in s["rules"])
    assert await hello_outcomes(sandbox, 2) == [503, 200], "times counts again from zero"


# 6. Magic values ---------------------------------------------------------------------------------------------


async def test_magic_phone_001_never_delivers_the_otp(sandbox):
    pk = await sandbox.create_request(mobile_phone_number="+34699999001")
    await ask_otp(sandbox, pk)
    assert await outbox(sandbox, pk) == []
    [message] = await outbox(sandbox, pk, undelivered=True)
    assert message["delivered_at"] is None


async def test_magic_phone_002_rejects_every_otp(sandbox):
    pk, _ = await approved(sandbox, mobile_phone_number="+34699999002")
    code = await sandbox.otp(pk)
    for _ in range(2):
        answer = await sandbox.sign(pk, {"secret": code})
        assert (answer.status, answer.body) == (403, INVALID_OTP)


async def test_magic_phone_003_signing_service_fails(sandbox):
    pk, _ = await approved(sandbox, mobile_phone_number="+34699999003")
    answer = await sandbox.sign(pk, {"secret": await sandbox.otp(pk)})
    assert (answer.status, answer.body) == (500, SIGNING_SERVICE_DOWN)


async def test_magic_given_name_expired(sandbox):
    _, pdf = await signed_pdf(sandbox, given_name="Expired")
    await check_expired_signer(pdf)


async def test_magic_given_name_revoked(sandbox, nss_db, tmp_path):
    pk, pdf = await signed_pdf(sandbox, given_name="Revoked")
    await check_revoked_in_crl_and_ocsp(sandbox, pk)
    await check_pdfsig_revoked(pdf, nss_db, tmp_path)


# 7. The clock ------------------------------------------------------------------------------------------------


async def test_clock_reads_now(sandbox):
    answer = await sandbox.call("GET", "/_mock/clock")
    assert answer.status == 200, answer.body
    now = datetime.fromisoformat(answer.body["now"])
    assert abs((now - datetime.now(UTC)).total_seconds()) < 5 and abs(answer.body["offset_s"]) < 5


async def test_clock_advance_moves_now(sandbox):
    moved = await advance(sandbox, 3600)
    assert 3599 < moved["offset_s"] < 3601
    now = datetime.fromisoformat((await sandbox.call("GET", "/_mock/clock")).body["now"])
    assert abs((now - datetime.now(UTC) - timedelta(hours=1)).total_seconds()) < 5


async def test_clock_set_moves_now(sandbox):
    answer = await sandbox.call("POST", "/_mock/clock", json={"set": "2031-05-06T07:08:09Z"})
    assert answer.status == 200, answer.body
    now = datetime.fromisoformat((await sandbox.call("GET", "/_mock/clock")).body["now"])
    assert timedelta(0) <= now - datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC) < timedelta(seconds=5)


@pytest.mark.parametrize("body", [{"set": "next tuesday"}, {"advance_s": "soon"}, {}],
                         ids=["bad-set", "bad-advance", "neither"])
async def test_clock_refuses_bad_input(sandbox, body):
    answer = await sandbox.call("POST", "/_mock/clock", json=body)
    assert answer.status == 400 and "error" in answer.body, answer.body


async def test_clock_start_from_config(make_client):
    sandbox = await make_client(clock_start=datetime(2030, 1, 1, 9, 0, tzinfo=UTC))
    now = datetime.fromisoformat((await sandbox.call("GET", "/_mock/clock")).body["now"])
    assert timedelta(0) <= now - datetime(2030, 1, 1, 9, 0, tzinfo=UTC) < timedelta(seconds=5)


async def test_otp_expires_when_the_clock_passes_its_lifetime(sandbox):
    pk, _ = await approved(sandbox)
    code = await sandbox.otp(pk)
    await advance(sandbox, 301)
    answer = await sandbox.sign(pk, {"secret": code})
    assert (answer.status, answer.body) == (403, INVALID_OTP)


async def test_webhook_retry_fires_when_the_clock_is_advanced(receiver, make_client):
    sandbox = await make_client(webhook_retry_scale=100)  # the first retry waits 100 sandbox seconds
    receiver.script.append(500)
    pk = await create_async(sandbox, receiver.url)
    await receiver.wait_for(1)
    await asyncio.sleep(0.5)
    assert len(receiver.deliveries) == 1, "retried before the clock moved"
    await advance(sandbox, 100)
    first, retry = await receiver.wait_for(2, timeout=5)
    assert (retry.id, retry.event) == (first.id, "CREATED")
    assert [a["status"] for a in (await webhook_log(sandbox, pk))[0]["attempts"]] == [500, 200]


async def test_signing_after_advancing_the_clock_succeeds(sandbox):
    await advance(sandbox, 3600)
    pk, uid = await approved(sandbox)
    answer = await sandbox.sign(pk, {"secret": await sandbox.otp(pk)})
    assert answer.body == SIGNED, answer.body
    assert (await validate(await sandbox.signed(pk, uid))).intact


async def signed_an_hour_ahead(sandbox: SandboxClient) -> tuple[int, bytes]:
    """Signed after the clock moved one hour; without LTV, whose validation data is not the point here."""
    await advance(sandbox, 3600)
    pk, uid = await approved(sandbox)
    answer = await sandbox.sign(pk, {"secret": await sandbox.otp(pk), "disable_ltv": True})
    assert answer.body == SIGNED, answer.body
    return pk, await sandbox.signed(pk, uid)


def an_hour_ahead(moment: datetime) -> bool:
    return abs(moment - (datetime.now(UTC) + timedelta(hours=1))) < timedelta(minutes=5)


async def test_certificate_validity_follows_the_clock(sandbox):
    pk, _ = await signed_an_hour_ahead(sandbox)
    valid_from = datetime.strptime((await certificate_entry(sandbox, pk))["valid_from"], VENDOR_TIME)
    assert an_hour_ahead(valid_from.replace(tzinfo=UTC)), valid_from


async def test_signing_time_follows_the_clock(sandbox):
    _, pdf = await signed_an_hour_ahead(sandbox)
    status = await validate(pdf)
    assert an_hour_ahead(status.signer_reported_dt), status.signer_reported_dt


async def test_timestamp_gen_time_follows_the_clock(sandbox):
    _, pdf = await signed_an_hour_ahead(sandbox)
    status = await validate(pdf)
    assert status.timestamp_validity is not None
    assert an_hour_ahead(status.timestamp_validity.timestamp), status.timestamp_validity.timestamp


# 8. Determinism ------------------------------------------------------------------------------------------------


async def test_same_seed_and_scenario_give_the_same_outcomes(make_client, tmp_path):
    path = write_scenario(tmp_path, scenario(
        "dice", rule({"respond": {"status": 503, "details": "busy"}}, {"operation": "hello"}, {"probability": 0.4})))
    one = await make_client(seed=77, scenarios=(path,))
    two = await make_client(seed=77, scenarios=(path,))
    first = await hello_outcomes(one, 25)
    assert 200 in first and 503 in first, first
    assert await hello_outcomes(two, 25) == first
