"""Client-side helpers: what a test suite of a client app would write against the sandbox."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp.test_utils import TestClient
from PIL import Image
from pyhanko.keys import load_cert_from_pemder
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter
from pyhanko.sign.validation import async_validate_pdf_signature
from pyhanko.sign.validation.status import PdfSignatureStatus
from pyhanko_certvalidator import ValidationContext

from mock_server.bench.servers import stop
from mock_server.server.processes import free_port, wait_until_ready
from tests import example_client

ROOT_PEM = Path(__file__).resolve().parents[1] / "fixtures" / "pki" / "root.pem"
# The example client app's signer and token: one definition for the suite and the projects it writes.
DEFAULT_TOKEN = example_client.TOKEN
IDENTITY = example_client.SIGNER


def multipart_body(boundary: str, parts: list[tuple[str, str | None, str, bytes]]) -> bytes:
    """A hand-built multipart/form-data body from ``(name, filename, content type, data)`` parts."""
    chunks = []
    for name, filename, content_type, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: {content_type}\r\n\r\n"
        chunks.append(head.encode() + data + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks)


def blank_pdf(pages: int = 1) -> bytes:
    """A minimal valid PDF with ``pages`` empty A4 pages."""
    writer = PdfFileWriter()
    for _ in range(pages):
        contents = writer.add_object(generic.StreamObject(stream_data=b""))
        writer.insert_page(PageObject(contents=contents, media_box=(0, 0, 595, 842)))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def picture(fmt: str = "PNG", size: tuple[int, int] = (120, 60)) -> bytes:
    """A small solid-colour image."""
    out = io.BytesIO()
    Image.new("RGB", size, (20, 90, 200)).save(out, fmt)
    return out.getvalue()


@dataclass
class Answer:
    """An HTTP answer: status, content type, body (JSON decoded when it is JSON), headers."""

    status: int
    content_type: str
    body: Any
    raw: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


class SandboxClient:
    """The calls a client app makes, over real HTTP."""

    def __init__(self, client: TestClient, namespace: str | None = None) -> None:
        self.http = client
        self.namespace = namespace

    def in_namespace(self, namespace: str) -> SandboxClient:
        """The same server, every call sent with ``X-Mock-Namespace: namespace``."""
        return SandboxClient(self.http, namespace)

    async def call(self, method: str, path: str, **kwargs: Any) -> Answer:
        if self.namespace is not None:
            kwargs["headers"] = {"X-Mock-Namespace": self.namespace, **kwargs.get("headers", {})}
        async with self.http.request(method, path, **kwargs) as response:
            raw = await response.read()
            body: Any = raw
            if response.content_type == "application/json":
                body = json.loads(raw)
            return Answer(response.status, response.content_type, body, raw, response.headers)

    async def create_request(self, *, multipart: bool = True, **changes: Any) -> int:
        fields = {"token": DEFAULT_TOKEN, **IDENTITY, **changes}
        fields = {k: v for k, v in fields.items() if v is not None}
        answer = await self.create_request_raw(fields, multipart=multipart)
        assert answer.status == 201, answer.body
        assert answer.body["status"] == "201 Created"
        return answer.body["details"]

    async def create_request_raw(self, fields: dict[str, Any], *, multipart: bool = True) -> Answer:
        if multipart:
            form = aiohttp.FormData()
            for key, value in fields.items():
                form.add_field(key, str(value))
            return await self.call("POST", "/api/v1/request", data=form)
        return await self.call("POST", "/api/v1/request", json=fields)

    async def upload(self, pk: int, *files: tuple[str, str, bytes]) -> Answer:
        """Upload ``(field, filename, bytes)`` parts to a request."""
        form = aiohttp.FormData()
        for name, filename, data in files:
            form.add_field(name, data, filename=filename, content_type="application/pdf")
        return await self.call("POST", f"/api/v1/document/{pk}", data=form)

    async def upload_pdf(self, pk: int, data: bytes | None = None, filename: str = "doc.pdf") -> str:
        answer = await self.upload(pk, ("file", filename, data or blank_pdf()))
        assert answer.status == 200, answer.body
        return answer.body["details"]

    async def upload_image(self, data: bytes, filename: str = "sig.png", content_type: str = "image/png") -> Answer:
        form = aiohttp.FormData()
        form.add_field("image", data, filename=filename, content_type=content_type)
        return await self.call("POST", "/api/v1/image", data=form)

    async def otp(self, pk: int) -> str:
        """Ask for an OTP and read it from the sandbox's SMS outbox."""
        answer = await self.call("POST", f"/api/v1/otp/{pk}")
        assert answer.status == 200, answer.body
        outbox = await self.call("GET", f"/_mock/sms?request={pk}")
        return outbox.body["messages"][-1]["otp"]

    async def sign(self, pk: int, body: dict[str, Any]) -> Answer:
        return await self.call("POST", f"/api/v1/sign/{pk}", json=body)

    async def signed(self, pk: int, uid: str) -> bytes:
        answer = await self.call("GET", f"/api/v1/document/{pk}/signed/{uid}")
        assert answer.status == 200 and answer.content_type == "application/pdf", answer.body
        return answer.raw


async def validate(pdf: bytes, index: int = -1, root: Path = ROOT_PEM) -> PdfSignatureStatus:
    """pyHanko's validator on signature ``index``, trusting only the sandbox root.

    Non-strict reading: pyHanko refuses hybrid-xref files outright in strict mode.
    """
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    signature = reader.embedded_signatures[index]
    context = ValidationContext(trust_roots=[load_cert_from_pemder(str(root))])
    return await async_validate_pdf_signature(signature, context)


async def pdfsig(pdf: bytes, nss_db: Path, tmp_path: Path) -> str:
    """poppler's report on ``pdf``, trusting the NSS database ``nss_db``.

    Run without blocking the event loop: NSS asks the sandbox's own OCSP responder.
    """
    target = tmp_path / "checked.pdf"
    target.write_bytes(pdf)
    process = await asyncio.create_subprocess_exec(
        "pdfsig", "-nssdir", f"sql:{nss_db}", str(target),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return output.decode()


def covers_whole_document(status: PdfSignatureStatus) -> bool:
    """The signature covers the file, bar B-LT validation data appended after it (DSS only)."""
    if status.coverage.name == "ENTIRE_FILE":
        return True
    return status.coverage.name == "ENTIRE_REVISION" and status.modification_level.name == "LTA_UPDATES"


@dataclass
class RunningSandbox:
    """``oneshot-mock serve`` in a process of its own."""

    base: str
    log: Path
    process: subprocess.Popen

    def kill(self) -> None:
        """``kill -9`` the server (no shutdown runs, nothing more is flushed) and reap it."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()


@contextlib.contextmanager
def running_sandbox(tmp_path: Path, *args: str, workers: int = 1) -> Iterator[RunningSandbox]:
    """Run the CLI on a free loopback port until the block ends."""
    port = free_port()
    log = tmp_path / f"server-{port}.log"
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "mock_server", "serve", "--port", str(port), "--workers", str(workers), *args]
    with serving(command, os.environ, base + "/_mock/health", log) as process:
        yield RunningSandbox(base, log, process)


def oneshot_mock(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """``oneshot-mock ARGS`` (as ``python -m mock_server``) run to its end, its output captured as text."""
    return subprocess.run([sys.executable, "-m", "mock_server", *args], capture_output=True, text=True, timeout=120,
                          **kwargs)


def environment_without_oneshot(**extra: str) -> dict[str, str]:
    """This process's environment minus any ``ONESHOT_MOCK_*`` variable (a developer's own must not leak in)."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith("ONESHOT_MOCK_")}
    return {**clean, **extra}


@contextlib.contextmanager
def serving(command: Sequence[str], env: Mapping[str, str], probe: str, log: Path,
            cwd: Path | None = None) -> Iterator[subprocess.Popen]:
    """Run ``command`` until the block ends, entering it once ``probe`` answers."""
    with log.open("wb") as sink:
        process = subprocess.Popen(list(command), env=dict(env), cwd=cwd, stdout=sink, stderr=subprocess.STDOUT)
    try:
        try:
            wait_until_ready(probe, process, timeout=60)
        except RuntimeError as failure:
            raise AssertionError(f"{failure}: {log.read_text()}") from None
        yield process
    finally:
        stop(process)


T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T | None]], what: str, timeout: float = 10.0) -> T:
    """Poll ``check`` until it returns something truthy, for ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := await check()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        await asyncio.sleep(0.02)
    return result
