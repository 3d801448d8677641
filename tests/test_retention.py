"""Finished requests do not pile up: ``--retain-requests`` and ``--retain-for``, over HTTP.

A long-running sandbox (a team's shared QA sandbox, the Docker image) keeps the newest finished
requests with their documents, SMS and webhook log; older ones go, oldest first, and none while
anything about it is pending.
"""

from __future__ import annotations

from datetime import timedelta

import aiohttp
import pytest

from mock_server.server.cli import serve_config
from tests.conftest import free_port
from tests.helpers import DEFAULT_TOKEN, IDENTITY, SandboxClient, running_sandbox
from tests.test_persistence import Http


async def cancelled(sandbox: SandboxClient, **changes: str) -> int:
    """A request created, sent an OTP, then cancelled: finished, with an SMS to forget."""
    pk = await sandbox.create_request(**changes)
    await sandbox.otp(pk)
    answer = await sandbox.call("DELETE", f"/api/v1/request/{pk}")
    assert answer.status == 200, answer.body
    return pk


async def exists(sandbox: SandboxClient, pk: int) -> bool:
    answer = await sandbox.call("GET", f"/api/v1/request/{pk}")
    assert answer.status in (200, 404), answer.body
    return answer.status == 200


async def test_the_newest_finished_requests_stay_and_older_ones_go_with_their_sms(make_client):
    sandbox = await make_client(retain_requests=3)
    open_pk = await sandbox.create_request()  # never finished: never evicted
    finished = [await cancelled(sandbox) for _ in range(6)]
    await sandbox.create_request()  # eviction runs when a request comes in
    assert [await exists(sandbox, pk) for pk in finished] == [False, False, False, True, True, True]
    assert await exists(sandbox, open_pk)
    outbox = (await sandbox.call("GET", "/_mock/sms")).body["messages"]
    assert {m["request"] for m in outbox} == set(finished[3:]), outbox
    gone = await sandbox.call("GET", f"/api/v1/documents/{finished[0]}")
    assert gone.status == 404, gone.body


async def test_requests_finished_longer_ago_than_retain_for_go(make_client):
    sandbox = await make_client(retain_requests=None, retain_for=timedelta(hours=1))
    old = await cancelled(sandbox)
    assert (await sandbox.call("POST", "/_mock/clock", json={"advance_s": 1800})).status == 200
    recent = await cancelled(sandbox)
    assert (await sandbox.call("POST", "/_mock/clock", json={"advance_s": 1900})).status == 200
    await sandbox.create_request()
    assert not await exists(sandbox, old)
    assert await exists(sandbox, recent)


async def test_a_finished_request_with_a_webhook_pending_stays_until_it_is_delivered(make_client):
    sandbox = await make_client(retain_requests=1)
    dead = f"http://127.0.0.1:{free_port()}/hook"
    form = aiohttp.FormData({**IDENTITY, "token": DEFAULT_TOKEN, "async": "true", "callback": dead})
    created = await sandbox.call("POST", "/api/v1/request", data=form)
    assert created.status == 201, created.body
    hooked = created.body["details"]
    assert (await sandbox.call("DELETE", f"/api/v1/request/{hooked}")).status == 200
    others = [await cancelled(sandbox) for _ in range(3)]
    await sandbox.create_request()
    assert await exists(sandbox, hooked), "its CANCELLED webhook is still waiting for the receiver"
    assert not await exists(sandbox, others[0])
    events = (await sandbox.call("GET", "/_mock/webhooks", params={"request": str(hooked)})).body["webhooks"]
    assert events and all(e["state"] == "pending" for e in events), events


async def test_evicted_requests_are_gone_from_the_data_dir_too(tmp_path):
    data = tmp_path / "data"
    async with aiohttp.ClientSession() as session:
        with running_sandbox(tmp_path, "--data-dir", str(data), "--retain-requests", "2") as server:
            http = Http(session, server.base)
            finished = []
            for name in ("One", "Two", "Three", "Four"):
                pk = await http.create(name)
                status, body = await http.call("DELETE", f"/api/v1/request/{pk}")
                assert status == 200, body
                finished.append(pk)
            last = await http.create("Five")
        with running_sandbox(tmp_path, "--data-dir", str(data), "--retain-requests", "2") as server:
            http = Http(session, server.base)
            present = [(await http.call("GET", f"/api/v1/request/{pk}"))[0] for pk in [*finished, last]]
    assert present == [404, 404, 200, 200, 200]


@pytest.mark.parametrize(("argv", "count", "age"), [
    ([], 1000, None),
    (["--retain-requests", "none", "--retain-for", "7d"], None, timedelta(days=7)),
    (["--retain-requests", "50", "--retain-for", "90s"], 50, timedelta(seconds=90)),
])
def test_retention_options(argv, count, age):
    config = serve_config(argv, {})
    assert (config.retain_requests, config.retain_for) == (count, age)


@pytest.mark.parametrize("argv", [["--retain-requests", "-1"], ["--retain-for", "soon"], ["--retain-for", "0"]])
def test_bad_retention_options_are_refused(argv, capsys):
    with pytest.raises(SystemExit):
        serve_config(argv, {})
    assert "expected" in capsys.readouterr().err
