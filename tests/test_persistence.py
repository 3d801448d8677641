"""--data-dir: state survives restarts and kill -9; nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import os
import random
import signal
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from mock_server.api.keys import TENANTS
from mock_server.bench.inputs import Draws
from mock_server.domain import tenancy
from mock_server.storage.rows import Blobs, RowBuilder, Written
from tests.conftest import free_port
from tests.helpers import (
    DEFAULT_TOKEN,
    IDENTITY,
    RunningSandbox,
    blank_pdf,
    eventually,
    oneshot_mock,
    picture,
    running_sandbox,
    validate,
)
from tests.test_videoid import CONTACT

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


class Http:
    """Plain JSON calls against a running sandbox."""

    def __init__(self, session: aiohttp.ClientSession, base: str, server: RunningSandbox | None = None) -> None:
        self.session, self.base, self.server = session, base, server

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with self.session.request(method, self.base + path, **kwargs) as response:
            raw = await response.read()
            return response.status, json.loads(raw) if response.content_type == "application/json" else raw

    async def create(self, given: str, **extra: Any) -> int:
        form = aiohttp.FormData({**IDENTITY, "token": DEFAULT_TOKEN, "given_name": given, **extra})
        status, body = await self.call("POST", "/api/v1/request", data=form)
        assert status == 201, body
        return body["details"]

    async def upload(self, pk: int, pdf: bytes) -> str:
        form = aiohttp.FormData()
        form.add_field("file", pdf, filename="kept.pdf", content_type="application/pdf")
        status, body = await self.call("POST", f"/api/v1/document/{pk}", data=form)
        assert status == 200, body
        return body["details"]

    async def otp(self, pk: int) -> str:
        status, body = await self.call("POST", f"/api/v1/otp/{pk}")
        assert status == 200, body
        _, outbox = await self.call("GET", "/_mock/sms", params={"request": str(pk)})
        return outbox["messages"][-1]["otp"]


@contextlib.contextmanager
def on_data_dir(session: aiohttp.ClientSession, tmp_path: Path, data: Path,
                *args: str) -> Iterator[Http]:
    """Plain JSON calls to a sandbox started on the data dir ``data`` (each use a restart)."""
    with running_sandbox(tmp_path, "--data-dir", str(data), *args) as server:
        yield Http(session, server.base, server)


async def test_restart_brings_everything_back(tmp_path, start_receiver):
    data = tmp_path / "data"
    dead_port = free_port()
    async with aiohttp.ClientSession() as session:
        with on_data_dir(session, tmp_path, data) as http:
            signed_pk = await http.create("Kept")
            pdf = blank_pdf(2)
            uid = await http.upload(signed_pk, pdf)
            secret = await http.otp(signed_pk)
            status, body = await http.call("POST", f"/api/v1/sign/{signed_pk}", json={"secret": secret})
            assert status == 200, body
            _, signed_before = await http.call("GET", f"/api/v1/document/{signed_pk}/signed/{uid}")

            waiting_pk = await http.create("Waiting")
            otp = await http.otp(waiting_pk)
            form = aiohttp.FormData()
            form.add_field("image", picture(), filename="stamp.png", content_type="image/png")
            status, image = await http.call("POST", "/api/v1/image", data=form)
            assert status == 200, image
            scenario = {"name": "kept-scenario", "rules": [{"match": {"operation": "version"},
                                                            "then": {"respond": {"status": 503, "details": "x"}}}]}
            assert (await http.call("POST", "/_mock/scenarios", json=scenario))[0] == 201
            assert (await http.call("POST", "/_mock/clock", json={"advance_s": -3600}))[0] == 200
            form = aiohttp.FormData({**IDENTITY, "token": DEFAULT_TOKEN, "given_name": "Elsewhere"})
            status, body = await http.call("POST", "/api/v1/request", data=form, headers={"X-Mock-Namespace": "w1"})
            assert status == 201, body
            namespaced = body["details"]
            # An asynchronous request whose callback never answers: its webhook stays pending.
            form = aiohttp.FormData({**IDENTITY, "token": DEFAULT_TOKEN, "given_name": "Hooked", "async": "true",
                                     "callback": f"http://127.0.0.1:{dead_port}/hook"})
            status, body = await http.call("POST", "/api/v1/request", data=form)
            assert status == 201, body
            hooked = body["details"]
            _, before = await http.call("GET", "/_mock/webhooks", params={"request": str(hooked)})
            _, sms_before = await http.call("GET", "/_mock/sms")
            workers = children(http.server.process.pid)
            assert workers, "signing runs in worker processes"
            http.server.kill()
            await until_gone(workers)

        with on_data_dir(session, tmp_path, data) as http:
            status, detail = await http.call("GET", f"/api/v1/request/{signed_pk}")
            assert status == 200 and detail["details"]["status"] == "ISSUED", detail
            status, original = await http.call("GET", f"/api/v1/document/{signed_pk}/original/{uid}")
            assert status == 200 and original == pdf
            status, signed_after = await http.call("GET", f"/api/v1/document/{signed_pk}/signed/{uid}")
            assert status == 200 and signed_after == signed_before
            document = await validate(signed_after)
            assert document.bottom_line
            # The contract was never fetched before the kill: it is signed now, under the same certificate.
            status, contract_pdf = await http.call("GET", f"/api/v1/document/{signed_pk}/contract")
            contract = await validate(contract_pdf)
            assert status == 200 and contract.bottom_line
            assert contract.signing_cert.dump() == document.signing_cert.dump()

            uid2 = await http.upload(waiting_pk, blank_pdf())
            status, body = await http.call("POST", f"/api/v1/sign/{waiting_pk}", json={"secret": otp})
            assert status == 200, body  # the OTP sent before the restart still signs
            _, signed_later = await http.call("GET", f"/api/v1/document/{waiting_pk}/signed/{uid2}")
            assert (await validate(signed_later)).bottom_line

            status, listed = await http.call("GET", f"/api/v1/image/{image['details']}")
            assert status == 200, listed
            _, sms_after = await http.call("GET", "/_mock/sms")
            assert sms_after["messages"][: len(sms_before["messages"])] == sms_before["messages"]
            _, scenarios = await http.call("GET", "/_mock/scenarios")
            assert "kept-scenario" in {s["name"] for s in scenarios["scenarios"]}
            assert (await http.call("GET", "/api/v1/version"))[0] == 503
            _, clock = await http.call("GET", "/_mock/clock")
            assert clock["offset_s"] < -3500
            status, body = await http.call("GET", f"/api/v1/request/{namespaced}", headers={"X-Mock-Namespace": "w1"})
            assert status == 200, body
            assert (await http.call("GET", f"/api/v1/request/{namespaced}"))[0] == 404

            pending = before["webhooks"]
            assert pending and {e["state"] for e in pending} == {"pending"}, pending
            receiver = await start_receiver(dead_port)
            await http.call("POST", "/_mock/webhooks/flush")
            delivered = await receiver.wait_for(len(pending))
            assert [d.id for d in delivered] == [e["id"] for e in pending], "pending deliveries resumed in order"


def children(pid: int) -> set[int]:
    """The processes ``pid`` started (Linux /proc)."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(child) for child in (task / "children").read_text().split())
    return found


async def until_gone(pids: set[int], timeout: float = 10.0) -> None:
    """Wait for ``pids`` to exit: a killed sandbox must not leave its signing workers behind."""
    for _ in range(int(timeout * 10)):
        if not any(Path(f"/proc/{pid}").exists() for pid in pids):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"worker processes outlived the killed sandbox: {sorted(pids)}")


def test_newer_data_dir_is_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with sqlite3.connect(data / "state.sqlite3") as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("INSERT INTO meta VALUES ('schema_version', '99')")
    done = oneshot_mock("serve", "--port", str(free_port()), "--data-dir", str(data))
    assert done.returncode != 0
    assert "newer oneshot-mock (data schema 99)" in done.stderr


# The schema -------------------------------------------------------------------------------------------------

TABLES = {"meta", "blobs", "namespaces", "requests", "status_history", "documents", "sms", "otp_codes",
          "webhook_events", "webhook_attempts", "certificates", "signings", "tokens", "raos", "images", "metadata"}
# Columns that hold JSON (the rest are plain values).
JSON_COLUMNS = {"settings", "scenarios", "identity", "request", "document", "message", "otp", "event",
                "attempt", "certificate", "signing", "item"}


async def signed_flow(http: Http, given: str) -> tuple[int, str]:
    pk = await http.create(given)
    uid = await http.upload(pk, blank_pdf(2))
    status, body = await http.call("POST", f"/api/v1/sign/{pk}", json={"secret": await http.otp(pk)})
    assert status == 200, body
    return pk, uid


async def test_the_data_dir_is_tables_of_plain_columns_and_json(tmp_path):
    data = tmp_path / "data"
    async with aiohttp.ClientSession() as session:
        with on_data_dir(session, tmp_path, data) as http:
            pk, uid = await signed_flow(http, "Tabled")
            form = aiohttp.FormData()
            form.add_field("image", picture(), filename="stamp.png", content_type="image/png")
            assert (await http.call("POST", "/api/v1/image", data=form))[0] == 200
    with contextlib.closing(sqlite3.connect(data / "state.sqlite3")) as db:
        db.row_factory = sqlite3.Row
        assert {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} == TABLES
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "2"
        request = db.execute("SELECT * FROM requests WHERE pk = ?", (pk,)).fetchone()
        assert request["status"] == "ISSUED"
        assert json.loads(request["identity"])["given_name"] == "Tabled"
        history = [row["status"] for row in db.execute("SELECT status FROM status_history WHERE pk = ? ORDER BY seq",
                                                       (pk,))]
        assert history == ["CREATED", "ENROLLREADY", "ISSUED"]
        document = json.loads(db.execute("SELECT document FROM documents WHERE pk = ? AND uid = ?",
                                         (pk, uid)).fetchone()[0])
        # Bytes from 1 KiB up are content-addressed blobs; a small upload stays inline, in base64.
        assert document["signed"].startswith("blob:")
        digest = document["signed"].removeprefix("blob:")
        blob = db.execute("SELECT size, data FROM blobs WHERE sha256 = ?", (digest,)).fetchone()
        assert blob["data"].startswith(b"%PDF") and blob["size"] == len(blob["data"])
        assert hashlib.sha256(blob["data"]).hexdigest() == digest
        assert base64.b64decode(document["data"]).startswith(b"%PDF")
        assert db.execute("SELECT count(*) FROM images").fetchone()[0] == 1
        assert db.execute("SELECT count(*) FROM certificates WHERE pk = ?", (pk,)).fetchone()[0] == 1
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            for row in db.execute(f"SELECT * FROM {table}"):
                for column in row.keys():
                    if (table, column) != ("blobs", "data"):
                        assert not isinstance(row[column], bytes), f"{table}.{column} holds raw bytes"
                    if column in JSON_COLUMNS:
                        json.loads(row[column])


async def test_a_call_writes_the_rows_of_what_it_changed_only(tmp_path):
    data = tmp_path / "data"
    async with aiohttp.ClientSession() as session:
        with on_data_dir(session, tmp_path, data) as http:
            earlier = [(await signed_flow(http, f"Earlier{index}"))[0] for index in range(12)]
            waiting = await http.create("Waiting")
            with contextlib.closing(sqlite3.connect(data / "state.sqlite3")) as db:
                # Every row the server writes from now on, as the database sees it.
                db.execute("CREATE TABLE audit (tab TEXT, pk INTEGER)")
                for table, label in (("requests", "requests"), ("documents", "documents"),
                                     ("status_history", "history")):
                    db.execute(f"CREATE TRIGGER audit_{label} AFTER INSERT ON {table} "
                               f"BEGIN INSERT INTO audit VALUES ('{label}', NEW.pk); END")
            pk, _ = await signed_flow(http, "Latest")
            assert (await http.call("GET", f"/api/v1/request/{earlier[0]}"))[0] == 200
            assert (await http.call("GET", "/api/v1/hello"))[0] == 200
            assert (await http.call("POST", f"/api/v1/otp/{waiting}"))[0] == 200
            await asyncio.sleep(1.2)  # the background flush of what reads changed, if anything
            with contextlib.closing(sqlite3.connect(data / "state.sqlite3")) as db:
                written = db.execute("SELECT tab, pk FROM audit").fetchall()
    assert {row_pk for _, row_pk in written} == {pk}, "an OTP writes its SMS and code, not the request"
    # create: the request and two statuses; upload: the document; sign: the request, ISSUED, the
    # document with its signed bytes. An OTP writes its SMS and code only; reads write nothing.
    assert sorted(written) == sorted([("requests", pk)] * 2 + [("history", pk)] * 3 + [("documents", pk)] * 2), \
        "each step of the flow wrote the request and what it added, and nothing else"


@pytest.mark.parametrize("index", range(4))
async def test_a_request_encoded_again_in_one_flush_keeps_only_its_latest_rows(sandbox, index):
    """A flush serves other calls between the requests it encodes, and encodes again in a later round
    a request that changed meanwhile: that replaces all the flush had of it, so a document deleted
    in between is not written back, and the request is written once. Each case is a signed request
    (SMS, certificate, signed document) of a drawn signer and document."""
    draw = Draws(20261203).flow("encoded-again", index)
    pk = await sandbox.create_request(**draw.identity)
    await sandbox.upload_pdf(pk, draw.document.pdf)
    assert (await sandbox.sign(pk, {"secret": await sandbox.otp(pk)})).status == 200
    tenant = await sandbox.http.app[TENANTS].get(tenancy.DEFAULT)
    rows = RowBuilder(Written(), Blobs())
    rows.request(tenant, pk)
    assert (await sandbox.call("DELETE", f"/api/v1/documents/{pk}")).status == 200
    rows.request(tenant, pk)
    write, notes = rows.finish()
    assert "documents" not in write.upserts, "the deleted document's row was written back"
    assert [row[1] for row in write.upserts["requests"]] == [pk]
    assert {"status_history", "sms", "certificates"} <= set(write.upserts), "what the request keeps is encoded"
    assert len(notes) == sum(len(table_rows) for table_rows in write.upserts.values())


def test_a_pickled_data_dir_is_refused_with_the_way_out(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with contextlib.closing(sqlite3.connect(data / "state.sqlite3")) as db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("CREATE TABLE rows (namespace TEXT, kind TEXT, key TEXT, body BLOB)")
        db.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        db.execute("INSERT INTO rows VALUES ('', 'sandbox', 'next_pk', ?)", (b"\x80\x05K\x01.",))
        db.commit()
    done = oneshot_mock("serve", "--port", str(free_port()), "--data-dir", str(data))
    assert done.returncode != 0
    assert "data schema 1 (pickled rows" in done.stderr and "empty --data-dir" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


# kill -9 at random moments -----------------------------------------------------------------------------------


def check_history(history: list[dict[str, Any]]) -> None:
    """Each change starts where the previous one ended."""
    previous = None
    for change in history:
        assert change["previous_status"] == previous, history
        previous = change["status"]


async def test_a_redirecting_answer_is_stored_before_it_leaves(tmp_path):
    """The VideoID link page answers its form with a raised 303: that too waits for the commit."""
    data = tmp_path / "data"
    body = {**CONTACT, "registration_authority": "9999", "profile": "PFnubeQAFCiudadano", "env": "sandbox"}
    async with aiohttp.ClientSession() as session:
        with on_data_dir(session, tmp_path, data) as http:
            status, created = await http.call("POST", "/api/v1/videoid", json=body)
            assert status == 200, created
            link = URL(created["details"]["videoid_link"]).path
            status, _ = await http.call("POST", f"{link}/complete", allow_redirects=False)
            assert status == 303
            http.server.kill()  # at once: no background flush gets a chance
        with running_sandbox(tmp_path, "--data-dir", str(data)) as server:
            status, detail = await Http(session, server.base).call(
                "GET", f"/_mock/requests/{created['details']['request_pk']}")
            assert status == 200 and detail["status"] == "VIDEOREVIEW", detail


async def test_an_event_made_again_after_a_kill_keeps_its_webhook_id(tmp_path, start_receiver):
    """Killed as the ISSUED webhook of an asynchronous signing arrives (before the background flush
    saved the result), the sandbox signs the request again after the restart: the events it makes
    again carry the ids they had, so that the receiver can drop them as repeats."""
    receiver = await start_receiver()
    data = tmp_path / "data"
    async with aiohttp.ClientSession() as session:
        with on_data_dir(session, tmp_path, data) as http:
            issued = asyncio.Event()

            async def note_issued(delivery) -> None:
                if json.loads(delivery.body).get("status") == "ISSUED":
                    issued.set()

            receiver.on_delivery = note_issued
            pk = await http.create("Hooked", useasync="true", callback=receiver.url)
            await http.upload(pk, blank_pdf())
            secret = await http.otp(pk)
            status, body = await http.call("POST", f"/api/v1/sign/{pk}", json={"secret": secret})
            assert status == 200, body
            await asyncio.wait_for(issued.wait(), 30)
            http.server.kill()
        receiver.on_delivery = None
        with on_data_dir(session, tmp_path, data) as http:

            async def all_delivered() -> bool:
                _, body = await http.call("GET", f"/_mock/webhooks?request={pk}")
                return bool(body["webhooks"]) and all(e["state"] == "delivered" for e in body["webhooks"])

            await eventually(all_delivered, f"the webhooks of request {pk} delivered")
    ids: dict[str, set[str]] = {}
    for delivery in receiver.deliveries:
        ids.setdefault(json.loads(delivery.body)["status"], set()).add(delivery.headers["webhook-id"])
    assert "ISSUED" in ids, ids
    assert all(len(found) == 1 for found in ids.values()), ids


async def test_a_body_nested_too_deep_fails_alone_and_later_writes_go_on(tmp_path):
    nested: dict[str, Any] = {}
    for _ in range(500):
        nested = {"level": nested}
    data = tmp_path / "data"
    async with aiohttp.ClientSession() as session:
        with on_data_dir(session, tmp_path, data) as http:
            for path in ("/api/v1/settings", "/oneshot/api/v1/settings"):
                status, body = await http.call("POST", path, json={"general": nested})
                assert status == 400 and body["status"] in ("Invalid JSON", "error"), body  # each family's envelope
            pk = await http.create("After")
            status, settings = await http.call("GET", "/api/v1/settings")
            assert status == 200 and "level" not in json.dumps(settings), settings
        with running_sandbox(tmp_path, "--data-dir", str(data)) as server:
            status, _ = await Http(session, server.base).call("GET", f"/api/v1/request/{pk}")
    assert status == 200


async def test_the_contract_signed_on_its_first_fetch_survives_a_kill_right_after(tmp_path):
    data = tmp_path / "data"
    async with aiohttp.ClientSession() as session:
        with on_data_dir(session, tmp_path, data) as http:
            pk = await http.create("Contract")
            await http.upload(pk, blank_pdf())
            status, body = await http.call("POST", f"/api/v1/sign/{pk}", json={"secret": await http.otp(pk)})
            assert status == 200, body
            status, fetched = await http.call("GET", f"/api/v1/document/{pk}/contract")
            assert status == 200 and fetched.startswith(b"%PDF"), fetched[:100]
            http.server.kill()
        with running_sandbox(tmp_path, "--data-dir", str(data)) as server:
            status, again = await Http(session, server.base).call("GET", f"/api/v1/document/{pk}/contract")
    assert status == 200
    assert hashlib.sha256(again).hexdigest() == hashlib.sha256(fetched).hexdigest()


async def test_an_asynchronous_signature_seen_before_a_kill_is_the_one_after_it(tmp_path, start_receiver):
    """The result of a background signing is saved before it shows: a signed PDF downloaded as the
    ISSUED webhook arrives, the sandbox killed at once (whether or not the sign call had its answer
    yet), is the very one the restarted sandbox serves."""
    receiver = await start_receiver()
    data = tmp_path / "data"
    async with aiohttp.ClientSession() as session:
        with on_data_dir(session, tmp_path, data) as http:
            pk = await http.create("Async", useasync="true", callback=receiver.url)
            uid = await http.upload(pk, blank_pdf())
            seen: dict[str, bytes] = {}
            killed = asyncio.Event()

            async def download_then_kill(delivery) -> None:
                if json.loads(delivery.body).get("status") == "ISSUED" and not seen:
                    status, pdf = await http.call("GET", f"/api/v1/document/{pk}/signed/{uid}")
                    assert status == 200, pdf
                    seen["pdf"] = pdf
                    http.server.process.send_signal(signal.SIGKILL)
                    killed.set()

            receiver.on_delivery = download_then_kill
            with contextlib.suppress(aiohttp.ServerDisconnectedError):
                status, body = await http.call("POST", f"/api/v1/sign/{pk}", json={"secret": await http.otp(pk)})
                assert status == 200, body
            await asyncio.wait_for(killed.wait(), 60)
            http.server.process.wait()
        receiver.on_delivery = None
        with running_sandbox(tmp_path, "--data-dir", str(data)) as server:
            # At once: the result was saved before it showed, so the restarted sandbox applies it
            # before it answers anyone, rather than after a moment in which it looked unsigned.
            status, after = await Http(session, server.base).call("GET", f"/api/v1/document/{pk}/signed/{uid}")
    assert status == 200, after
    assert hashlib.sha256(after).hexdigest() == hashlib.sha256(seen["pdf"]).hexdigest()


async def test_a_receiver_only_hears_of_what_is_saved(tmp_path, start_receiver):
    """A synchronous sign's ISSUED event is made before the sign call's own commit: it leaves only
    once that state is saved, so a kill as it arrives finds the request ISSUED after the restart."""
    receiver = await start_receiver()
    data = tmp_path / "data"
    async with aiohttp.ClientSession() as session:
        with on_data_dir(session, tmp_path, data, "--ra-webhook", f"9999={receiver.url}") as http:
            killed = asyncio.Event()

            async def kill_on_issued(delivery) -> None:
                if json.loads(delivery.body).get("status") == "ISSUED":
                    http.server.process.send_signal(signal.SIGKILL)
                    killed.set()

            receiver.on_delivery = kill_on_issued
            pk = await http.create("Heard")
            await http.upload(pk, blank_pdf())
            with contextlib.suppress(aiohttp.ServerDisconnectedError):
                await http.call("POST", f"/api/v1/sign/{pk}", json={"secret": await http.otp(pk)})
            await asyncio.wait_for(killed.wait(), 60)
            http.server.process.wait()
        receiver.on_delivery = None
        with running_sandbox(tmp_path, "--data-dir", str(data)) as server:
            status, body = await Http(session, server.base).call("GET", f"/api/v1/request/{pk}")
    assert status == 200 and body["details"]["status"] == "ISSUED", body


async def shown_then_killed(http: Http, path: str, shown) -> Any:
    """Poll ``path`` until ``shown(body)`` holds, kill -9 the sandbox at once, and return that body."""
    for _ in range(2000):
        status, body = await http.call("GET", path)
        assert status == 200, body
        if shown(body):
            http.server.kill()
            return body
        await asyncio.sleep(0.002)
    raise AssertionError(f"{path} never showed what was awaited: {body}")


async def test_a_webhook_attempt_shown_in_the_log_survives_a_kill_right_after(tmp_path, start_receiver):
    """An attempt (made in the background) is in the data dir before the log shows it: the
    restarted sandbox lists the very attempt seen, not a second delivery made after the restart."""
    receiver = await start_receiver()
    data = tmp_path / "data"
    async with aiohttp.ClientSession() as session:
        with on_data_dir(session, tmp_path, data, "--ra-webhook", f"9999={receiver.url}") as http:
            pk = await http.create("Logged")
            seen = await shown_then_killed(http, f"/_mock/webhooks?request={pk}",
                                           lambda body: body["webhooks"] and all(
                                               event["state"] == "delivered" for event in body["webhooks"]))
        with running_sandbox(tmp_path, "--data-dir", str(data)) as server:
            _, after = await Http(session, server.base).call("GET", f"/_mock/webhooks?request={pk}")
    after_by_id = {event["id"]: event for event in after["webhooks"]}
    delivered = [event for event in seen["webhooks"] if event["state"] == "delivered"]
    for event in delivered:
        assert after_by_id[event["id"]] == event, "the attempt seen was lost: the event was delivered again"
    ids = [delivery.headers["webhook-id"] for delivery in receiver.deliveries]
    assert all(ids.count(event["id"]) == 1 for event in delivered), ids


async def test_a_videoid_completed_in_the_background_survives_a_kill_right_after(tmp_path):
    """The automatic end of an eIDAS identification is saved before any read shows it."""
    data = tmp_path / "data"
    body = {**CONTACT, "registration_authority": "9999", "profile": "PFnubeQAFCiudadano", "env": "sandbox"}
    async with aiohttp.ClientSession() as session:
        with on_data_dir(session, tmp_path, data, "--videoid-auto-complete", "0.2") as http:
            status, created = await http.call("POST", "/api/v1/videoid", json=body)
            assert status == 200, created
            pk = created["details"]["request_pk"]
            seen = await shown_then_killed(http, f"/api/v1/request/{pk}",
                                           lambda body: body["details"]["status"] != "VIDEOPENDING")
        with running_sandbox(tmp_path, "--data-dir", str(data)) as server:
            _, after = await Http(session, server.base).call("GET", f"/api/v1/request/{pk}")
    assert after == seen


async def test_a_read_while_a_commit_is_under_way_waits_for_it(tmp_path):
    """Another process holds the database's write lock, so the create's commit cannot finish: a
    listing made meanwhile is not answered with the request the create has not yet acknowledged."""
    data = tmp_path / "data"
    async with aiohttp.ClientSession() as session:
        with on_data_dir(session, tmp_path, data) as http:
            _, before = await http.call("GET", "/_mock/requests")
            blocker = sqlite3.connect(data / "state.sqlite3", isolation_level=None)
            blocker.execute("BEGIN IMMEDIATE")
            create = asyncio.ensure_future(http.create("Unsaved"))
            await asyncio.sleep(0.3)
            with contextlib.suppress(TimeoutError):
                status, listed = await asyncio.wait_for(http.call("GET", "/_mock/requests"), 1.0)
                assert status == 200, listed
                shown = {summary["pk"] for summary in listed["requests"]}
                assert shown == {summary["pk"] for summary in before["requests"]}, "an unsaved request was shown"
            http.server.kill()
            blocker.execute("ROLLBACK")
            blocker.close()
            with contextlib.suppress(aiohttp.ClientError, AssertionError):
                await create


# The acceptance run: kill -9 at random through both families, sync and async ---------------------------------


@dataclass
class Seen:
    """What a client was answered 2xx about one request: sha256 of each byte string it downloaded."""

    family: str
    given_name: str
    documents: dict[str, str] = field(default_factory=dict)  # uid -> sha256 of the uploaded bytes
    signed: dict[str, str] = field(default_factory=dict)  # uid -> sha256 of the signed PDF downloaded
    contract: str | None = None
    issued: bool = False


class Flows:
    """Classic flows of one family until the server dies: legacy sync, legacy async, newer sync.

    Every flow signs as a signer of its own with a document of its own, drawn as the benchmark
    draws them (names of seven locales up to the longest common name, four documents, one-off copies).
    """

    def __init__(self, http: Http, seen: dict[int, Seen], callback: str, draws: Draws,
                 indexes: Iterator[int]) -> None:
        self.http, self.seen, self.callback = http, seen, callback
        self.draws, self.indexes = draws, indexes
        self.completed = 0

    async def run(self, kind: str) -> None:
        try:
            while True:
                draw = self.draws.flow(f"kill-{kind}", next(self.indexes))
                await (self._newer if kind == "newer" else self._legacy)(draw.identity, draw.document.pdf, kind)
                self.completed += 1
        except (TimeoutError, aiohttp.ClientError, ConnectionError):
            return

    async def _legacy(self, identity: dict[str, str], pdf: bytes, kind: str) -> None:
        extra = {"useasync": "true", "callback": self.callback} if kind == "async" else {}
        form = aiohttp.FormData({"token": DEFAULT_TOKEN, "env": "sandbox", **identity, **extra})
        status, body = await self.http.call("POST", "/api/v1/request", data=form)
        assert status == 201, body
        pk = body["details"]
        seen = self.seen[pk] = Seen(kind, identity["given_name"])
        uid = await self.http.upload(pk, pdf)
        seen.documents[uid] = hashlib.sha256(pdf).hexdigest()
        status, body = await self.http.call("POST", f"/api/v1/sign/{pk}", json={"secret": await self.http.otp(pk)})
        assert status == 200, body
        if kind == "async":
            while (await self.http.call("GET", f"/api/v1/async/status/{pk}"))[1]["details"] != "signed":
                await asyncio.sleep(0.05)
        seen.issued = True
        status, signed = await self.http.call("GET", f"/api/v1/document/{pk}/signed/{uid}")
        assert status == 200
        seen.signed[uid] = hashlib.sha256(signed).hexdigest()
        status, contract = await self.http.call("GET", f"/api/v1/document/{pk}/contract")
        assert status == 200
        seen.contract = hashlib.sha256(contract).hexdigest()

    async def _newer(self, identity: dict[str, str], pdf: bytes, kind: str) -> None:
        form = aiohttp.FormData({"token": DEFAULT_TOKEN, "env": "sandbox", **identity})
        status, body = await self.http.call("POST", "/oneshot/api/v1/create", data=form)
        assert status == 201, body
        pk = body["details"]["request_pk"]
        seen = self.seen[pk] = Seen(kind, identity["given_name"])
        form = aiohttp.FormData()
        form.add_field("file", pdf, filename="kept.pdf", content_type="application/pdf")
        status, body = await self.http.call("POST", f"/oneshot/api/v1/document/{pk}", data=form)
        assert status == 200, body
        uid = body["detail"]["uid"]
        seen.documents[uid] = hashlib.sha256(pdf).hexdigest()
        assert (await self.http.call("POST", f"/oneshot/api/v1/otp/{pk}"))[0] == 200
        _, outbox = await self.http.call("GET", "/_mock/sms", params={"request": str(pk)})
        status, body = await self.http.call("POST", f"/oneshot/api/v1/sign/{pk}",
                                            json={"secret": outbox["messages"][-1]["otp"]})
        assert status == 200, body
        seen.issued = True
        status, signed = await self.http.call("GET", f"/oneshot/api/v1/document/{pk}/{uid}",
                                              params={"document_type": "signed"})
        assert status == 200
        seen.signed[uid] = hashlib.sha256(signed).hexdigest()
        status, contract = await self.http.call("GET", f"/oneshot/api/v1/contract/{pk}")
        assert status == 200
        seen.contract = hashlib.sha256(contract).hexdigest()


async def check_seen(http: Http, seen: dict[int, Seen]) -> list[tuple[int, str]]:
    """What a restarted sandbox lost or changed of what clients were answered."""
    lost = []
    for pk, expected in seen.items():
        status, body = await http.call("GET", f"/_mock/requests/{pk}")
        if status != 200:
            lost.append((pk, "request"))
            continue
        check_history(body["history"])
        assert body["given_name"] == expected.given_name
        if expected.issued and body["status"] != "ISSUED":
            lost.append((pk, f"signature (status {body['status']})"))
        for uid, digest in expected.documents.items():
            status, original = await http.call("GET", f"/api/v1/document/{pk}/original/{uid}")
            if status != 200 or hashlib.sha256(original).hexdigest() != digest:
                lost.append((pk, f"document {uid}"))
        for uid, digest in expected.signed.items():
            status, signed = await http.call("GET", f"/api/v1/document/{pk}/signed/{uid}")
            if status != 200 or hashlib.sha256(signed).hexdigest() != digest:
                lost.append((pk, f"signed PDF {uid}"))
        if expected.contract is not None:
            status, contract = await http.call("GET", f"/api/v1/document/{pk}/contract")
            if status != 200 or hashlib.sha256(contract).hexdigest() != expected.contract:
                lost.append((pk, "contract"))
    return lost


@pytest.mark.slow
async def test_twenty_kills_lose_nothing_acknowledged_in_either_family(tmp_path, start_receiver):
    kills, clients = 20, 12
    kinds = ("sync", "async", "newer")
    rng = random.Random(20261202)
    receiver = await start_receiver()
    data = tmp_path / "data"
    # Every acknowledged request is checked afterwards: none may leave by retention.
    options = ("--data-dir", str(data), "--retain-requests", "none")
    seen: dict[int, Seen] = {}
    completed = 0
    draws, indexes = Draws(20261202), itertools.count()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        for _ in range(kills):
            with running_sandbox(tmp_path, *options, workers=2) as server:
                flows = Flows(Http(session, server.base), seen, receiver.url, draws, indexes)
                load = [asyncio.create_task(flows.run(kinds[index % 3])) for index in range(clients)]
                # Killed once a drawn number of flows is done, then at a drawn moment while the other
                # clients are mid-flow: a kill at a drawn time from the start found no flow done on
                # a slow machine (the signing workers' first signatures), and 20 kills saw 192 flows.
                enough = rng.randint(10, 16)  # 20 kills of 10 at least: the 200 flows the acceptance asks for

                async def done_enough(flows: Flows = flows, enough: int = enough) -> bool:
                    return flows.completed >= enough

                await eventually(done_enough, f"{enough} flows done before the kill", timeout=60)
                await asyncio.sleep(rng.uniform(0, 0.3))
                os.kill(server.process.pid, signal.SIGKILL)
                await asyncio.gather(*load)
                server.process.wait()
                completed += flows.completed
        with running_sandbox(tmp_path, *options, workers=2) as server:
            http = Http(session, server.base)
            lost = await check_seen(http, seen)
            assert not lost, lost[:5]
            # The webhooks still pending when the last sandbox died go out now; then every event a
            # receiver got, under however many deliveries, carries one id.
            async def delivered() -> bool:
                _, listed = await http.call("GET", "/_mock/webhooks")
                return all(event["state"] != "pending" for event in listed["webhooks"])

            await eventually(delivered, "the pending webhooks delivered", timeout=30)
            sample = [pk for pk, s in seen.items() if s.issued][:: max(1, len(seen) // 10)]
            for pk in sample:
                uid = next(iter(seen[pk].documents))
                status, signed = await http.call("GET", f"/api/v1/document/{pk}/signed/{uid}")
                assert status == 200 and (await validate(signed)).bottom_line, pk
    ids: dict[tuple[int, str], set[str]] = {}
    for delivery in receiver.deliveries:
        request = delivery.json["request"]
        pk = request["pk"] if isinstance(request, dict) else request
        ids.setdefault((pk, delivery.event), set()).add(delivery.id)
    figures = {"kills": kills, "clients": clients, "flows_completed": completed, "requests_acknowledged": len(seen),
               "by_kind": {kind: sum(s.family == kind for s in seen.values()) for kind in kinds},
               "webhook_deliveries": len(receiver.deliveries), "lost_or_changed": len(lost)}
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "crash-safety.json").write_text(json.dumps(figures, indent=2))
    print(f"\ncrash safety, both families: {figures}")
    assert {key: found for key, found in ids.items() if len(found) > 1} == {}, "an event delivered under two ids"
    assert completed >= 200, f"the load really ran: {figures}"


async def test_what_is_deleted_after_a_restart_stays_deleted(tmp_path):
    """Rows read back at start are known to the store: deleting them later deletes them on disk too."""
    data = tmp_path / "data"
    async with aiohttp.ClientSession() as session:
        with on_data_dir(session, tmp_path, data) as http:
            pk = await http.create("Restarted")
            kept, dropped = await http.upload(pk, blank_pdf(1)), await http.upload(pk, blank_pdf(2))
        with on_data_dir(session, tmp_path, data) as http:
            assert (await http.call("DELETE", f"/api/v1/document/{pk}/original/{dropped}"))[0] == 200
            http.server.kill()
        with running_sandbox(tmp_path, "--data-dir", str(data)) as server:
            _, listed = await Http(session, server.base).call("GET", f"/api/v1/documents/{pk}")
            assert list(listed["details"]) == [kept], listed


def stored_blobs(data: Path) -> set[str]:
    with contextlib.closing(sqlite3.connect(data / "state.sqlite3")) as db:
        return {digest for (digest,) in db.execute("SELECT sha256 FROM blobs")}


async def test_the_bytes_of_a_deleted_document_leave_the_disk_while_the_sandbox_runs(tmp_path):
    """A document deleted is gone from the data dir within seconds, without a restart, each time;
    the same bytes uploaded again afterwards are stored again, not taken for still there."""
    data = tmp_path / "data"
    pdfs = [blank_pdf(10), blank_pdf(11)]  # over 1 KiB: kept as blobs
    async with aiohttp.ClientSession() as session:
        with on_data_dir(session, tmp_path, data) as http:
            pk = await http.create("Stale")
            for pdf in pdfs:
                digest = hashlib.sha256(pdf).hexdigest()
                uid = await http.upload(pk, pdf)
                assert digest in stored_blobs(data)
                assert (await http.call("DELETE", f"/api/v1/document/{pk}/original/{uid}"))[0] == 200

                async def gone(digest: str = digest) -> bool:
                    return digest not in stored_blobs(data)

                await eventually(gone, "the deleted document's bytes removed from the data dir", timeout=15)
            again = await http.upload(pk, pdfs[0])
            http.server.kill()
        with running_sandbox(tmp_path, "--data-dir", str(data)) as server:
            status, body = await Http(session, server.base).call("GET", f"/api/v1/document/{pk}/original/{again}")
    assert status == 200 and body == pdfs[0]


async def test_a_seed_files_requests_live_on_in_the_data_dir(tmp_path):
    """The start state (a seed file's request) is saved like anything else; what a client did to it
    comes back, and the seed does not put the request back over it."""
    (tmp_path / "fixed.pdf").write_bytes(blank_pdf(1))
    seed = tmp_path / "seed.yaml"
    seed.write_text("requests:\n  - pk: 424242\n    given_name: Seeded\n    surname_1: Person\n"
                    "    serial_number: 00000000T\n    email: seeded@example.com\n"
                    "    mobile_phone_number: '+34600999999'\n    documents:\n"
                    "      - {uid: 22222222-2222-4222-8222-222222222222, file: fixed.pdf}\n")
    data = tmp_path / "data"
    options = ("--data-dir", str(data), "--seed-file", str(seed))
    async with aiohttp.ClientSession() as session:
        with running_sandbox(tmp_path, *options) as server:
            http = Http(session, server.base)
            added = await http.upload(424242, blank_pdf(2))
            server.kill()
        with running_sandbox(tmp_path, *options) as server:
            _, listed = await Http(session, server.base).call("GET", "/api/v1/documents/424242")
            assert sorted(listed["details"]) == sorted(["22222222-2222-4222-8222-222222222222", added]), listed


async def test_a_namespace_first_used_after_a_restart_keeps_its_start_state(tmp_path):
    """The default namespace, untouched before a restart, is built again at it; its start state (the
    sandbox tokens) is saved with its first change, so that the next restart still has it."""
    data = tmp_path / "data"
    async with aiohttp.ClientSession() as session:
        with running_sandbox(tmp_path, "--data-dir", str(data)) as server:
            form = aiohttp.FormData({**IDENTITY, "token": DEFAULT_TOKEN, "given_name": "Elsewhere"})
            status, body = await Http(session, server.base).call("POST", "/api/v1/request", data=form,
                                                                 headers={"X-Mock-Namespace": "w1"})
            assert status == 201, body
        for _ in range(2):
            with running_sandbox(tmp_path, "--data-dir", str(data)) as server:
                await Http(session, server.base).create("Default")
                server.kill()


def rows_of_namespace(data: Path, namespace: str) -> dict[str, int]:
    """How many rows each table of the data dir holds for ``namespace`` (tables with none left out)."""
    with contextlib.closing(sqlite3.connect(data / "state.sqlite3")) as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
                  if name not in ("meta", "blobs")]
        counts = {table: db.execute(f"SELECT count(*) FROM {table} WHERE namespace = ?", (namespace,)).fetchone()[0]
                  for table in tables}
    return {table: count for table, count in counts.items() if count}


async def test_a_deleted_namespace_leaves_the_data_dir_and_one_made_again_is_kept(tmp_path):
    """Deleting a namespace removes its rows at once (its documents' bytes soon after); a kill
    right after brings back the other namespaces, and the name used again is stored afresh."""
    data = tmp_path / "data"
    pdf = blank_pdf(12)  # over 1 KiB: a blob
    worker = {"X-Mock-Namespace": "w1"}
    async with aiohttp.ClientSession() as session:
        with on_data_dir(session, tmp_path, data) as http:
            kept = await http.create("Kept")
            form = aiohttp.FormData({**IDENTITY, "token": DEFAULT_TOKEN, "given_name": "Deleted"})
            status, body = await http.call("POST", "/api/v1/request", data=form, headers=worker)
            assert status == 201, body
            upload = aiohttp.FormData()
            upload.add_field("file", pdf, filename="gone.pdf", content_type="application/pdf")
            uploaded = await http.call("POST", f"/api/v1/document/{body['details']}", data=upload, headers=worker)
            assert uploaded[0] == 200, uploaded
            assert set(rows_of_namespace(data, "w1")) >= {"namespaces", "requests", "documents", "tokens"}

            status, body = await http.call("DELETE", "/_mock/namespaces/w1")
            assert status == 200 and body["requests"] == 1, body
            assert rows_of_namespace(data, "w1") == {}

            async def blob_gone() -> bool:
                return hashlib.sha256(pdf).hexdigest() not in stored_blobs(data)

            await eventually(blob_gone, "the deleted namespace's document bytes removed", timeout=15)
            form = aiohttp.FormData({**IDENTITY, "token": DEFAULT_TOKEN, "given_name": "Again"})
            status, body = await http.call("POST", "/api/v1/request", data=form, headers=worker)
            assert status == 201, body
            again = body["details"]
            http.server.kill()
        with on_data_dir(session, tmp_path, data) as http:
            _, listed = await http.call("GET", "/_mock/namespaces")
            assert listed["namespaces"] == [{"namespace": "", "requests": 1}, {"namespace": "w1", "requests": 1}]
            assert (await http.call("GET", f"/api/v1/request/{kept}"))[0] == 200
            _, found = await http.call("GET", "/_mock/requests", headers=worker)
            assert [(r["pk"], r["signer"].split()[0]) for r in found["requests"]] == [(again, "Again")], found
