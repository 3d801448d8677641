"""``oneshot-mock conformance`` and ``oneshot-mock proxy`` against a second sandbox as the target
and the upstream (no internet here): a plain one is the same at every step, one drifted by a
scenario differs in exactly what the scenario changed, and a recording made through the proxy
answers the recorded calls the same way from a fresh sandbox."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import free_port
from tests.helpers import DEFAULT_TOKEN, IDENTITY, blank_pdf, oneshot_mock, running_sandbox, serving

# A text, a key and a status: what a vendor's release could change under a client.
DRIFT = """\
name: drifted-vendor
rules:
  - match: {operation: hello}
    then: {respond: {status: 200, details: "Hello there"}}
  - match: {operation: list_images}
    then: {respond: {status: 200, details: {images: []}}}
  - match: {operation: delete_all_documents}
    when: {times: 1}
    then: {error: delete_all_documents.404.not_found}
"""


def steps(report: Path) -> list[dict[str, Any]]:
    return json.loads(report.read_text())["steps"]


@pytest.mark.parametrize("family", ["legacy", "new"])
def test_a_plain_sandbox_as_the_target_is_the_same_at_every_step(tmp_path, family):
    report = tmp_path / "report.json"
    with running_sandbox(tmp_path) as target:
        done = oneshot_mock("conformance", "--target", target.base, "--family", family, "--phone", "+34611222333",
                            "--report", str(report))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    step_lines = [line for line in lines if not line.startswith("report:")][:-1]
    assert step_lines and all(" same" in line for line in step_lines), done.stdout
    assert lines[-2] == f"all {len(step_lines)} steps the same", done.stdout
    found = steps(report)
    assert len(found) == len(step_lines) and {step["verdict"] for step in found} == {"same"}
    flows = {step["flow"] for step in found}
    assert flows == {"read-only", "classic", "hash", "async"}
    created = {step["flow"]: step for step in found if step["step"] == "create request"}
    assert set(created) == {"classic", "hash", "async"}
    if family == "legacy":  # the legacy status read shows the signer: each flow's own, with the phone given
        shown = {step["flow"]: step["target"]["body"]["details"] for step in found
                 if step["step"] == "status after create"}
        assert {flow: (d["given_name"], d["mobile_phone_number"]) for flow, d in shown.items()} == {
            "classic": ("José María", "+34611222333"), "hash": ("Zoë", "+34611222333"),
            "async": ("Łukasz Maximilian", "+34611222333")}
    signed = next(step for step in found if step["step"] == "signed document")
    assert signed["target"]["media_type"] == signed["sandbox"]["media_type"] == "application/pdf"
    page = report.with_suffix(".html").read_text()
    assert "0 step(s) differ" in page and "<table>" in page


def test_a_drifted_target_differs_in_exactly_the_three_changes(tmp_path):
    scenario = tmp_path / "drift.yaml"
    scenario.write_text(DRIFT)
    report = tmp_path / "report.json"
    with running_sandbox(tmp_path, "--scenario", str(scenario)) as target:
        done = oneshot_mock("conformance", "--target", target.base, "--report", str(report))
    assert done.returncode == 1, done.stdout + done.stderr
    differing = {(step["flow"], step["step"]): step["differences"] for step in steps(report)
                 if step["verdict"] == "differs"}
    assert differing == {
        ("read-only", "hello"): ["body.details: 'Hello there' on the target, 'Hello' in the sandbox"],
        ("read-only", "list images"): ["body.details: key 'images' only on the target"],
        ("classic", "delete documents"): ["HTTP 404 on the target, 200 in the sandbox"],
    }, done.stdout
    assert "3 of " in done.stdout.splitlines()[-2]
    assert sum("differs: " in line for line in done.stdout.splitlines()) == 3


def test_a_target_that_does_not_answer_is_one_line_and_status_2():
    done = oneshot_mock("conformance", "--target", f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("oneshot-mock: http://127.0.0.1:") and "does not answer" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and done.stdout == "", done.stderr


def test_bad_options_are_one_line_and_status_2():
    for args, says in ((("--target", "127.0.0.1:8080"), "not an http(s) URL"),
                       (("--target", "http://127.0.0.1:1", "--rao", "user-only"), "give USER:PASS:PIN"),
                       (("--target", "http://127.0.0.1:1", "--token", "t", "--rao", "u:p:1"), "not allowed with")):
        done = oneshot_mock("conformance", *args)
        assert done.returncode == 2 and says in done.stderr, (args, done.stderr)


async def call(session: aiohttp.ClientSession, base: str, method: str, path: str,
               **kwargs: Any) -> tuple[int, str, bytes]:
    async with session.request(method, base + path, **kwargs) as answer:
        return answer.status, answer.content_type, await answer.read()


def client_calls(pk: int | None = None, uid: str | None = None, otp: str = "") -> list[tuple[str, str, Any]]:
    """A client's classic flow, the request read twice (so the same call answers two ways)."""
    form = aiohttp.FormData({**IDENTITY, "token": DEFAULT_TOKEN})
    upload = aiohttp.FormData()
    upload.add_field("file", blank_pdf(3), filename="doc.pdf", content_type="application/pdf")
    return [
        ("POST", "/api/v1/request", {"data": form}),
        ("GET", f"/api/v1/request/{pk}", {}),
        ("POST", f"/api/v1/document/{pk}", {"data": upload}),
        ("POST", f"/api/v1/otp/{pk}", {}),
        ("POST", f"/api/v1/sign/{pk}", {"json": {"secret": otp}}),
        ("GET", f"/api/v1/request/{pk}", {}),
        ("GET", f"/api/v1/document/{pk}/signed/{uid}", {}),
        ("GET", "/oneshot/api/v1/images", {}),
        ("DELETE", f"/api/v1/documents/{pk}", {}),
    ]


async def test_a_recording_made_through_the_proxy_answers_the_same_from_a_fresh_sandbox(tmp_path):
    recorded = tmp_path / "recorded"
    port = free_port()
    proxy_base = f"http://127.0.0.1:{port}"
    seen: list[tuple[int, str, bytes]] = []
    async with aiohttp.ClientSession() as session:
        with running_sandbox(tmp_path) as upstream:
            command = [sys.executable, "-m", "mock_server", "proxy", "--upstream", upstream.base, "--record",
                       str(recorded), "--port", str(port)]
            with serving(command, {}, proxy_base + "/_mock/health", tmp_path / "proxy.log"):
                pk, uid, otp = None, None, ""
                for index in range(len(client_calls())):
                    if index == 4:  # the sign call sends the code the SMS brought
                        _, _, outbox = await call(session, proxy_base, "GET", f"/_mock/sms?request={pk}")
                        otp = json.loads(outbox)["messages"][-1]["otp"]
                    method, path, kwargs = client_calls(pk, uid, otp)[index]
                    answer = await call(session, proxy_base, method, path, **kwargs)
                    assert answer[0] < 300, (path, answer)
                    if index == 0:
                        pk = json.loads(answer[2])["details"]
                    if index == 2:
                        uid = json.loads(answer[2])["details"]
                    seen.append(answer)
        assert seen[6][1] == "application/pdf" and seen[6][2].startswith(b"%PDF")
        assert json.loads(seen[1][2]) != json.loads(seen[5][2]), "the request changed between its two reads"

        with running_sandbox(tmp_path, "--scenario", str(recorded / "recording.yaml")) as fresh:
            replayed = [await call(session, fresh.base, method, path, **kwargs)
                        for method, path, kwargs in client_calls(pk, uid, otp)]
    for (status, media, body), (again, again_media, again_body) in zip(seen, replayed, strict=True):
        assert (again, again_media) == (status, media)
        if media == "application/json":
            assert json.loads(again_body) == json.loads(body)
        else:
            assert again_body == body

    har = json.loads((recorded / "session.har").read_text())["log"]
    assert har["version"] == "1.2" and len(har["entries"]) == len(seen), "the control API's calls are not recorded"
    create = har["entries"][0]["request"]
    assert json.loads(create["postData"]["text"])["token"] == "[redacted]"
    assert DEFAULT_TOKEN not in (recorded / "session.har").read_text()
    assert DEFAULT_TOKEN not in (recorded / "recording.yaml").read_text()
