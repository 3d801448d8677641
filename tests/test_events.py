"""The live event stream (``GET /_mock/events``, Server-Sent Events) and ``oneshot-mock tail``."""

from __future__ import annotations

import asyncio
import json
import select
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.helpers import DEFAULT_TOKEN, IDENTITY, running_sandbox


class EventReader:
    """A Server-Sent Events client over the sandbox's test client: (event, data) pairs as they come."""

    def __init__(self, sandbox, **query) -> None:
        self._sandbox, self._query = sandbox, query
        self.events: list[tuple[str, dict]] = []
        self._task: asyncio.Task | None = None
        self._connected = asyncio.Event()

    async def __aenter__(self) -> EventReader:
        self._task = asyncio.create_task(self._read())
        await asyncio.wait_for(self._connected.wait(), 10)
        return self

    async def __aexit__(self, *_) -> None:
        self._task.cancel()

    async def _read(self) -> None:
        headers = {"X-Mock-Namespace": self._sandbox.namespace} if self._sandbox.namespace else {}
        async with self._sandbox.http.get("/_mock/events", params=self._query, headers=headers) as response:
            assert response.status == 200 and response.content_type == "text/event-stream"
            kind, data = "message", []
            async for raw in response.content:
                line = raw.decode().rstrip("\r\n")
                if line == ": connected":
                    self._connected.set()
                elif line.startswith("event:"):
                    kind = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    data.append(line.split(":", 1)[1].strip())
                elif not line and data:
                    self.events.append((kind, json.loads("\n".join(data))))
                    kind, data = "message", []

    async def until(self, predicate, timeout: float = 10.0) -> list[tuple[str, dict]]:
        """The events so far, once ``predicate(events)`` holds."""
        async def wait() -> None:
            while not predicate(self.events):
                await asyncio.sleep(0.01)
        await asyncio.wait_for(wait(), timeout)
        return self.events


def statuses(events) -> list[str]:
    return [data["status"] for kind, data in events if kind == "status" and "status" in data]


async def test_a_classic_flow_streams_its_events_in_order(sandbox, receiver):
    async with EventReader(sandbox) as reader:
        pk = await sandbox.create_request(callback=receiver.url)
        uid = await sandbox.upload_pdf(pk)
        otp = await sandbox.otp(pk)
        assert (await sandbox.sign(pk, {"secret": otp})).status == 200
        assert await sandbox.signed(pk, uid)
        events = await reader.until(lambda seen: sum(kind == "webhook" for kind, _ in seen) >= 3)
    assert statuses(events) == ["CREATED", "ENROLLREADY", "ISSUED"]
    assert all(data["pk"] == pk and data["namespace"] == "" and data["at"] for _, data in events)
    order = [kind if kind != "status" else data["status"] for kind, data in events if kind != "webhook"]
    assert order == ["CREATED", "ENROLLREADY", "sms", "ISSUED"], order
    [sms] = [data for kind, data in events if kind == "sms"]
    assert sms["otp"] == otp and sms["to"] == IDENTITY["mobile_phone_number"] and sms["delivered_at"]
    hooks = [data for kind, data in events if kind == "webhook"]
    assert [hook["event"] for hook in hooks] == ["CREATED", "ENROLLREADY", "ISSUED"]
    assert all(hook["http_status"] == 200 and hook["target"] == receiver.url for hook in hooks)
    ids = [json.dumps(data) for _, data in events]
    assert len(ids) == len(set(ids))


async def test_filters_by_request_and_kind(sandbox):
    first = await sandbox.create_request()
    async with EventReader(sandbox, pk=str(first), kind="sms,clock") as reader:
        await sandbox.create_request()
        await sandbox.otp(first)
        assert (await sandbox.call("POST", "/_mock/clock", json={"advance_s": 90})).status == 200
        await sandbox.otp(first)  # past the resend interval: a second SMS, after the clock moved
        events = await reader.until(lambda seen: len(seen) >= 2)
    assert [kind for kind, _ in events] == ["sms", "sms"], "the clock belongs to no request: a pk filter leaves it out"
    assert {data["pk"] for _, data in events} == {first}
    async with EventReader(sandbox, kind="clock") as reader:
        await sandbox.call("POST", "/_mock/clock", json={"advance_s": 30})
        [(kind, data)] = await reader.until(lambda seen: len(seen) >= 1)
    assert kind == "clock" and data["offset_s"] == pytest.approx(120, abs=1)
    for query in ({"kind": "sms,colour"}, {"pk": "first"}):
        refused = await sandbox.call("GET", "/_mock/events", params=query)
        assert refused.status == 400, query


async def test_scenario_matches_are_streamed_and_namespaces_stay_apart(sandbox):
    qa = sandbox.in_namespace("qa")
    scenario = {"name": "slow-hello", "rules": [{"match": {"operation": "hello"}, "then": {"delay_ms": 1}}]}
    assert (await qa.call("POST", "/_mock/scenarios", json=scenario)).status in (200, 201)
    async with EventReader(qa, kind="scenario") as reader, EventReader(sandbox) as default:
        await qa.call("GET", "/api/v1/hello")
        [(_, data)] = await reader.until(lambda seen: len(seen) >= 1)
        await sandbox.call("POST", "/_mock/clock", json={"advance_s": 1})
        await default.until(lambda seen: len(seen) >= 1)
    assert data["scenarios"] == ["slow-hello"] and data["operation"] == "hello" and data["namespace"] == "qa"
    assert [kind for kind, _ in default.events] == ["clock"], "the qa namespace's events stay in qa"


def test_tail_prints_one_line_per_event_and_ends_with_the_server(tmp_path):
    with running_sandbox(tmp_path, "--otp", "123456") as server:
        tail = subprocess.Popen([sys.executable, "-m", "mock_server", "tail", "--url", server.base, "--count", "3"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _wait_for_stream(server.base)
        body = json.dumps({**IDENTITY, "token": DEFAULT_TOKEN}).encode()
        created = urllib.request.Request(server.base + "/api/v1/request", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(created, timeout=30) as answer:
            pk = json.load(answer)["details"]
        urllib.request.urlopen(urllib.request.Request(f"{server.base}/api/v1/otp/{pk}", method="POST"), timeout=30)
        out, err = tail.communicate(timeout=30)
        assert tail.returncode == 0, err
        lines = out.splitlines()
        assert len(lines) == 3, out
        assert lines[0].split()[1:] == ["status", str(pk), "CREATED"]
        assert lines[1].split()[1:] == ["status", str(pk), "CREATED", "->", "ENROLLREADY"]
        assert lines[2].split()[1:5] == ["sms", str(pk), "sms", "to"] and lines[2].endswith("code 123456")
        follower = subprocess.Popen([sys.executable, "-m", "mock_server", "tail", "--url", server.base,
                                     "--kind", "clock"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = _first_line_while(follower, lambda: _post(server.base + "/_mock/clock", {"advance_s": 1}))
        assert first.split()[1:4] == ["clock", "-", "now"], first
    # The sandbox has stopped: the open stream ended, and so did the tail following it.
    _, err = follower.communicate(timeout=30)
    assert follower.returncode == 0, err


def _wait_for_stream(base: str) -> None:
    """Until the sandbox has a reader on its event stream: an event made before would be missed."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with urllib.request.urlopen(base + "/_mock/health", timeout=10) as answer:
            if json.load(answer)["event_streams"] >= 1:
                return
        time.sleep(0.05)
    raise AssertionError("the tail never connected")


def _post(url: str, body: dict) -> None:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).close()


def _first_line_while(process: subprocess.Popen, poke) -> str:
    """The first line ``process`` prints, poking the sandbox until it does (it connects in its own time)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        poke()
        if select.select([process.stdout], [], [], 0.2)[0]:
            return process.stdout.readline()
    raise AssertionError("the tail printed nothing")
