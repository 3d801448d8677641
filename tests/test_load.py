"""200 concurrent classic flows against one sandbox process: no errors, no cross-talk, RSS reported."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import aiohttp
from asn1crypto import cms
from pyhanko.pdf_utils.reader import PdfFileReader

from tests.helpers import DEFAULT_TOKEN, blank_pdf, running_sandbox

FLOWS = 200
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def rss_mb(pid: int) -> float:
    """Resident memory of the sandbox's main process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def signer_common_name(pdf: bytes) -> str:
    """The CN of the certificate that made the PDF's signature (no validation: others test that)."""
    signature = PdfFileReader(io.BytesIO(pdf), strict=False).embedded_signatures[0]
    signed_data: cms.SignedData = signature.signed_data
    serial = signed_data["signer_infos"][0]["sid"].chosen["serial_number"].native
    cert = next(c.chosen for c in signed_data["certificates"] if c.chosen.serial_number == serial)
    return cert.subject.native["common_name"]


async def flow(session: aiohttp.ClientSession, base: str, index: int) -> tuple[int, str, bool]:
    phone = f"+3461{index:07d}"
    form = aiohttp.FormData({
        "token": DEFAULT_TOKEN, "given_name": f"Load{index:03d}", "surname_1": "Test", "serial_number": f"{index:08d}L",
        "email": "load@example.com", "mobile_phone_number": phone, "env": "sandbox",
    })
    async with session.post(f"{base}/api/v1/request", data=form) as r:
        pk = (await r.json())["details"]
    upload = aiohttp.FormData()
    upload.add_field("file", blank_pdf(), filename="load.pdf", content_type="application/pdf")
    async with session.post(f"{base}/api/v1/document/{pk}", data=upload) as r:
        uid = (await r.json())["details"]
    async with session.post(f"{base}/api/v1/otp/{pk}") as r:
        assert r.status == 200
    async with session.get(f"{base}/_mock/sms", params={"request": str(pk)}) as r:
        [message] = (await r.json())["messages"]
    own_otp = message["to"] == phone and message["request"] == pk
    async with session.post(f"{base}/api/v1/sign/{pk}", json={"secret": message["otp"]}) as r:
        assert r.status == 200, await r.text()
    async with session.get(f"{base}/api/v1/document/{pk}/signed/{uid}") as r:
        assert r.status == 200 and r.content_type == "application/pdf"
        return index, signer_common_name(await r.read()), own_otp


async def test_two_hundred_concurrent_flows(tmp_path):
    with running_sandbox(tmp_path, "--log-format", "json", workers=2) as server:
        before = rss_mb(server.process.pid)
        connector = aiohttp.TCPConnector(limit=FLOWS)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as session:
            results = await asyncio.gather(*(flow(session, server.base, i) for i in range(FLOWS)),
                                           return_exceptions=True)
        after = rss_mb(server.process.pid)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    crossed = [(i, cn) for i, cn, _ in results if cn != f"LOAD{i:03d} TEST"]
    assert not crossed, crossed[:5]
    assert all(own for _, _, own in results), "every OTP reached its own request"
    ARTIFACTS.mkdir(exist_ok=True)
    figures = {"flows": FLOWS, "errors": len(errors), "cross_talk": len(crossed),
               "rss_mb_before": round(before, 1), "rss_mb_after": round(after, 1)}
    (ARTIFACTS / "load-200.json").write_text(json.dumps(figures, indent=2))
    print(f"\n200-flow load: {figures}")
