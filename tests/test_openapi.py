"""The sandbox's own OpenAPI 3.1 document (GET /openapi.json) is true.

* Every route the app registers is documented and every documented operation is routed.
* The document is valid OpenAPI 3.1, and every example in it fits its schema.
* A bounded, seeded schemathesis run against a real sandbox process finds no 5xx and no answer the
  document does not describe (status, body schema, content type): every error in its family's envelope.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import schemathesis
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from schemathesis.engine import events, from_schema

from mock_server.api import openapi
from mock_server.domain.fakes import fake_evidences
from mock_server.server.app import create_app
from mock_server.server.config import Config
from tests.helpers import DEFAULT_TOKEN, IDENTITY, blank_pdf, picture, running_sandbox

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

# The run: seeded and derandomized, so CI replays the same cases; a few examples per operation keeps it
# CI-sized (signing calls take about a second each).
SEED = 20240607
MAX_EXAMPLES = 20
OTP = "123456"  # the sign examples' secret
# Loading a scenario makes every later call answer a canned error, a delay or a transport fault (that is
# what scenarios are for): a generated scenario that happens to be valid would turn the rest of the run into
# noise. Loading scenarios has tests of its own (test_scenarios.py).
# The live event stream answers until the server stops: a fuzzer waiting for its end would wait for
# ever (test_events.py reads it as a client does).
EXCLUDED = {"mock_load_scenario", "mock_events"}
# Generated callback and webhook URLs would make the sandbox POST webhooks anywhere: pin them to a loopback
# port nothing listens on (the sandbox records a failed delivery).
LOOPBACK_HOOK = "http://127.0.0.1:9/hook"
# Schemathesis has no serializer for these binary media types: their bodies go on the wire as raw bytes.
RAW_MEDIA_TYPES = ["application/pdf", "application/timestamp-query", "application/ocsp-request", "video/mp4"]
# The request, document and image the document's examples name (seed file), so examples reach real answers.
EXAMPLE_PK = 35247
# The newer family's examples name a request of their own: the legacy sign example issues EXAMPLE_PK first, and
# then the newer upload example would only meet 412 (its success would hang on the stateful phase's luck).
NEWER_EXAMPLE_PK = 35248
EXAMPLE_DOCUMENT = "db1c8aea-9cc0-4460-925c-72c6c918e5ae"
EXAMPLE_IMAGE = "13705f52-3211-49a8-9807-b65b8da25f3e"


def schema_validator(document: dict[str, Any], *parts: str) -> Draft202012Validator:
    """A validator for the schema at ``parts`` of the document, its ``$ref``s resolved in the document."""
    uri = "urn:oneshot-mock:openapi"
    registry = Registry().with_resource(uri, DRAFT202012.create_resource(document))
    pointer = "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)
    return Draft202012Validator({"$ref": f"{uri}#/{pointer}"}, registry=registry)


def documented_operations(document: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(method, path) → operationId."""
    return {
        (method.upper(), path): operation["operationId"]
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in openapi.METHODS
    }


def routed_operations(app) -> set[tuple[str, str]]:
    """(method, canonical path) of every route; the trailing-slash twins and a GET's HEAD twin are
    the same operation."""
    routed = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        path = route.resource.canonical
        routed.add((route.method, path.rstrip("/") if len(path) > 1 else path))
    return routed


def test_every_route_is_documented_and_every_operation_routed(executor):
    app = create_app(Config(), executor)
    routed = routed_operations(app)
    documented = documented_operations(openapi.document())
    assert sorted(routed - documented.keys()) == [], "routes missing from mock_server/openapi.yaml"
    assert sorted(documented.keys() - routed) == [], "documented operations the app does not route"
    assert len(set(documented.values())) == len(documented), "operationIds are unique"


def test_the_document_is_valid_openapi_3_1():
    document = openapi.document()
    assert document["openapi"].startswith("3.1.")
    validate_openapi(document)


def _examples(node: Any, path: tuple[str, ...] = ()):
    """(example value, path of its schema, where) for every example of a media type or parameter."""
    if isinstance(node, dict):
        media_type = len(path) >= 2 and path[-2] == "content"
        if "schema" in node and (media_type or "in" in node):
            if "example" in node:
                yield node["example"], (*path, "schema"), "/".join(path)
            for name, example in (node.get("examples") or {}).items():
                yield example["value"], (*path, "schema"), "/".join((*path, name))
        for key, value in node.items():
            yield from _examples(value, (*path, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _examples(value, (*path, str(index)))


def test_every_example_fits_its_schema():
    """Examples are what readers copy: the vendor's, the documentation's and the catalogue's rendered errors."""
    document = openapi.document()
    checked, wrong = 0, []
    for value, schema_path, where in _examples(document):
        validator = schema_validator(document, *schema_path)
        wrong.extend(f"{where}: {error.message}" for error in validator.iter_errors(value))
        checked += 1
    assert checked > 100
    assert wrong == []


def test_errors_are_documented_from_the_catalogue():
    """An operation's error responses carry its catalogue entries, rendered in its family's envelope."""
    paths = openapi.document()["paths"]
    legacy = paths["/api/v1/request/{pk}"]["get"]["responses"]["404"]["content"]["application/json"]
    assert legacy["examples"]["get_request.404.not_found"]["value"] == {
        "status": "404 Not Found", "details": "Request not found. Make sure the upload directory is correct."}
    newer = paths["/oneshot/api/v1/sign/{request_pk}"]["post"]["responses"]["403"]["content"]["application/json"]
    assert newer["examples"]["sign.403.invalid_otp"]["value"]["details"]["error"] == "sign.403.invalid_otp"
    for item in paths.values():
        for method, operation in item.items():
            if method in openapi.METHODS:
                assert "default" in operation["responses"], operation["operationId"]


async def test_the_sandbox_serves_the_document(make_client):
    client = await make_client()
    answer = await client.call("GET", "/openapi.json")
    assert answer.status == 200 and answer.content_type == "application/json"
    assert answer.body == openapi.document()


def assert_documented(method: str, template: str, answer) -> None:
    """``answer`` fits the document: its status's response (or the default one), schema and content type."""
    document = openapi.document()
    responses = document["paths"][template][method.lower()]["responses"]
    status = str(answer.status) if str(answer.status) in responses else "default"
    parts, response = ("paths", template, method.lower(), "responses", status), responses[status]
    while "$ref" in response:  # a response of components/responses
        parts = tuple(response["$ref"].removeprefix("#/").split("/"))
        response = document[parts[0]][parts[1]][parts[2]]
    assert answer.content_type in response.get("content", {}), (template, answer.status, answer.content_type)
    if answer.content_type == "application/json":
        schema_validator(document, *parts, "content", answer.content_type, "schema").validate(answer.body)


MULTIPART = {"Content-Type": "multipart/form-data; boundary=bnd"}
# What schemathesis found: each once a 500, now a 4xx in the family's envelope.
FOUND = [
    pytest.param("POST", "/_mock/pki/revoke", "/_mock/pki/revoke", {"json": {"request": {}}}, 400,
                 id="revoke-request-not-a-number"),
    pytest.param("POST", "/api/v1/otp/35247", "/api/v1/otp/{pk}", {"json": {"delivery_method": [None, None]}}, 400,
                 id="otp-delivery-method-not-a-string"),
    pytest.param("POST", "/oneshot/api/v1/otp/%C2%B9", "/oneshot/api/v1/otp/{request_pk}", {}, 404,
                 id="pk-superscript-digit"),
    pytest.param("GET", "/_mock/requests/%C2%B9", "/_mock/requests/{pk}", {}, 404,
                 id="control-pk-superscript-digit"),
    pytest.param("POST", "/oneshot/api/v1/sign/35247", "/oneshot/api/v1/sign/{request_pk}",
                 {"json": {"secret": "1", "signature": {"appearance": {"position": "", "page": 0}}}}, 400,
                 id="sign-appearance-bad-position"),
    pytest.param("POST", "/api/v1/sign/35247", "/api/v1/sign/{pk}",
                 {"json": {"secret": "1", "options": {"position": "1, 2", "page": 0}}}, 400,
                 id="sign-flat-options-bad-position"),
    pytest.param("POST", "/api/v1/image", "/api/v1/image",
                 {"data": b"--bnd\r\nTrue--bnd--\r\n", "headers": MULTIPART}, 400,
                 id="multipart-part-header-unparsable"),
    pytest.param("POST", "/oneshot/api/v1/document/35247", "/oneshot/api/v1/document/{request_pk}",
                 {"data": b'--bnd\r\nContent-Disposition: form-data; name="\x0b\xc3\x85"\r\n\r\n{}\r\n--bnd--\r\n',
                  "headers": MULTIPART}, 400, id="multipart-part-name-control-character"),
    pytest.param("POST", "/_mock/clock", "/_mock/clock", {"json": {"advance_s": -3.402823466e38}}, 400,
                 id="clock-advance-overflows"),
    pytest.param("POST", "/_mock/clock", "/_mock/clock", {"json": {"set": "9999-12-31T23:59:59Z"}}, 400,
                 id="clock-set-out-of-range"),
    pytest.param("POST", "/api/v1/settings", "/api/v1/settings", {"json": {"request": "x"}}, 400,
                 id="settings-section-not-an-object"),
]


@pytest.mark.parametrize(("method", "path", "template", "kwargs", "status"), FOUND)
async def test_what_schemathesis_found_is_a_documented_4xx(sandbox, method, path, template, kwargs, status):
    answer = await sandbox.call(method, path, **kwargs)
    assert answer.status == status, answer.body
    assert_documented(method, template, answer)


async def test_a_refused_settings_update_leaves_the_sandbox_working(sandbox):
    """Replacing a settings section by a non-object used to break every later create call (500)."""
    for body in ({"request": "x"}, {"general": [1]}, {"request": {"default_profile": "PFnubeNC"}, "billing": None}):
        answer = await sandbox.call("POST", "/api/v1/settings", json=body)
        assert answer.status == 400 and "expected an object" in answer.body["details"], answer.body
    assert (await sandbox.call("GET", "/api/v1/settings")).body["details"]["request"]["default_profile"] == (
        "PFnubeQAFCiudadano"), "a refused update changes nothing"
    await sandbox.create_request()
    # A numeric default Registration Authority (natural in JSON) used to crash VideoID creation.
    await sandbox.call("POST", "/api/v1/settings", json={"request": {"default_ra": 9999}})
    answer = await sandbox.call("POST", "/api/v1/videoid", json={"email": "a@example.com",
                                                                  "mobile_phone_number": "+34600000001"})
    assert answer.status == 200, answer.body
    assert_documented("POST", "/api/v1/videoid", answer)


async def test_the_clock_moves_within_its_range(sandbox):
    answer = await sandbox.call("POST", "/_mock/clock", json={"set": "2031-05-01T10:00:00Z"})
    assert answer.status == 200 and answer.body["now"].startswith("2031-05-01T10:00")
    refused = await sandbox.call("POST", "/_mock/clock", json={"advance_s": 1e300})
    assert refused.status == 400 and "between 1970-01-01 and 9000-01-01" in refused.body["error"]
    assert (await sandbox.call("GET", "/_mock/clock")).body["now"].startswith("2031-05-01T10:00"), "unchanged"


class DocumentedClient:
    """Calls that must answer ``status`` and fit the document (the path template names the operation)."""

    def __init__(self, sandbox) -> None:
        self.sandbox = sandbox
        self.checked: set[tuple[str, str]] = set()

    async def __call__(self, method: str, template: str, status: int, path: str | None = None, **kwargs):
        answer = await self.sandbox.call(method, path or template, allow_redirects=False, **kwargs)
        assert answer.status == status, (method, path or template, answer.status, answer.raw[:300])
        assert_documented(method, template, answer)
        self.checked.add((method, template))
        return answer


def _files(*parts: tuple[str, str, bytes, str]) -> aiohttp.FormData:
    form = aiohttp.FormData()
    for name, filename, data, content_type in parts:
        form.add_field(name, data, filename=filename, content_type=content_type)
    return form


async def test_real_flows_answer_as_documented(sandbox):
    """Success answers fuzzing rarely reaches (signed documents, VideoID, the link page), checked against
    the document: classic and hash flows in both families, VideoID external and eIDAS, the control API."""
    call = DocumentedClient(sandbox)
    rao = {"token": DEFAULT_TOKEN}
    pdf = blank_pdf(2)
    digest = base64.b64encode(hashlib.sha256(b"payload").digest()).decode()
    hashfile = json.dumps({"messageDigest": digest, "digestAlgorithm": "sha256", "addAuthAttribute": 1,
                           "addSigningTime": 1, "otherAuthAttributes": []}).encode()

    # Legacy classic flow, a visible signature with an image, metadata.
    # Its webhooks go to a port nothing listens on: the log then holds attempts and retries to come.
    pk = (await call("POST", "/api/v1/request", 201, json={**IDENTITY, **rao, "callback": LOOPBACK_HOOK})).body[
        "details"]
    image = (await call("POST", "/api/v1/image", 200, data=_files(("image", "s.png", picture(), "image/png"))))
    image_uid = image.body["details"]
    await call("GET", "/api/v1/images", 200)
    await call("GET", "/api/v1/image/{uid}", 200, f"/api/v1/image/{image_uid}")
    uid = (await call("POST", "/api/v1/document/{pk}", 200, f"/api/v1/document/{pk}",
                      data=_files(("file", "a.pdf", pdf, "application/pdf")))).body["details"]
    both = await call("POST", "/api/v1/document/{pk}", 200, f"/api/v1/document/{pk}",
                      data=_files(("file2", "b.pdf", pdf, "application/pdf"), ("hashfile", "h.json", hashfile, "")))
    hash_uid = next(e["uid"] for e in both.body["details"] if e["key"] == "hashfile")
    await call("GET", "/api/v1/documents/{pk}", 200, f"/api/v1/documents/{pk}")
    metadata = (await call("POST", "/api/v1/metadata", 200, json={"metadata": "bWV0YQ==", "metadata_oid": "1.2.3"}))
    await call("GET", "/api/v1/metadata", 200)
    await call("GET", "/api/v1/metadata/{uid}", 200, f"/api/v1/metadata/{metadata.body['details']['metadata']}")
    await call("POST", "/api/v1/otp/{pk}", 200, f"/api/v1/otp/{pk}")
    otp = (await call("GET", "/_mock/sms", 200, params={"request": str(pk)})).body["messages"][-1]["otp"]
    await call("POST", "/api/v1/sign/{pk}", 200, f"/api/v1/sign/{pk}", json={
        "secret": otp, "options": {uid: {"position": "50, 50, 250, 120", "page": 1, "image": image_uid}}})
    await call("GET", "/api/v1/async/status/{pk}", 200, f"/api/v1/async/status/{pk}")
    await call("GET", "/api/v1/request/{pk}", 200, f"/api/v1/request/{pk}")
    for kind, doc in (("signed", uid), ("original", uid), ("signed", hash_uid), ("original", hash_uid)):
        await call("GET", "/api/v1/document/{pk}/{type}/{uid}", 200, f"/api/v1/document/{pk}/{kind}/{doc}")
    await call("GET", "/api/v1/document/{pk}/contract", 200, f"/api/v1/document/{pk}/contract")
    await call("DELETE", "/api/v1/document/{pk}/{type}/{uid}", 200, f"/api/v1/document/{pk}/signed/{uid}")
    await call("GET", "/_mock/requests/{pk}", 200, f"/_mock/requests/{pk}")
    await call("GET", "/_mock/pki/certificates", 200)
    await call("POST", "/_mock/pki/revoke", 200, json={"request": pk})
    await call("GET", "/_mock/pki/crl", 200)
    await call("GET", "/_mock/pki/ca.pem", 200)
    await call("DELETE", "/api/v1/request/{pk}", 412, f"/api/v1/request/{pk}")

    # Newer family: create, upload, sign with an appearance, download, tokens.
    npk = (await call("POST", "/oneshot/api/v1/create", 201, json=IDENTITY)).body["details"]["request_pk"]
    nuid = (await call("POST", "/oneshot/api/v1/document/{request_pk}", 200, f"/oneshot/api/v1/document/{npk}",
                       data=_files(("file", "n.pdf", pdf, "application/pdf")))).body["detail"]["uid"]
    await call("GET", "/oneshot/api/v1/document/{request_pk}", 200, f"/oneshot/api/v1/document/{npk}")
    await call("POST", "/oneshot/api/v1/otp/{request_pk}", 200, f"/oneshot/api/v1/otp/{npk}")
    otp = (await call("GET", "/_mock/sms", 200, params={"request": str(npk)})).body["messages"][-1]["otp"]
    appearance = {"text": "Signed by %(CN)s", "position": "50, 50, 250, 120", "page": 0,
                  "b64_image": base64.b64encode(picture()).decode()}
    await call("POST", "/oneshot/api/v1/sign/{request_pk}", 200, f"/oneshot/api/v1/sign/{npk}",
               json={"secret": otp, "signature": {"appearance": appearance}})
    await call("GET", "/oneshot/api/v1/request/{request_pk}/status", 200, f"/oneshot/api/v1/request/{npk}/status")
    await call("GET", "/oneshot/api/v1/request/{request_pk}", 200, f"/oneshot/api/v1/request/{npk}")
    await call("GET", "/oneshot/api/v1/document/{request_pk}/{document_uid}", 200,
               f"/oneshot/api/v1/document/{npk}/{nuid}")
    await call("GET", "/oneshot/api/v1/contract/{request_pk}", 200, f"/oneshot/api/v1/contract/{npk}")
    await call("DELETE", "/oneshot/api/v1/document/{request_pk}/{document_uid}", 200,
               f"/oneshot/api/v1/document/{npk}/{nuid}", params={"document_type": "signed"})
    token = (await call("POST", "/oneshot/api/v1/token", 200, json={"username": "9001800", "password": "oneshot-mock",
                                                                     "env": "sandbox"})).body["details"]["token_uid"]
    await call("GET", "/oneshot/api/v1/token/{uid}", 200, f"/oneshot/api/v1/token/{token}")
    await call("GET", "/oneshot/api/v1/tokens", 200)
    await call("DELETE", "/oneshot/api/v1/token/{uid}", 200, f"/oneshot/api/v1/token/{token}")

    # VideoID, external (legacy): evidences and video, then the RAO approves.
    contact = {"email": "eva@example.com", "mobile_phone_number": "+34600000002", "env": "sandbox"}
    created = await call("POST", "/api/v1/videoid", 200, json={**contact, "registration_authority": "9998"})
    vpk = created.body["details"]["request_pk"]
    await call("POST", "/api/v1/videoid/{pk}/evidences", 200, f"/api/v1/videoid/{vpk}/evidences",
               json=fake_evidences(3))
    await call("POST", "/api/v1/videoid/{pk}/evidences/video", 200, f"/api/v1/videoid/{vpk}/evidences/video",
               data=_files(("video", "v.mp4", b"not really a video", "video/mp4")))
    await call("GET", "/api/v1/videoid/{pk}/download/video", 200, f"/api/v1/videoid/{vpk}/download/video")
    await call("POST", "/api/v1/requests/{pk}/approve", 200, f"/api/v1/requests/{vpk}/approve", json=rao)

    # VideoID, eIDAS (newer): the link page and its buttons, the control API's outcomes, a refusal.
    made = await call("POST", "/oneshot/api/v1/videoid", 200,
                      json={**contact, "registration_authority": "9999", "profile": "PFnubeQAFCiudadano"})
    link = made.body["detail"]["videoid_link"].split("/videoid/", 1)[1]
    await call("GET", "/videoid/{link}", 200, f"/videoid/{link}")
    await call("POST", "/videoid/{link}/{action}", 303, f"/videoid/{link}/complete")
    await call("POST", "/videoid/{link}/{action}", 412, f"/videoid/{link}/complete")
    await call("POST", "/oneshot/api/v1/videoid/{videoid_pk}/approve", 200,
               f"/oneshot/api/v1/videoid/{made.body['detail']['videoid_pk']}/approve", json=rao)
    other = await call("POST", "/api/v1/videoid", 200, json={**contact, "registration_authority": "9999"})
    opk = other.body["details"]["request_pk"]
    await call("POST", "/_mock/videoid/{pk}/{outcome}", 200, f"/_mock/videoid/{opk}/incomplete")
    await call("POST", "/_mock/videoid/{pk}/{outcome}", 412, f"/_mock/videoid/{opk}/incomplete")
    await call("GET", "/_mock/requests/{pk}", 200, f"/_mock/requests/{opk}")
    await call("POST", "/api/v1/videoid/{pk}/refuse", 200, f"/api/v1/videoid/{opk}/refuse",
               json={**rao, "reason": "blurred"})

    await call("GET", "/_mock/requests", 200)
    logged = await call("GET", "/_mock/webhooks", 200)
    assert any(event["attempts"] for event in logged.body["webhooks"]), logged.body
    await call("GET", "/_mock/scenarios", 200)
    await call("GET", "/_mock/errors", 200)
    await call("GET", "/openapi.json", 200)
    assert len(call.checked) >= 50


# The schemathesis run ----------------------------------------------------------------------------------


@dataclass
class RunReport:
    """What the run did: cases by phase, status codes by operation, failures and errors."""

    seconds: float = 0.0
    cases: collections.Counter = field(default_factory=collections.Counter)
    statuses: dict[str, collections.Counter] = field(default_factory=lambda: collections.defaultdict(
        collections.Counter))
    checks: collections.Counter = field(default_factory=collections.Counter)
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        phases = ", ".join(f"{phase} {count}" for phase, count in sorted(self.cases.items()))
        return (f"schemathesis {schemathesis.__version__}: {len(self.statuses)} operations, "
                f"{sum(self.cases.values())} cases ({phases}), {sum(self.checks.values())} checks, "
                f"{len(self.failures)} failures, {len(self.errors)} errors in {self.seconds:.1f} s")


def _pin_urls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: LOOPBACK_HOOK if k in ("callback", "webhook_url") and isinstance(v, str) and v
                else _pin_urls(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_pin_urls(v) for v in value]
    return value


def _pin_webhook_urls(context, case, kwargs) -> None:
    if isinstance(case.body, dict | list):
        case.body = _pin_urls(case.body)


def run_schemathesis(base: str) -> RunReport:
    config = schemathesis.Config.from_dict({
        "seed": SEED,
        "request-timeout": 60,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        "phases": {"stateful": {"enabled": True, "max-steps": 6}},
        "checks": {
            "enabled": False,
            "not_a_server_error": {"enabled": True},
            "response_schema_conformance": {"enabled": True},
            "content_type_conformance": {"enabled": True},
        },
    })
    schemathesis.serializer.alias(RAW_MEDIA_TYPES, "application/octet-stream")
    schema = schemathesis.openapi.from_url(base + openapi.PATH, config=config)
    # Every operation, GET /openapi.json included (schemathesis leaves out the one that served the document
    # unless a filter selects it), bar the excluded ones.
    schema = schema.include(path_regex="^/").exclude(operation_id=sorted(EXCLUDED))
    report = RunReport()
    started = time.monotonic()
    schemathesis.hook("before_call")(_pin_webhook_urls)
    try:
        for event in from_schema(schema).execute():
            if isinstance(event, events.ScenarioFinished):
                _record(report, event)
            elif isinstance(event, events.NonFatalError):
                report.errors.append(f"{event.label}: {event.value!r}")
            elif isinstance(event, events.FatalError):
                report.errors.append(f"fatal: {event.exception!r}")
    finally:
        schemathesis.hooks.unregister(_pin_webhook_urls)
    report.seconds = time.monotonic() - started
    return report


def _record(report: RunReport, event: events.ScenarioFinished) -> None:
    recorder = event.recorder
    report.cases[str(event.phase)] += len(recorder.cases)
    for case_id, interaction in recorder.interactions.items():
        if interaction.response is not None:
            report.statuses[recorder.cases[case_id].value.operation.label][interaction.response.status_code] += 1
    for case_id, checks in recorder.checks.items():
        for check in checks:
            report.checks[check.name] += 1
            if check.failure_info is not None:
                failure, response = check.failure_info.failure, recorder.interactions[case_id].response
                answer = f"{response.status_code} {response.content[:300]!r}" if response is not None else "-"
                report.failures.append(
                    f"{recorder.label} [{check.name}] {failure.title}: {failure.message}\n"
                    f"    answer: {answer}\n    {check.failure_info.code_sample}"
                )


def _seed_file(tmp_path: Path) -> Path:
    """The requests, document and image the document's examples name, there from the start (and after resets)."""
    (tmp_path / "document.pdf").write_bytes(blank_pdf())
    (tmp_path / "signature.png").write_bytes(picture())
    fields = {**IDENTITY, "token": DEFAULT_TOKEN}
    seed = {
        "requests": [{"pk": EXAMPLE_PK, **fields, "documents": [{"uid": EXAMPLE_DOCUMENT, "file": "document.pdf"}]},
                     {"pk": NEWER_EXAMPLE_PK, **fields}],
        "images": [{"uid": EXAMPLE_IMAGE, "file": "signature.png"}],
    }
    path = tmp_path / "seed.yaml"
    path.write_text(json.dumps(seed))  # JSON is YAML
    return path


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(tmp_path):
    seed_file = _seed_file(tmp_path)
    with running_sandbox(tmp_path, "--seed-file", str(seed_file), "--otp", OTP, workers=1) as server:
        report = run_schemathesis(server.base)
        with urllib.request.urlopen(server.base + "/_mock/webhooks", timeout=10) as answer:
            webhooks = json.load(answer)["webhooks"]
    print(f"\n{report.summary()}")
    log = server.log.read_text()
    assert "Traceback" not in log and " ERROR " not in log, "the sandbox logged an error:\n" + log[-3000:]
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "schemathesis.json").write_text(json.dumps({
        "schemathesis": schemathesis.__version__, "seed": SEED, "max_examples": MAX_EXAMPLES,
        "seconds": round(report.seconds, 1), "cases": dict(report.cases), "checks": dict(report.checks),
        "failures": report.failures, "errors": report.errors,
        "statuses": {label: dict(sorted(counts.items())) for label, counts in sorted(report.statuses.items())},
    }, indent=2))

    assert report.errors == []
    assert report.failures == [], "\n".join(report.failures)
    expected = {f"{method} {path}" for (method, path), operation_id in
                documented_operations(openapi.document()).items() if operation_id not in EXCLUDED}
    assert set(report.statuses) == expected, "every operation but the excluded ones was called"
    assert set(report.checks) == {"not_a_server_error", "response_schema_conformance", "content_type_conformance"}
    # The examples reach real answers, not only errors: requests created, documents uploaded and signed.
    successes = {label for label, counts in report.statuses.items() if any(200 <= s < 300 for s in counts)}
    assert {"POST /api/v1/request", "POST /api/v1/document/{pk}", "POST /api/v1/sign/{pk}",
            "GET /api/v1/document/{pk}/{type}/{uid}", "POST /oneshot/api/v1/document/{request_pk}"} <= successes
    assert all(w["target"].startswith("http://127.0.0.1:") for w in webhooks), "no webhook left the machine"
