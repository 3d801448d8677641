"""A namespace's whole state moved as one archive: GET/PUT /_mock/state, oneshot-mock export/import."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers import blank_pdf, oneshot_mock, picture, running_sandbox
from tests.test_persistence import Http

SCENARIO = {"name": "carried-scenario", "rules": [{"match": {"operation": "version"},
                                                    "then": {"respond": {"status": 503, "details": "x"}}}]}


class Namespaced(Http):
    """Calls in one namespace (the header for the API families, the query for the control API)."""

    def __init__(self, session: aiohttp.ClientSession, base: str, namespace: str) -> None:
        super().__init__(session, base)
        self.namespace = namespace

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        headers = {**kwargs.pop("headers", {}), "X-Mock-Namespace": self.namespace}
        return await super().call(method, path, headers=headers, **kwargs)


async def make_a_case(http: Http) -> dict[str, Any]:
    """A signed request, one waiting with its SMS, an image and a scenario; what a client saw of them."""
    signed_pk = await http.create("Carried")
    uid = await http.upload(signed_pk, blank_pdf(3))
    status, body = await http.call("POST", f"/api/v1/sign/{signed_pk}", json={"secret": await http.otp(signed_pk)})
    assert status == 200, body
    waiting_pk = await http.create("Waiting")
    await http.otp(waiting_pk)
    form = aiohttp.FormData()
    form.add_field("image", picture(), filename="stamp.png", content_type="image/png")
    assert (await http.call("POST", "/api/v1/image", data=form))[0] == 200
    assert (await http.call("POST", "/_mock/scenarios", json=SCENARIO))[0] == 201
    return await seen(http, signed_pk, uid, waiting_pk)


async def seen(http: Http, signed_pk: int, uid: str, waiting_pk: int) -> dict[str, Any]:
    _, signed = await http.call("GET", f"/api/v1/document/{signed_pk}/signed/{uid}")
    _, contract = await http.call("GET", f"/api/v1/document/{signed_pk}/contract")
    _, detail = await http.call("GET", f"/_mock/requests/{signed_pk}")
    _, waiting = await http.call("GET", f"/_mock/requests/{waiting_pk}")
    _, sms = await http.call("GET", "/_mock/sms")
    _, images = await http.call("GET", "/api/v1/images")
    _, scenarios = await http.call("GET", "/_mock/scenarios")
    return {"pks": (signed_pk, uid, waiting_pk), "signed": signed, "contract": contract,
            "history": [(c["status"], c["previous_status"]) for c in detail["history"]],
            "status": (detail["status"], waiting["status"]), "sms": sms["messages"], "images": images["details"],
            "scenarios": sorted(s["name"] for s in scenarios["scenarios"])}


async def test_a_namespace_moves_to_another_sandbox_whole(tmp_path):
    data = tmp_path / "data"
    async with aiohttp.ClientSession() as session:
        with running_sandbox(tmp_path) as source:
            case = await make_a_case(Namespaced(session, source.base, "qa"))
            async with session.get(source.base + "/_mock/state", params={"namespace": "qa"}) as answer:
                assert answer.status == 200 and answer.content_type == "application/zip"
                assert 'filename="oneshot-mock-qa.zip"' in answer.headers["Content-Disposition"]
                archive = await answer.read()
        with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
            state = json.loads(zipped.read("state.json"))
        assert (state["format"], state["schema"], state["namespace"]) == ("oneshot-mock-state", 2, "qa")
        assert len(state["tables"]["requests"]) == 2
        with running_sandbox(tmp_path, "--data-dir", str(data)) as target:
            async with session.put(target.base + "/_mock/state", params={"namespace": "dev"}, data=archive) as answer:
                assert answer.status == 200, await answer.text()
                assert await answer.json() == {"status": "imported", "namespace": "dev", "from_namespace": "qa",
                                               "requests": 2}
            dev = Namespaced(session, target.base, "dev")
            assert await seen(dev, *case["pks"]) == case
            _, default = await Http(session, target.base).call("GET", "/_mock/requests")
            assert default["requests"] == [], "the other namespaces are left alone"
            target.kill()
        with running_sandbox(tmp_path, "--data-dir", str(data)) as target:
            assert await seen(Namespaced(session, target.base, "dev"), *case["pks"]) == case, "saved as imported"


def archive_with(tables_change: dict[str, Any] | None = None, **state_change: Any) -> bytes:
    """A small archive of an empty namespace, changed."""
    state = {"format": "oneshot-mock-state", "schema": 2, "namespace": "x", "tables": {
        "namespaces": [{"next_pk": 10_000, "clock_offset_s": 0.0, "rng": "3:None:" + "A" * 3336,
                        "settings": "{}", "scenarios": "{}"}],
        **(tables_change or {})}, **state_change}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zipped:
        zipped.writestr("state.json", json.dumps(state))
    return out.getvalue()


async def test_a_bad_archive_is_refused_and_changes_nothing(tmp_path):
    bad_request = {"pk": 1, "status": "ISSUED", "created_at": "2026-01-01T00:00:00+00:00", "profile": "P",
                   "identity": "{}", "request": "{}"}
    cases = [
        (b"not a zip", "not a zip archive"),
        (archive_with(schema=1), "data schema 1"),
        (archive_with(format="other"), "is not a oneshot-mock-state file"),
        (archive_with({"requests": [{"pk": 1}]}), "must each have exactly the columns"),
        (archive_with({"secrets": []}), "unknown table 'secrets'"),
        (archive_with({"requests": [bad_request]}), "a row does not fit"),
    ]
    async with aiohttp.ClientSession() as session:
        with running_sandbox(tmp_path) as server:
            http = Http(session, server.base)
            pk = await http.create("Stays")
            for body, message in cases:
                async with session.put(server.base + "/_mock/state", data=body) as answer:
                    assert answer.status == 400, (message, await answer.text())
                    assert message in (await answer.json())["error"]
                _, listed = await http.call("GET", "/_mock/requests")
                assert [r["pk"] for r in listed["requests"]] == [pk], message
                assert (await http.call("GET", f"/api/v1/request/{pk}"))[0] == 200


async def test_export_and_import_on_the_command_line(tmp_path):
    first, second, file = tmp_path / "first", tmp_path / "second", tmp_path / "case.zip"
    async with aiohttp.ClientSession() as session:
        with running_sandbox(tmp_path, "--data-dir", str(first)) as server:
            case = await make_a_case(Http(session, server.base))
        exported = oneshot_mock("export", "--data-dir", str(first), str(file))
        assert exported.returncode == 0, exported.stderr
        assert exported.stdout.strip() == f"2 request(s) of namespace '(default)' written to {file}"
        second.mkdir()
        imported = oneshot_mock("import", "--data-dir", str(second), "--namespace", "copy", str(file))
        assert imported.returncode == 0, imported.stderr
        assert imported.stdout.strip() == f"2 request(s) imported into namespace 'copy' of {second}"
        with running_sandbox(tmp_path, "--data-dir", str(second)) as server:
            assert await seen(Namespaced(session, server.base, "copy"), *case["pks"]) == case


def test_the_command_line_says_what_is_wrong(tmp_path):
    (tmp_path / "junk.zip").write_bytes(b"junk")
    (tmp_path / "empty").mkdir()
    for args, message in [
        (("export", "--data-dir", str(tmp_path / "missing"), str(tmp_path / "out.zip")), "not a data dir"),
        (("import", "--data-dir", str(tmp_path / "empty"), str(tmp_path / "junk.zip")), "not a zip archive"),
        (("import", "--data-dir", str(tmp_path / "empty"), str(tmp_path / "absent.zip")), "No such file"),
        (("export", "--data-dir", str(tmp_path / "empty"), "--namespace", "bad name!", str(tmp_path / "o.zip")),
         "invalid X-Mock-Namespace"),
    ]:
        done = oneshot_mock(*args)
        assert done.returncode == 2 and message in done.stderr, (args, done.stderr)
        assert done.stderr.count("\n") == 1, done.stderr  # one line
        assert "Traceback" not in done.stderr
    assert not Path(tmp_path / "out.zip").exists()


def documented_commands() -> str:
    """The shell block of the persistence page's section on moving a namespace, its ``H`` left to the caller."""
    page = (Path(__file__).resolve().parents[1] / "docs" / "persistence.md").read_text(encoding="utf-8")
    section = page.split("## Moving a namespace: export and import\n", 1)[1]
    block = section.split("```sh runnable\n", 1)[1].split("```", 1)[0]
    return "\n".join(line for line in block.splitlines() if not line.startswith("H="))


async def test_the_documented_curl_commands_move_a_namespace(tmp_path):
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    async with aiohttp.ClientSession() as session:
        with running_sandbox(tmp_path) as server:
            case = await make_a_case(Namespaced(session, server.base, "qa"))
            commands = f"H={server.base}\n" + documented_commands()
            done = subprocess.run(["bash", "-euc", commands], cwd=tmp_path, capture_output=True, text=True,
                                  timeout=60)
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout)["requests"] == 2, done.stdout
            assert zipfile.is_zipfile(tmp_path / "case.zip")
            assert await seen(Namespaced(session, server.base, "dev"), *case["pks"]) == case
