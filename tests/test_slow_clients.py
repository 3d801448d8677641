"""Slow and half-open clients, from the outside: raw sockets against a real server on 127.0.0.1.

A client that never finishes its request head, trickles it, stalls its body or idles on a kept-alive
connection loses the connection after the configured time; everyone else is served meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.request

import pytest

from tests.helpers import DEFAULT_TOKEN, SandboxClient, blank_pdf, running_sandbox

HEADER, BODY, IDLE = 0.5, 0.5, 1.2
SLACK = 2.0  # how late a close may come: loose, the assertions are about "bounded", not precision
HELLO = b"GET /api/v1/hello HTTP/1.1\r\nHost: sandbox\r\n\r\n"


async def fast_sandbox(make_client, **changes):
    """A sandbox with short timeouts; returns (client, port)."""
    settings = {"header_timeout": HEADER, "body_timeout": BODY, "idle_timeout": IDLE, **changes}
    client = await make_client(**settings)
    return client, client.http.server.port


@pytest.fixture
async def connect():
    """Open raw connections to 127.0.0.1; every one is closed at the end, passed or failed (a stalled
    request whose client stays would hold the test server's shutdown)."""
    writers: list[asyncio.StreamWriter] = []

    async def open_one(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writers.append(writer)
        return reader, writer

    yield open_one
    for writer in writers:
        writer.close()


async def closed_after(reader: asyncio.StreamReader, started: float, limit: float) -> tuple[float, bytes]:
    """Read until the server closes; seconds from ``started`` to the close, and what was received."""
    received = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), timeout=limit):
            received += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        raise AssertionError(f"connection still open after {limit}s; received {received!r}") from None
    return time.monotonic() - started, received


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), timeout=5)
    return int(status_line.split()[1]), headers, body


async def upload_connection(
    make_client, connect
) -> tuple[SandboxClient, asyncio.StreamReader, asyncio.StreamWriter, int, bytes]:
    """A fast-timeout sandbox, a raw connection to it, a request to upload to, and the multipart body."""
    sandbox, port = await fast_sandbox(make_client)
    pk = await sandbox.create_request()
    reader, writer = await connect(port)
    return sandbox, reader, writer, pk, multipart({}, {"file": ("doc.pdf", blank_pdf())})


def upload_head(pk: int, body: bytes) -> bytes:
    """The head of a multipart upload of ``body`` to request ``pk``."""
    return (f"POST /api/v1/document/{pk} HTTP/1.1\r\nHost: sandbox\r\n"
            f"Content-Type: multipart/form-data; boundary=slowclientboundary\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]],
              boundary: str = "slowclientboundary") -> bytes:
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, data) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f"Content-Type: application/pdf\r\n\r\n".encode() + data + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


# (a) half a request head, then nothing


async def test_half_a_request_head_is_disconnected_after_the_header_timeout(make_client, connect):
    _, port = await fast_sandbox(make_client, idle_timeout=30)  # only the header timeout can close it
    reader, writer = await connect(port)
    started = time.monotonic()
    writer.write(b"POST /api/v1/request HTTP/1.1\r\nHost: sandbox\r\nContent-")
    elapsed, received = await closed_after(reader, started, HEADER + SLACK)
    assert received == b""
    assert HEADER * 0.8 <= elapsed <= HEADER + SLACK, elapsed
    writer.close()


async def test_a_connection_that_sends_nothing_is_disconnected_after_the_header_timeout(make_client, connect):
    _, port = await fast_sandbox(make_client, idle_timeout=30)
    reader, writer = await connect(port)
    elapsed, received = await closed_after(reader, time.monotonic(), HEADER + SLACK)
    assert received == b"" and HEADER * 0.8 <= elapsed <= HEADER + SLACK, elapsed
    writer.close()


# (b) a head trickled byte by byte: the deadline is for the whole head, not per byte


async def test_a_trickled_request_head_is_disconnected_too(make_client, connect):
    _, port = await fast_sandbox(make_client, idle_timeout=30)
    reader, writer = await connect(port)
    started = time.monotonic()
    head = HELLO.replace(b"\r\n\r\n", b"\r\nX-Padding: " + b"p" * 80 + b"\r\n\r\n")
    interval = HEADER / 5  # each byte well within the timeout; the whole head takes ~20 timeouts

    async def trickle() -> int:
        sent = 0
        for byte in head:
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except (ConnectionError, RuntimeError):
                break
            sent += 1
            await asyncio.sleep(interval)
        return sent

    sender = asyncio.create_task(trickle())
    elapsed, received = await closed_after(reader, started, HEADER + SLACK)
    sender.cancel()
    assert received == b"", received
    assert HEADER * 0.8 <= elapsed <= HEADER + SLACK, elapsed
    writer.close()


# (c) a POST head with Content-Length, then a stalled body


async def test_a_stalled_json_body_gets_a_408_in_the_envelope(make_client, connect):
    _, port = await fast_sandbox(make_client)
    reader, writer = await connect(port)
    body = json.dumps({"username": "slow", "password": "client", "pin": "1234"}).encode()
    writer.write(b"POST /api/v1/token HTTP/1.1\r\nHost: sandbox\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
    started = time.monotonic()
    status, headers, answer = await read_response(reader)
    waited = time.monotonic() - started
    assert status == 408, answer
    assert headers["content-type"].startswith("application/json")
    assert json.loads(answer) == {"status": "408 Request Timeout",
                                  "details": f"Request body not received: no data for {BODY:g} seconds"}
    assert BODY * 0.8 <= waited <= BODY + SLACK, waited
    elapsed, _ = await closed_after(reader, started, BODY + SLACK)  # and the connection does not stay
    assert elapsed <= BODY + SLACK
    writer.close()


async def test_a_stalled_multipart_upload_gets_a_408_in_the_envelope(make_client, connect):
    sandbox, reader, writer, pk, body = await upload_connection(make_client, connect)
    writer.write(upload_head(pk, body) + body[: len(body) // 2])
    started = time.monotonic()
    status, _, answer = await read_response(reader)
    assert status == 408 and json.loads(answer)["status"] == "408 Request Timeout", answer
    assert time.monotonic() - started <= BODY + SLACK
    writer.close()
    # Nothing was stored from the half upload.
    listed = await sandbox.call("GET", f"/_mock/requests/{pk}")
    assert listed.body["documents"] == []


async def test_a_stalled_body_nobody_reads_still_loses_the_connection(make_client, connect):
    """hello ignores bodies: the answer goes out, then the unread, stalled body is given up on."""
    _, port = await fast_sandbox(make_client)
    reader, writer = await connect(port)
    started = time.monotonic()
    writer.write(b"POST /api/v1/hello HTTP/1.1\r\nHost: sandbox\r\nContent-Length: 1000\r\n\r\nabc")
    elapsed, received = await closed_after(reader, started, BODY + SLACK)
    assert received.startswith(b"HTTP/1.1 "), received
    assert elapsed <= BODY + SLACK, elapsed
    writer.close()


# (d) an idle kept-alive connection


async def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(make_client, connect):
    _, port = await fast_sandbox(make_client)
    reader, writer = await connect(port)
    writer.write(HELLO)
    status, headers, _ = await read_response(reader)
    assert status == 200 and headers.get("connection", "").lower() != "close"
    started = time.monotonic()
    elapsed, received = await closed_after(reader, started, IDLE + SLACK)
    assert received == b""
    # Idle is its own timeout: longer than the header timeout, and the one that applies here.
    assert IDLE * 0.8 <= elapsed <= IDLE + SLACK, elapsed
    writer.close()


async def test_a_kept_alive_connection_serves_a_request_sent_after_a_pause_longer_than_the_header_timeout(
        make_client, connect):
    _, port = await fast_sandbox(make_client)
    reader, writer = await connect(port)
    writer.write(HELLO)
    assert (await read_response(reader))[0] == 200
    await asyncio.sleep(HEADER * 1.6)  # idle, not a slow head: the idle timeout (longer) applies
    writer.write(HELLO)
    status, _, body = await read_response(reader)
    assert status == 200 and json.loads(body)["details"] == "Hello"
    # ... and once a head has begun, the header timeout counts from its first byte.
    writer.write(b"GET /api/v1/hello HTTP/1.1\r\nHo")
    elapsed, _ = await closed_after(reader, time.monotonic(), HEADER + SLACK)
    assert HEADER * 0.8 <= elapsed <= min(HEADER + SLACK, IDLE), elapsed
    writer.close()


async def test_a_pipelined_request_behind_a_slow_one_is_not_taken_for_a_slow_head(make_client, connect):
    """The second head arrives while the first request is being answered, which takes longer than
    the header timeout: the client waits for the server, so the connection stays."""
    sandbox, port = await fast_sandbox(make_client, idle_timeout=30)
    slow_first = {"name": "slow-first", "rules": [
        {"match": {"operation": "hello"}, "when": {"times": 1}, "then": {"delay_ms": int(HEADER * 2500)}}]}
    loaded = await sandbox.call("POST", "/_mock/scenarios", data=json.dumps(slow_first),
                                headers={"Content-Type": "application/json"})
    assert loaded.status in (200, 201), loaded.body
    reader, writer = await connect(port)
    started = time.monotonic()
    writer.write(HELLO)
    await asyncio.sleep(HEADER / 5)
    writer.write(HELLO)
    first, second = await read_response(reader), await read_response(reader)
    assert time.monotonic() - started >= HEADER * 2
    assert [first[0], second[0]] == [200, 200]
    assert json.loads(second[2])["details"] == "Hello"
    writer.close()


# (e) everyone else is served while those connections hang


async def test_normal_clients_are_served_promptly_while_slow_clients_hang(make_client, connect):
    # Long timeouts here: the slow connections must still be hanging while the normal client is served.
    _, port = await fast_sandbox(make_client, header_timeout=10, body_timeout=10, idle_timeout=10)
    slow = []
    for _ in range(20):
        reader, writer = await connect(port)
        writer.write(b"GET /api/v1/hello HTTP/1.1\r\nHost: sand")  # half a head
        slow.append((reader, writer))
        reader, writer = await connect(port)
        writer.write(b"POST /api/v1/token HTTP/1.1\r\nHost: sandbox\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 500\r\n\r\n{\"username\"")  # a stalled body
        slow.append((reader, writer))
        reader, writer = await connect(port)  # connected, silent
        slow.append((reader, writer))
    await asyncio.sleep(0.2)
    for _ in range(5):
        reader, writer = await connect(port)
        started = time.monotonic()
        writer.write(HELLO)
        status, _, body = await read_response(reader)
        assert status == 200 and json.loads(body)["details"] == "Hello"
        assert time.monotonic() - started < 1.0
        writer.close()
    for reader, writer in slow:  # they were all still hanging: the normal client did not wait them out
        assert not reader.at_eof()
        writer.close()


# (f) slow but steady uploads are fine


async def test_a_slow_but_progressing_upload_succeeds(make_client, connect):
    _, reader, writer, pk, body = await upload_connection(make_client, connect)
    writer.write(upload_head(pk, body))
    started = time.monotonic()
    pieces = 8
    step = -(-len(body) // pieces)
    for offset in range(0, len(body), step):
        await asyncio.sleep(BODY * 0.5)  # each pause within the body timeout, the whole upload far beyond it
        writer.write(body[offset:offset + step])
        await writer.drain()
    status, _, answer = await read_response(reader)
    assert time.monotonic() - started > BODY * 3
    assert status == 200, answer
    assert json.loads(answer)["status"] == "200 OK"
    writer.close()


# The flags, through the real command


def test_serve_flags_set_the_timeouts(tmp_path):
    async def check(port: int) -> None:
        async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            return await asyncio.open_connection("127.0.0.1", port)

        reader, writer = await connect(port)
        writer.write(b"GET /api/v1/hel")
        elapsed, _ = await closed_after(reader, time.monotonic(), 0.6 + SLACK)
        assert 0.6 * 0.8 <= elapsed <= 0.6 + SLACK, elapsed
        writer.close()
        reader, writer = await connect(port)
        writer.write(HELLO)
        assert (await read_response(reader))[0] == 200
        elapsed, _ = await closed_after(reader, time.monotonic(), 1.5 + SLACK)
        assert 1.5 * 0.8 <= elapsed <= 1.5 + SLACK, elapsed
        writer.close()
        reader, writer = await connect(port)
        writer.write(b"POST /api/v1/token HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n{")
        status, _, answer = await read_response(reader)
        assert status == 408, answer
        writer.close()

    with running_sandbox(tmp_path, "--header-timeout", "0.6", "--body-timeout", "0.7",
                         "--idle-timeout", "1.5") as server:
        asyncio.run(check(int(server.base.rsplit(":", 1)[1])))
        # A normal client over urllib still works.
        with urllib.request.urlopen(server.base + "/api/v1/tokens", timeout=5) as answer:
            assert DEFAULT_TOKEN in json.load(answer)["details"]


async def test_a_body_trickled_past_the_deadline_gets_a_408_though_bytes_keep_coming(make_client, connect):
    """A byte every fifth of the body timeout never stalls, so only the overall deadline ends it."""
    deadline = 1.5
    _, port = await fast_sandbox(make_client, body_deadline=deadline)
    reader, writer = await connect(port)
    writer.write(b"POST /oneshot/api/v1/token HTTP/1.1\r\nHost: sandbox\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100000\r\n\r\n{")
    started = time.monotonic()

    async def trickle() -> None:
        # Up to just before the deadline (bytes still arriving as the server closes would reset the
        # connection before its answer is read); the body timeout would only end it later.
        with contextlib.suppress(ConnectionError):
            while time.monotonic() - started < deadline - BODY / 5:
                await asyncio.sleep(BODY / 5)
                writer.write(b" ")
                await writer.drain()

    trickling = asyncio.ensure_future(trickle())
    status, _, answer = await read_response(reader)
    waited = time.monotonic() - started
    trickling.cancel()
    assert status == 408, answer
    assert json.loads(answer)["message"] == f"Request body not received within {deadline:g} seconds"
    assert deadline * 0.9 <= waited <= deadline + SLACK, waited
