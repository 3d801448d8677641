"""The scenario library: every file under scenarios/ loads over the control API and does what it says.

scenarios/errors/ holds one header-activated file per error catalogue entry; each is checked by
sending a real call of its operation with ``X-Mock-Scenario``. The nine realistic files each get a
test of the effect their description states.
"""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from PIL import Image

from mock_server.domain.fakes import fake_evidences
from tests.conftest import REPO
from tests.helpers import DEFAULT_TOKEN, IDENTITY, SandboxClient, blank_pdf, eventually, validate
from tests.test_scenarios import (
    ASYNC_SIGNED,
    advance,
    approved,
    check_expired_signer,
    check_pdfsig_revoked,
    check_revoked_in_crl_and_ocsp,
    create_async,
    outbox,
    settled_log,
    signed_pdf,
    status_of,
    timed,
    wait_signed,
)

LIBRARY = REPO / "scenarios"
ERROR_FILES = sorted((LIBRARY / "errors").glob("*.yaml"))
REALISTIC_FILES = sorted(LIBRARY.glob("*.yaml"))
PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
TOKEN = {"token": DEFAULT_TOKEN}
RAO = {"username": "9001800", "password": "oneshot-mock", "pin": "123456"}
CONTACT = {"email": "eva.martin@example.com", "mobile_phone_number": "+34600000002"}
EXTERNAL_RA = "9998"
VIDEO = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41" + bytes(range(256)) * 8


# Loading a library file ---------------------------------------------------------------------------


async def load_file(sandbox: SandboxClient, path: Path) -> dict[str, Any]:
    """POST the file's own bytes to /_mock/scenarios; the loaded scenario."""
    answer = await sandbox.call("POST", "/_mock/scenarios", data=path.read_bytes(),
                                headers={"Content-Type": "application/yaml"})
    assert answer.status == 201, answer.body
    document = yaml.safe_load(path.read_text())
    assert (answer.body["name"], answer.body["description"]) == (document["name"], document["description"])
    return answer.body


async def load_realistic(sandbox: SandboxClient, name: str) -> dict[str, Any]:
    return await load_file(sandbox, LIBRARY / f"{name}.yaml")


async def hits(sandbox: SandboxClient, name: str) -> list[int]:
    answer = await sandbox.call("GET", "/_mock/scenarios")
    [entry] = [s for s in answer.body["scenarios"] if s["name"] == name]
    return [r["hits"] for r in entry["rules"]]


# A sample call per operation -------------------------------------------------------------------------


@dataclass
class Call:
    """One call of an operation, and the values its error templates may be filled with."""

    method: str
    path: str
    pk: int | None = None
    json: dict[str, Any] | None = None
    form: Callable[[], aiohttp.FormData] | None = None  # a fresh body per send
    form_fields: dict[str, str] | None = None  # the form's plain fields

    def kwargs(self) -> dict[str, Any]:
        if self.form is not None:
            return {"data": self.form()}
        return {"json": self.json} if self.json is not None else {}

    def values(self) -> dict[str, str]:
        sent = {**(self.json or {}), **(self.form_fields or {})}
        found = {k: str(v) for k, v in sent.items() if not isinstance(v, dict | list)}
        if self.pk is not None:
            found["pk"] = str(self.pk)
        return found


def file_form(field: str, data: bytes, filename: str, content_type: str) -> Callable[[], aiohttp.FormData]:
    def build() -> aiohttp.FormData:
        form = aiohttp.FormData()
        form.add_field(field, data, filename=filename, content_type=content_type)
        return form

    return build


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (120, 60), (20, 90, 200)).save(out, "PNG")
    return out.getvalue()


def request_form() -> aiohttp.FormData:
    form = aiohttp.FormData()
    for key, value in {**TOKEN, **IDENTITY}.items():
        form.add_field(key, value)
    return form


async def ok(answer_of: Awaitable[Any]) -> Any:
    """The details of a 2xx answer."""
    answer = await answer_of
    assert 200 <= answer.status < 300, answer.body
    return answer.body["details"]


async def an_image(sandbox: SandboxClient) -> str:
    return await ok(sandbox.upload_image(png()))


async def a_metadata(sandbox: SandboxClient) -> str:
    details = await ok(sandbox.call("POST", "/api/v1/metadata",
                                    json={"metadata": "contract 42", "metadata_oid": "1.3.6.1.4.1.99999.7"}))
    return details["metadata"]


async def a_videoid(sandbox: SandboxClient) -> int:
    """An external-mode VideoID request waiting for its evidences (VIDEOPENDING)."""
    body = {**CONTACT, "registration_authority": EXTERNAL_RA, "profile": "PFnubeQAFCiudadano", "env": "sandbox"}
    return (await ok(sandbox.call("POST", "/api/v1/videoid", json=body)))["request_pk"]


async def identified(sandbox: SandboxClient) -> int:
    """A VideoID request with evidences and video, waiting for the RAO (VIDEOREVIEW)."""
    pk = await a_videoid(sandbox)
    await ok(sandbox.call("POST", f"/api/v1/videoid/{pk}/evidences", json=fake_evidences(5)))
    await ok(sandbox.call("POST", f"/api/v1/videoid/{pk}/evidences/video",
                          data=file_form("video", VIDEO, "identification.mp4", "video/mp4")()))
    return pk


async def hello(sandbox: SandboxClient) -> Call:
    return Call("GET", "/api/v1/hello")


async def update_settings(sandbox: SandboxClient) -> Call:
    return Call("POST", "/api/v1/settings",
                json={"registration_authorities": {"9999": {"webhook_url": "http://127.0.0.1:9/hook"}}})


async def list_metadata(sandbox: SandboxClient) -> Call:
    await a_metadata(sandbox)
    return Call("GET", "/api/v1/metadata")


async def upload_metadata(sandbox: SandboxClient) -> Call:
    return Call("POST", "/api/v1/metadata", json={"metadata": "contract 43", "metadata_oid": "1.3.6.1.4.1.99999.8"})


async def get_metadata(sandbox: SandboxClient) -> Call:
    return Call("GET", f"/api/v1/metadata/{await a_metadata(sandbox)}")


async def delete_metadata(sandbox: SandboxClient) -> Call:
    return Call("DELETE", f"/api/v1/metadata/{await a_metadata(sandbox)}")


async def create_token(sandbox: SandboxClient) -> Call:
    return Call("POST", "/api/v1/token", json=RAO)


async def get_token(sandbox: SandboxClient) -> Call:
    return Call("GET", f"/api/v1/token/{DEFAULT_TOKEN}")


async def delete_token(sandbox: SandboxClient) -> Call:
    uid = await ok(sandbox.call("POST", "/api/v1/token", json={**RAO, "username": "1125824"}))
    return Call("DELETE", f"/api/v1/token/{uid}")


async def create_request(sandbox: SandboxClient) -> Call:
    return Call("POST", "/api/v1/request", form=request_form, form_fields={**TOKEN, **IDENTITY})


async def get_request(sandbox: SandboxClient) -> Call:
    pk = await sandbox.create_request()
    return Call("GET", f"/api/v1/request/{pk}", pk)


async def async_status(sandbox: SandboxClient) -> Call:
    pk = await sandbox.create_request(useasync="true")
    return Call("GET", f"/api/v1/async/status/{pk}", pk)


async def generate_otp(sandbox: SandboxClient) -> Call:
    pk = await sandbox.create_request()
    return Call("POST", f"/api/v1/otp/{pk}", pk, json={"delivery_method": "sms"})


async def sign(sandbox: SandboxClient) -> Call:
    pk, _ = await approved(sandbox)
    return Call("POST", f"/api/v1/sign/{pk}", pk, json={"secret": await sandbox.otp(pk)})


async def upload_document(sandbox: SandboxClient) -> Call:
    pk = await sandbox.create_request()
    return Call("POST", f"/api/v1/document/{pk}", pk, form=file_form("file", blank_pdf(), "doc.pdf", "application/pdf"))


async def retrieve_document(sandbox: SandboxClient) -> Call:
    pk, uid = await approved(sandbox)
    return Call("GET", f"/api/v1/document/{pk}/original/{uid}", pk)


async def delete_document(sandbox: SandboxClient) -> Call:
    pk, uid = await approved(sandbox)
    return Call("DELETE", f"/api/v1/document/{pk}/original/{uid}", pk)


async def list_documents(sandbox: SandboxClient) -> Call:
    pk, _ = await approved(sandbox)
    return Call("GET", f"/api/v1/documents/{pk}", pk)


async def delete_all_documents(sandbox: SandboxClient) -> Call:
    pk, _ = await approved(sandbox)
    return Call("DELETE", f"/api/v1/documents/{pk}", pk)


async def retrieve_contract(sandbox: SandboxClient) -> Call:
    pk, _ = await approved(sandbox)
    return Call("GET", f"/api/v1/document/{pk}/contract", pk)


async def upload_image(sandbox: SandboxClient) -> Call:
    return Call("POST", "/api/v1/image", form=file_form("image", png(), "sig.png", "image/png"))


async def retrieve_image(sandbox: SandboxClient) -> Call:
    return Call("GET", f"/api/v1/image/{await an_image(sandbox)}")


async def delete_image(sandbox: SandboxClient) -> Call:
    return Call("DELETE", f"/api/v1/image/{await an_image(sandbox)}")


async def create_videoid(sandbox: SandboxClient) -> Call:
    return Call("POST", "/api/v1/videoid", json={**CONTACT, "registration_authority": EXTERNAL_RA,
                                                 "profile": "PFnubeQAFCiudadano", "env": "sandbox"})


async def upload_data(sandbox: SandboxClient) -> Call:
    pk = await a_videoid(sandbox)
    return Call("POST", f"/api/v1/videoid/{pk}/evidences", pk, json=fake_evidences(5))


async def upload_video(sandbox: SandboxClient) -> Call:
    pk = await a_videoid(sandbox)
    return Call("POST", f"/api/v1/videoid/{pk}/evidences/video", pk,
                form=file_form("video", VIDEO, "identification.mp4", "video/mp4"))


async def download_video(sandbox: SandboxClient) -> Call:
    pk = await identified(sandbox)
    return Call("GET", f"/api/v1/videoid/{pk}/download/video", pk)


async def validate_request(sandbox: SandboxClient) -> Call:
    pk = await identified(sandbox)
    return Call("POST", f"/api/v1/videoid/{pk}/validate", pk, json=TOKEN)


async def approve_request(sandbox: SandboxClient) -> Call:
    pk = await identified(sandbox)
    return Call("POST", f"/api/v1/requests/{pk}/approve", pk, json=TOKEN)


async def refuse_request(sandbox: SandboxClient) -> Call:
    pk = await identified(sandbox)
    return Call("POST", f"/api/v1/videoid/{pk}/refuse", pk, json={**TOKEN, "reason": "blurry document"})


async def cancel_request(sandbox: SandboxClient) -> Call:
    pk = await a_videoid(sandbox)
    return Call("DELETE", f"/api/v1/request/{pk}", pk)


async def update_request(sandbox: SandboxClient) -> Call:
    pk = await identified(sandbox)
    detail = await ok(sandbox.call("GET", f"/api/v1/request/{pk}"))
    body = {"scratchcard": detail["scratchcard"], "email": detail["email"], "profile": detail["profile"],
            "registration_authority": str(detail["registration_authority"]), "country_name": "ES",
            "given_name": "Corregida"}
    return Call("PUT", f"/api/v1/request/{pk}", pk, json=body)


SAMPLES: dict[str, Callable[[SandboxClient], Awaitable[Call]]] = {
    "*": hello,
    **{sample.__name__: sample for sample in (
        update_settings, list_metadata, upload_metadata, get_metadata, delete_metadata, create_token, get_token,
        delete_token, create_request, get_request, async_status, generate_otp, sign, upload_document,
        retrieve_document, delete_document, list_documents, delete_all_documents, retrieve_contract,
        upload_image, retrieve_image, delete_image, create_videoid, upload_data, upload_video, download_video,
        validate_request, approve_request, refuse_request, cancel_request, update_request,
    )},
}


def operation_of(key: str) -> str:
    """The operation a catalogue entry's scenario matches: the key's first part ("*" for api.*, identify.*)."""
    first = key.split(".")[0]
    return "*" if first in ("api", "identify") else first


def matches_template(template: Any, actual: Any, values: dict[str, str]) -> bool:
    """Whether ``actual`` is ``template`` with each {name} filled with the call's value or left as-is."""
    if isinstance(template, dict):
        return (isinstance(actual, dict) and len(actual) == len(template)
                and all(k in actual and matches_template(v, actual[k], values) for k, v in template.items()))
    if isinstance(template, list):
        return (isinstance(actual, list) and len(actual) == len(template)
                and all(matches_template(t, a, values) for t, a in zip(template, actual, strict=True)))
    if not isinstance(template, str) or not PLACEHOLDER.search(template):
        return template == actual
    pattern, last = "", 0
    for found in PLACEHOLDER.finditer(template):
        choices = [re.escape(found.group(0))]
        if found.group(1) in values:
            choices.append(re.escape(values[found.group(1)]))
        pattern += re.escape(template[last:found.start()]) + "(?:" + "|".join(choices) + ")"
        last = found.end()
    pattern += re.escape(template[last:])
    return isinstance(actual, str) and re.fullmatch(pattern, actual, re.DOTALL) is not None


# scenarios/errors/ -------------------------------------------------------------------------------------


async def test_every_catalogue_entry_has_an_error_scenario_file(sandbox):
    served = (await sandbox.call("GET", "/_mock/errors")).body["errors"]
    assert {path.stem for path in ERROR_FILES} == {entry["key"] for entry in served}


@pytest.mark.parametrize("path", ERROR_FILES, ids=[p.stem for p in ERROR_FILES])
async def test_error_scenario_answers_its_catalogue_entry(sandbox, path):
    key = path.stem
    scenario = await load_file(sandbox, path)
    assert scenario["activation"] == "header"
    [rule] = scenario["rules"]
    assert rule["match"]["operation"] == operation_of(key) and rule["then"] == {"error": key}
    served = {e["key"]: e for e in (await sandbox.call("GET", "/_mock/errors")).body["errors"]}
    entry = served[key]

    call = await SAMPLES[operation_of(key)](sandbox)
    answer = await sandbox.call(call.method, call.path, headers={"X-Mock-Scenario": scenario["name"]},
                                **call.kwargs())
    assert answer.status == entry["http_status"], answer.body
    assert answer.body["status"] == entry["status"], answer.body
    assert matches_template(entry["details"], answer.body["details"], call.values()), (
        entry["details"], answer.body["details"])
    assert await hits(sandbox, scenario["name"]) == [1]


# The nine realistic files -------------------------------------------------------------------------------

REALISTIC = {
    "billing-exhausted", "expired-certificate", "flaky-network", "revoked-certificate", "slow-signing",
    "sms-outage", "tampered-document", "videoid-rejected", "webhook-receiver-flaky",
}


def test_every_realistic_file_has_its_test():
    assert {path.stem for path in REALISTIC_FILES} == REALISTIC


async def test_billing_exhausted(sandbox):
    await load_realistic(sandbox, "billing-exhausted")
    answer = await sandbox.create_request_raw({**TOKEN, **IDENTITY})
    assert answer.status == 500
    assert answer.body == {"status": "500 Internal Server Error", "details": (
        "Cannot check the remaining credit for the billing user. Please check the credentials")}
    assert (await sandbox.call("GET", "/_mock/requests")).body["requests"] == []


async def test_expired_certificate(sandbox):
    await load_realistic(sandbox, "expired-certificate")
    _, pdf = await signed_pdf(sandbox)
    status = await check_expired_signer(pdf)
    expired_for = status.signer_reported_dt - status.signing_cert.not_valid_after
    assert timedelta(hours=23) <= expired_for <= timedelta(hours=25), f"expired {expired_for} before signing"


async def vendor_outcomes(sandbox: SandboxClient, count: int) -> list[int | str]:
    """Status of ``count`` GET /api/v1/hello calls, "reset" where the connection was reset."""
    outcomes: list[int | str] = []
    for _ in range(count):
        try:
            outcomes.append((await sandbox.call("GET", "/api/v1/hello")).status)
        except aiohttp.ClientError:
            outcomes.append("reset")
    return outcomes


async def test_flaky_network(make_client):
    first, second = await make_client(), await make_client()
    for sandbox in (first, second):
        await load_realistic(sandbox, "flaky-network")
    outcomes = await vendor_outcomes(first, 45)
    assert set(outcomes) == {200, "reset"}, outcomes
    assert 8 <= outcomes.count("reset") <= 22, f"not about one call in three: {outcomes}"
    assert await vendor_outcomes(second, 45) == outcomes, "the same calls fail for the same seed"
    health = [(await first.call("GET", "/_mock/health")).status for _ in range(10)]
    assert health == [200] * 10, "only the vendor API is flaky"


async def test_revoked_certificate(sandbox, nss_db, tmp_path):
    await load_realistic(sandbox, "revoked-certificate")
    pk, pdf = await signed_pdf(sandbox)
    await check_revoked_in_crl_and_ocsp(sandbox, pk)
    await check_pdfsig_revoked(pdf, nss_db, tmp_path)


async def test_slow_signing(sandbox):
    await load_realistic(sandbox, "slow-signing")
    pk = await sandbox.create_request()
    await sandbox.upload_pdf(pk)
    code = await sandbox.otp(pk)
    answer, signing = await timed(sandbox.sign(pk, {"secret": code}))
    assert answer.status == 200, answer.body
    assert signing >= 0.8, signing
    assert await hits(sandbox, "slow-signing") == [1], "only the sign call was slowed down"


async def test_sms_outage(sandbox):
    await load_realistic(sandbox, "sms-outage")
    pk = await sandbox.create_request()
    answer = await sandbox.call("POST", f"/api/v1/otp/{pk}")
    assert answer.body == {"status": "200 OK", "details": "OTP generated"}, answer.body
    assert await outbox(sandbox, pk) == []
    [message] = await outbox(sandbox, pk, undelivered=True)
    assert message["delivered_at"] is None


async def test_tampered_document(sandbox):
    await load_realistic(sandbox, "tampered-document")
    _, pdf = await signed_pdf(sandbox)
    status = await validate(pdf)
    assert not status.intact, status.pretty_print_details()


async def test_videoid_rejected(sandbox):
    await load_realistic(sandbox, "videoid-rejected")
    pk = await a_videoid(sandbox)
    assert await status_of(sandbox, pk) == "VIDEOPENDING"
    await advance(sandbox, 59)
    await asyncio.sleep(0.3)
    assert await status_of(sandbox, pk) == "VIDEOPENDING", "cancelled before 60 sandbox seconds"
    await advance(sandbox, 1)

    async def cancelled() -> bool:
        return await status_of(sandbox, pk) == "CANCELLED"

    await eventually(cancelled, f"VideoID request {pk} cancelled", timeout=5)


async def test_webhook_receiver_flaky(receiver, make_client):
    sandbox = await make_client(webhook_retry_scale=0.01)
    await load_realistic(sandbox, "webhook-receiver-flaky")
    pk = await create_async(sandbox, receiver.url)
    await sandbox.upload_pdf(pk)
    assert (await sandbox.sign(pk, {"secret": await sandbox.otp(pk)})).body == ASYNC_SIGNED
    await wait_signed(sandbox, pk)
    log = await settled_log(sandbox, pk, 3)
    assert [e["event"] for e in log] == ["CREATED", "ENROLLREADY", "ISSUED"]
    for event in log:
        assert event["state"] == "delivered", event
        assert [a["status"] for a in event["attempts"]] == [503, 503, 200], event
    deliveries = await receiver.wait_for(3, timeout=5)
    assert [d.event for d in deliveries] == ["CREATED", "ENROLLREADY", "ISSUED"]
    assert len(receiver.deliveries) == 3, "failures are simulated: the receiver gets each event once"
    assert all(d.json["request"] == pk for d in deliveries)
