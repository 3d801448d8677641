"""The fast paths of the performance work behave like the slow ones they replaced.

One-shot keys (EC by default, RSA on request), the signing-certificate attribute built outside
pyHanko, the upload-time PDF check done once per content, the indexed SMS outbox, signing workers
at the chosen priority, and the benchmark itself (a short run: figures are not asserted here, only
that every phase ran without errors).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pyhanko.sign.general import as_signing_certificate_v2

from mock_server.bench.inputs import Draws, identity_common_name
from mock_server.bench.servers import child_pids
from mock_server.domain.changes import ChangeLog
from mock_server.domain.clock import Clock
from mock_server.domain.ids import RandomSource
from mock_server.domain.pdfchecks import CheckedPdfs
from mock_server.domain.sms import OtpDesk, OtpPolicy
from mock_server.pki.authority import COMMON_NAME_MAX_BYTES, PkiMaterial, asn1_certificate, parsed
from mock_server.pki.keysigner import signing_certificate_v2
from mock_server.pki.pades import DocumentRefused, PdfReport
from tests.helpers import blank_pdf, running_sandbox, validate
from tests.test_hash_flow import ca_file, cms_verify, hash_file, sign_hash_files


def certificate_of(p7m: bytes) -> x509.Certificate:
    signer = cms.ContentInfo.load(p7m)["content"]["certificates"][0].chosen
    return x509.load_der_x509_certificate(signer.dump())


async def test_one_shot_keys_are_ec_p256_by_default(sandbox, openssl, tmp_path):
    content = tmp_path / "content.bin"
    content.write_bytes(b"signed with an EC one-shot key\n")
    _, [p7m] = await sign_hash_files(sandbox, hash_file(hashlib.sha256(content.read_bytes()).digest()))
    key = certificate_of(p7m).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    assert cms.ContentInfo.load(p7m)["content"]["signer_infos"][0]["signature_algorithm"].native["algorithm"] \
        == "sha256_ecdsa"
    verified = cms_verify(p7m, content, await ca_file(sandbox, tmp_path))
    assert verified.returncode == 0, verified.stderr


async def test_rsa_one_shot_keys_on_request(make_client, openssl, tmp_path):
    sandbox = await make_client(one_shot_key="rsa-2048")
    content = tmp_path / "content.bin"
    content.write_bytes(b"signed with an RSA one-shot key\n")
    pk, [p7m] = await sign_hash_files(sandbox, hash_file(hashlib.sha256(content.read_bytes()).digest()))
    key = certificate_of(p7m).public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048
    verified = cms_verify(p7m, content, await ca_file(sandbox, tmp_path))
    assert verified.returncode == 0, verified.stderr
    contract = await validate((await sandbox.call("GET", f"/api/v1/document/{pk}/contract")).raw)
    assert contract.intact and contract.valid and contract.trusted, contract.pretty_print_details()
    assert contract.signing_cert.public_key.algorithm == "rsa"


@pytest.mark.parametrize("which", ["root_cert", "issuing_cert", "tsa_cert"])
def test_signing_certificate_attribute_matches_pyhanko(which):
    cert = asn1_certificate(getattr(parsed(PkiMaterial.bundled()), which))
    assert signing_certificate_v2(cert) == as_signing_certificate_v2(cert).dump()


def test_outbox_index_follows_the_cap():
    clock = Clock(datetime(2030, 1, 1, tzinfo=UTC))
    desk = OtpDesk(RandomSource(1), clock, OtpPolicy(outbox_cap=5, resend_interval=timedelta(0)), ChangeLog())
    for _ in range(4):
        for request in (1, 2):
            desk.issue(request, f"+3460000000{request}", "sms", "ES")
        clock.advance(1)
    assert [m.request for m in desk.outbox] == [2, 1, 2, 1, 2]
    assert desk.messages(1) == [m for m in desk.outbox if m.request == 1]
    assert desk.messages(2) == [m for m in desk.outbox if m.request == 2]
    assert desk.messages(3) == []
    restored = OtpDesk(RandomSource(1), clock, OtpPolicy(outbox_cap=5), ChangeLog())
    restored.restore({}, list(desk.outbox))
    assert restored.messages(1) == desk.messages(1)


def _scheduling_of_workers(sandbox_pid: int) -> dict[int, tuple[int, int]]:
    """Policy and nice level of each signing worker of the sandbox."""
    scheduling = {}
    for pid in child_pids(sandbox_pid):
        with contextlib.suppress(OSError):  # a process that has just gone
            if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                scheduling[pid] = (os.sched_getscheduler(pid), os.getpriority(os.PRIO_PROCESS, pid))
    return scheduling


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="scheduling policies are Linux's")
@pytest.mark.parametrize(("args", "expected"), [
    ((), (os.SCHED_OTHER, 0)),
    (("--signing-priority", "low"), (os.SCHED_OTHER, 10)),
    (("--signing-priority", "idle"), (getattr(os, "SCHED_IDLE", -1), 0)),
])
def test_signing_workers_run_at_the_chosen_priority(tmp_path, args, expected):
    with running_sandbox(tmp_path, *args, workers=2) as server:
        deadline = time.monotonic() + 20
        while True:
            scheduling = _scheduling_of_workers(server.process.pid)
            if len(scheduling) == 2 and set(scheduling.values()) == {expected}:
                break
            assert time.monotonic() < deadline, scheduling
            time.sleep(0.1)
        assert os.sched_getscheduler(server.process.pid) == os.SCHED_OTHER
        assert os.getpriority(os.PRIO_PROCESS, server.process.pid) == 0


@pytest.mark.skipif(not hasattr(os, "SCHED_BATCH"), reason="SCHED_BATCH is Linux's")
def test_the_data_dir_commits_in_a_thread_whose_wake_ups_do_not_preempt_the_event_loop(tmp_path):
    """Each commit wakes the data dir's thread; under SCHED_BATCH it waits for the loop's time slice
    to end instead of taking the core from it (docs/benchmark.md has what that is worth)."""
    with running_sandbox(tmp_path, "--data-dir", str(tmp_path / "data")) as server:
        reset = urllib.request.Request(server.base + "/_mock/reset", method="POST")
        with urllib.request.urlopen(reset, timeout=30) as answer:  # a write: it commits
            assert answer.status == 200
        pid = server.process.pid
        policies = {}
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):  # a thread that has just gone
                policies[int(tid)] = os.sched_getscheduler(int(tid))
        assert policies[pid] == os.SCHED_OTHER
        assert os.SCHED_BATCH in policies.values(), policies


@pytest.mark.parametrize("persisted", [False, True], ids=["in-memory", "data-dir"])
def test_benchmark_runs_every_phase(tmp_path, persisted):
    # docs/benchmark.md shows both: the benchmark as it comes, and with --data-dir DIR for persistence's cost.
    data_dir = ["--data-dir", str(tmp_path / "data")] if persisted else []
    done = subprocess.run(
        [sys.executable, "-m", "mock_server.bench", "--duration", "1", "--clients", "4",
         "--memory-flows", "40", "--sequential-flows", "10", "--stored-requests", "50", "--seed", "7", "--workers", "2",
         "--signing-priority", "normal", *data_dir, "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "data" / "state.sqlite3").is_file() == persisted
    report = json.loads(done.stdout)
    assert report["seed"] == 7
    for phase in ("classic", "hash", "async"):
        assert report[phase]["flows"] > 0 and report[phase]["errors"] == 0, report[phase]
    assert report["sequential"]["flows"] == 10 and report["sequential"]["clients"] == 1, report["sequential"]
    for phase in ("mixed", "noisy"):
        assert report[phase]["non_signing"]["errors"] == 0 and report[phase]["signing_load"]["errors"] == 0
    assert report["noisy"]["busy_loops"] == 2 and report["noisy"]["sign_max_ms"] is not None
    assert report["hello"]["sandbox_per_s"] > 0 and report["hello"]["bare_aiohttp_per_s"] > 0
    assert report["memory"]["flows"] == 40 and report["memory"]["growth_mb"] is not None
    xdist = report["xdist"]
    assert xdist["ratio"] is not None and "7 passed" in xdist["serial"]["outcome"], xdist
    assert "7 passed" in xdist["xdist"]["outcome"], xdist
    sign = report["classic"]["endpoints"]["sign"]
    assert sign["p99_ms"] <= sign["max_ms"] == report["classic"]["sign_max_ms"] <= report["sign_max_ms"]["overall"]
    assert set(report["targets"]) == {
        "classic_flows_per_s", "hash_flows_per_s", "hello_ratio", "mixed_non_signing_p99_ms", "rss_growth_mb",
        "sequential_sign_max_ms", "noisy_sign_p99_ms", "noisy_sign_max_ms", "noisy_non_signing_p99_ms",
        "xdist_ratio", "data_dir_ratio_empty", "data_dir_ratio_full", "data_dir_hello_p50_ms", "data_dir_restart_s",
    }
    persistence = report["persistence"]
    assert persistence["fill"] == {"requests": 50, "errors": 0, "seconds": persistence["fill"]["seconds"]}
    assert persistence["restored_requests"] == persistence["stored_requests"] >= 50, persistence
    assert persistence["empty"]["errors"] == persistence["full"]["errors"] == 0, persistence
    assert persistence["size_on_disk_mb"] > 0
    assert all(judged["met"] is not None for judged in report["targets"].values()), report["targets"]


def test_benchmark_identities_are_varied_and_replayable():
    draws = Draws(0)
    flows = [draws.flow("classic", index) for index in range(2000)]
    identities = [flow.identity for flow in flows]
    assert identities[:50] == [Draws(0).flow("classic", index).identity for index in range(50)]
    assert identities[:50] != [Draws(1).flow("classic", index).identity for index in range(50)]
    names = [identity_common_name(identity) for identity in identities]
    assert max(len(name.encode()) for name in names) == COMMON_NAME_MAX_BYTES and len(set(names)) > 1900
    assert any(not c.isascii() for name in names for c in name)
    assert {"surname_2" in identity for identity in identities} == {True, False}
    assert {identity["id_document_type"] for identity in identities} == {"IDC", "PAS", "PNO", "TIN", "CI", "CE"}
    assert len({identity["id_document_country"] for identity in identities}) > 3
    assert len({len(identity["serial_number"]) for identity in identities}) > 5
    for identity in identities:
        local, domain = identity["email"].split("@")
        assert local.isascii() and local and "." in domain, identity
        assert len(identity["mobile_phone_number"]) == 12 and identity["mobile_phone_number"].startswith("+34")
        assert (identity["registration_authority"], identity["profile"]) == ("9999", "PFnubeNC")
    documents = {flow.document.name.removesuffix(", one-off") for flow in flows}
    assert documents == {document.name for document in draws.documents} and len(documents) > 2
    one_offs = [flow.document for flow in flows if flow.document.name.endswith(", one-off")]
    shared = {document.pdf for document in draws.documents}
    assert one_offs and all(d.pdf not in shared for d in one_offs) and len({d.pdf for d in one_offs}) == len(one_offs)
    assert all(document.pdf.startswith(b"%PDF") for document in draws.documents)


async def test_the_upload_check_is_done_once_per_content_and_keeps_no_refusal():
    inspected: list[bytes] = []

    async def inspect(data: bytes) -> PdfReport:
        inspected.append(data)
        if data.startswith(b"%PDF-refused"):
            raise DocumentRefused("refused")
        return PdfReport(page_count=len(data))

    checks = CheckedPdfs(inspect, size=2)
    first, second, third = b"%PDF-1" * 3, b"%PDF-22" * 5, b"%PDF-333" * 7
    assert (await checks.report(first)).page_count == len(first)
    assert (await checks.report(bytes(bytearray(first)))).page_count == len(first)  # equal bytes, another object
    assert (await checks.report(second)).page_count == len(second)
    assert inspected == [first, second]
    await checks.report(first)  # the most recently used is kept when a third comes
    await checks.report(third)
    await checks.report(first)
    await checks.report(second)
    assert inspected == [first, second, third, second]
    for _ in range(2):
        with pytest.raises(DocumentRefused):
            await checks.report(b"%PDF-refused")
    assert inspected[-2:] == [b"%PDF-refused"] * 2


async def test_the_same_and_other_pdfs_uploaded_again_keep_their_own_page_counts(sandbox, corpus):
    documents = [blank_pdf(3), blank_pdf(1), blank_pdf(3), blank_pdf(2)]
    pk = await sandbox.create_request()
    for data in documents:
        await sandbox.upload_pdf(pk, data)
    detail = (await sandbox.call("GET", f"/_mock/requests/{pk}")).body
    assert [d["pages"] for d in detail["documents"]] == [3, 1, 3, 2]
    encrypted = (corpus / "minimal-aes256.pdf").read_bytes()
    for _ in range(2):
        refused = await sandbox.upload(pk, ("file", "minimal-aes256.pdf", encrypted))
        assert refused.status == 400 and "Encrypted" in json.dumps(refused.body), refused.body
