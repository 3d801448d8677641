"""X-Mock-Namespace: parallel test workers share one server, each in a sandbox of its own."""

from __future__ import annotations

import asyncio
import base64
import time

import pytest
from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID
from yarl import URL

from mock_server.domain.pkspace import BLOCK_SIZE, PkSpace
from mock_server.testing.client import ControlClient, ControlError
from tests.helpers import SandboxClient, blank_pdf, validate
from tests.test_events import EventReader
from tests.test_videoid import EIDAS, create_videoid, request_detail


async def signed_flow(sandbox: SandboxClient, given: str) -> tuple[int, bytes]:
    pk = await sandbox.create_request(given_name=given)
    uid = await sandbox.upload_pdf(pk, blank_pdf())
    answer = await sandbox.sign(pk, {"secret": await sandbox.otp(pk)})
    assert answer.status == 200, answer.body
    return pk, await sandbox.signed(pk, uid)


async def pks(sandbox: SandboxClient) -> set[int]:
    answer = await sandbox.call("GET", "/_mock/requests")
    assert answer.status == 200, answer.body
    return {entry["pk"] for entry in answer.body["requests"]}


async def test_namespaces_see_only_their_own_requests_and_sms(sandbox):
    alpha, beta = sandbox.in_namespace("worker-1"), sandbox.in_namespace("worker-2")
    (pk_a, pdf_a), (pk_b, pdf_b) = await asyncio.gather(signed_flow(alpha, "Alpha"), signed_flow(beta, "Beta"))
    assert pk_a != pk_b, "namespaces draw pks from their own seeds"

    assert await pks(alpha) == {pk_a} and await pks(beta) == {pk_b} and await pks(sandbox) == set()
    assert (await beta.call("GET", f"/api/v1/request/{pk_a}")).status == 404
    assert (await alpha.call("GET", f"/api/v1/request/{pk_a}")).status == 200
    for client, pk in ((alpha, pk_a), (beta, pk_b)):
        outbox = (await client.call("GET", "/_mock/sms")).body["messages"]
        assert [m["request"] for m in outbox] == [pk]
    for pdf, given in ((pdf_a, "ALPHA"), (pdf_b, "BETA")):
        status = await validate(pdf)
        assert status.bottom_line and status.signing_cert.subject.native["common_name"].startswith(given)

    listed = (await sandbox.call("GET", "/_mock/namespaces")).body["namespaces"]
    assert listed == [{"namespace": "", "requests": 0}, {"namespace": "worker-1", "requests": 1},
                      {"namespace": "worker-2", "requests": 1}]


async def test_reset_of_one_namespace_leaves_the_others(sandbox):
    alpha, beta = sandbox.in_namespace("a"), sandbox.in_namespace("b")
    first_a = await alpha.create_request()
    pk_b = await beta.create_request()
    pk_default = await sandbox.create_request()

    answer = await sandbox.call("POST", "/_mock/reset?namespace=a")
    assert answer.status == 200 and answer.body == {"status": "reset", "namespace": "a"}
    assert await pks(alpha) == set()
    assert await pks(beta) == {pk_b} and await pks(sandbox) == {pk_default}
    assert await alpha.create_request() == first_a, "a reset namespace replays its own random sequence"


async def test_clock_and_scenarios_are_per_namespace(sandbox):
    alpha, beta = sandbox.in_namespace("a"), sandbox.in_namespace("b")
    before = (await beta.call("GET", "/_mock/clock")).body["offset_s"]
    moved = await alpha.call("POST", "/_mock/clock", json={"advance_s": 7200})
    assert moved.status == 200 and moved.body["offset_s"] >= 7199
    assert abs((await beta.call("GET", "/_mock/clock")).body["offset_s"] - before) < 5

    failing = {"name": "hello-down", "rules": [{"match": {"operation": "hello"},
                                                "then": {"respond": {"status": 503, "details": "down"}}}]}
    assert (await alpha.call("POST", "/_mock/scenarios", json=failing)).status == 201
    assert (await alpha.call("GET", "/api/v1/hello")).status == 503
    assert (await beta.call("GET", "/api/v1/hello")).status == 200
    assert (await sandbox.call("GET", "/api/v1/hello")).status == 200
    for client, expected in ((alpha, True), (beta, False), (sandbox, False)):
        names = {s["name"] for s in (await client.call("GET", "/_mock/scenarios")).body["scenarios"]}
        assert ("hello-down" in names) is expected


async def test_revocation_urls_carry_the_namespace(sandbox):
    """Validators send no header: a namespace's certificates point at its own CRL and OCSP."""
    alpha = sandbox.in_namespace("qa.team_1")
    pk, _ = await signed_flow(alpha, "Revoked")
    entry = (await alpha.call("GET", f"/api/v1/request/{pk}")).body["details"]["certificate_set"][0]
    cert = x509.load_der_x509_certificate(base64.b64decode(entry["data"]))
    [point] = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    [responder] = [d.access_location.value
                   for d in cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
                   if d.access_method == AuthorityInformationAccessOID.OCSP]
    crl_url = URL(point.full_name[0].value)
    assert crl_url.query["namespace"] == "qa.team_1" and URL(responder).query["namespace"] == "qa.team_1"

    assert (await alpha.call("POST", "/_mock/pki/revoke", json={"request": pk})).status == 200
    # Plain GETs with no header, as a validator fetches them.
    async with sandbox.http.get(crl_url.path_qs) as response:
        namespaced = x509.load_der_x509_crl(await response.read())
    async with sandbox.http.get("/_mock/pki/crl") as response:
        default = x509.load_der_x509_crl(await response.read())
    assert namespaced.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    assert default.get_revoked_certificate_by_serial_number(cert.serial_number) is None


async def test_videoid_link_page_finds_its_namespace_without_a_header(sandbox):
    alpha = sandbox.in_namespace("video")
    created = await create_videoid(alpha, EIDAS)
    path = URL(created["videoid_link"]).path
    page = await sandbox.call("GET", path)  # a browser: no namespace header
    assert page.status == 200 and str(created["request_pk"]) in page.raw.decode()
    async with sandbox.http.post(f"{path}/complete", allow_redirects=False) as response:
        assert response.status == 303
    assert (await request_detail(alpha, created["request_pk"]))["status"] == "VIDEOREVIEW"


async def test_bad_namespaces_are_refused_in_the_envelope(make_client):
    sandbox = await make_client(max_namespaces=3)
    for bad in ("../etc", "a" * 65, "with space", "-leading"):
        answer = await sandbox.call("GET", "/api/v1/hello", headers={"X-Mock-Namespace": bad})
        assert answer.status == 400, bad
        assert answer.body["status"] == "400 Bad Request" and "X-Mock-Namespace" in answer.body["details"]
    for name in ("one", "two"):
        assert (await sandbox.call("GET", "/api/v1/hello", headers={"X-Mock-Namespace": name})).status == 200
    answer = await sandbox.call("GET", "/api/v1/hello", headers={"X-Mock-Namespace": "three"})
    assert answer.status == 400 and "too many namespaces (limit 3)" in answer.body["details"]
    assert (await sandbox.call("GET", "/api/v1/hello", headers={"X-Mock-Namespace": "one"})).status == 200


async def test_no_two_namespaces_hand_out_the_same_pk(make_client):
    """Namespace w274's first pk and w175's second were both 40361: pks now come from blocks each
    namespace owns, and the same namespace replays the same pks on another server."""
    sandbox = await make_client(max_namespaces=400)
    pks: dict[int, str] = {}
    first: dict[str, int] = {}
    for index in range(300):
        namespace = f"w{index}"
        for _ in range(2):
            pk = await sandbox.in_namespace(namespace).create_request()
            assert pk not in pks, f"{namespace} and {pks[pk]} both handed out {pk}"
            assert 0 < pk < 2**31
            pks[pk] = namespace
            first.setdefault(namespace, pk)
    again = await make_client(max_namespaces=400)
    for namespace in ("w274", "w175", "w0"):
        assert await again.in_namespace(namespace).create_request() == first[namespace]
    default = await sandbox.create_request()
    assert 10_000 <= default <= 60_000 and default not in pks  # the default namespace's, as before


def test_a_namespace_whose_block_is_taken_goes_on_in_a_free_one():
    space = PkSpace()
    start = PkSpace.first_pk(False, 42, 12_345)
    assert space.allocate("a", start) == start
    moved = space.allocate("b", start + 1)  # b's seed put it in a's block
    assert moved // BLOCK_SIZE != start // BLOCK_SIZE and moved % BLOCK_SIZE == 0
    assert space.allocate("a", start + 1) == start + 1
    assert space.allocate("b", moved + 1) == moved + 1


async def namespace_names(sandbox: SandboxClient) -> list[str]:
    return [entry["namespace"] for entry in (await sandbox.call("GET", "/_mock/namespaces")).body["namespaces"]]


async def test_a_deleted_namespace_is_gone_and_its_name_starts_afresh(sandbox):
    gone, kept = sandbox.in_namespace("gone"), sandbox.in_namespace("kept")
    first, _ = await signed_flow(gone, "Gone")
    await gone.create_request()
    kept_pk = await kept.create_request()
    assert (await gone.call("POST", "/_mock/clock", json={"advance_s": 3600})).status == 200
    scenario = ("name: refuse-signing\nrules:\n  - match: {operation: sign}\n"
                "    then: {error: sign.400.documents_refused}\n")
    assert (await gone.call("POST", "/_mock/scenarios", data=scenario)).status == 201

    answer = await sandbox.call("DELETE", "/_mock/namespaces/gone")
    assert answer.status == 200 and answer.body == {"status": "deleted", "namespace": "gone", "requests": 2}
    assert await namespace_names(sandbox) == ["", "kept"]
    assert await namespace_names(gone) == ["", "kept"], "naming a namespace to list them does not create it"
    assert await pks(kept) == {kept_pk}, "the other namespaces keep what they hold"

    again = await sandbox.call("DELETE", "/_mock/namespaces/gone")
    assert again.status == 404 and again.body["error"] == "namespace 'gone' does not exist"
    assert (await gone.call("GET", f"/api/v1/request/{first}")).status == 404
    assert await pks(gone) == set()
    assert (await gone.call("GET", "/_mock/clock")).body["offset_s"] == 0
    assert [s["name"] for s in (await gone.call("GET", "/_mock/scenarios")).body["scenarios"]] == ["magic-values"]
    assert await gone.create_request() == first, "a namespace made again replays its seed from the start"


async def test_deleting_a_namespace_stops_its_background_work_at_once(make_client, start_receiver):
    """An asynchronous signing under way and a webhook waiting 10 s for its retry end with the
    namespace: the delete answers at once (not after a drain), and the receiver hears nothing more."""
    receiver = await start_receiver()
    sandbox = await make_client(webhook_retry_scale=10)
    receiver.script.append(500)
    gone = sandbox.in_namespace("busy")
    pk = await gone.create_request(useasync="true", callback=receiver.url)
    pdf = blank_pdf(40)
    assert (await gone.upload(pk, *[("file", f"doc{i}.pdf", pdf) for i in range(10)])).status == 200
    await receiver.wait_for(1)  # CREATED, refused: its retry waits
    assert (await gone.sign(pk, {"secret": await gone.otp(pk)})).status == 200
    assert (await gone.call("GET", f"/api/v1/async/status/{pk}")).body["details"] == "signing"

    started = time.monotonic()
    answer = await sandbox.call("DELETE", "/_mock/namespaces/busy")
    assert answer.status == 200 and answer.body["requests"] == 1
    assert time.monotonic() - started < 2
    heard = len(receiver.deliveries)
    await asyncio.sleep(3)
    assert len(receiver.deliveries) == heard == 1, [d.event for d in receiver.deliveries]
    assert await namespace_names(sandbox) == [""]


async def test_a_deleted_namespace_ends_the_event_streams_that_follow_it(sandbox):
    gone = sandbox.in_namespace("watched")
    async with EventReader(gone) as reader:
        pk = await gone.create_request()
        await reader.until(lambda events: any(data.get("pk") == pk for _, data in events))
        assert (await sandbox.call("DELETE", "/_mock/namespaces/watched")).status == 200
        events = await reader.until(lambda events: events[-1][0] == "end")
    assert events[-1] == ("end", {"reason": "namespace 'watched' was deleted"})
    assert (await sandbox.call("GET", "/_mock/health")).body["event_streams"] == 0


async def test_the_control_client_deletes_its_own_namespace(sandbox):
    gone = sandbox.in_namespace("client-side")
    await gone.create_request()
    control = ControlClient(str(sandbox.http.make_url("")), namespace="client-side")
    assert await asyncio.to_thread(control.delete_namespace) == 1
    assert await namespace_names(sandbox) == [""]
    with pytest.raises(ControlError) as missing:
        await asyncio.to_thread(control.delete_namespace, "client-side")
    assert missing.value.status == 404, "naming the namespace to delete it did not create it"
    with pytest.raises(ControlError) as default:
        await asyncio.to_thread(ControlClient(str(sandbox.http.make_url(""))).delete_namespace)
    assert default.value.status == 400 and "reset it instead" in str(default.value)
