"""The dashboard at /_mock/ over plain HTTP: its pages show the sandbox's state, escape it, replay webhooks,
follow namespaces, answer 404 and 400 as documented, and sit behind the admin token like the control API."""

from __future__ import annotations

import html
import re

from yarl import URL

from tests.helpers import SandboxClient
from tests.receivers import Receiver
from tests.test_openapi import DocumentedClient
from tests.test_videoid import EIDAS, create_videoid

NO_REFRESH = "?refresh=0"
FORM_ACTION = re.compile(r'<form method="post" action="([^"]+)">')
LINK = re.compile(r'<a href="([^"]+)">([^<]*)</a>')


async def page(sandbox: SandboxClient, path: str, status: int = 200) -> str:
    """The HTML at ``path``, checked for its status and content type."""
    answer = await sandbox.call("GET", path)
    assert answer.status == status, (path, answer.status, answer.raw[:300])
    assert answer.content_type == "text/html", (path, answer.content_type)
    return answer.raw.decode()


def text_of(markup: str) -> str:
    """What a reader sees: tags dropped, entities decoded, whitespace collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


def section(markup: str, anchor: str) -> str:
    """From the heading ``id=anchor`` to the next section heading."""
    start = markup.index(f'<h2 id="{anchor}">')
    end = markup.find("<h2", start + 1)
    return markup[start:end if end > 0 else len(markup)]


def without_now(markup: str) -> str:
    """``markup`` without the clock's reading, which moves on between two fetches."""
    return re.sub(r'(<h2 id="clock">Clock</h2>.*?<tbody>\n?<tr><td>)[^<]*', r"\1", markup, count=1, flags=re.S)


def links(markup: str) -> dict[str, str]:
    """Link text → (unescaped) href."""
    return {html.unescape(text): html.unescape(href) for href, text in LINK.findall(markup)}


async def signed_request(sandbox: SandboxClient, receiver: Receiver, **fields: str) -> tuple[int, str, str]:
    """A classic flow to ISSUED with its three webhooks delivered: pk, document uid, OTP."""
    pk = await sandbox.create_request(**fields)
    uid = await sandbox.upload_pdf(pk)
    otp = await sandbox.otp(pk)
    signed = await sandbox.sign(pk, {"secret": otp})
    assert signed.status == 200, signed.body
    await receiver.wait_for(3)
    return pk, uid, otp


async def test_overview_shows_requests_outbox_webhooks_scenarios_clock_and_pki(receiver, make_client):
    sandbox = await make_client(ra_webhooks=(("9999", receiver.url),))
    pk, _, otp = await signed_request(sandbox, receiver)
    await sandbox.call("POST", "/_mock/clock", json={"advance_s": 120})

    overview = await page(sandbox, "/_mock/" + NO_REFRESH)
    assert "http-equiv" not in overview, "refresh=0 turns auto-refresh off"
    requests = text_of(section(overview, "requests"))
    assert f"{pk} Ana López Ruiz ISSUED" in requests
    assert links(section(overview, "requests"))[str(pk)] == f"/_mock/dashboard/requests/{pk}?refresh=0"
    assert otp in text_of(section(overview, "sms"))
    webhook_log = text_of(section(overview, "webhooks"))
    for event in (await sandbox.call("GET", "/_mock/webhooks")).body["webhooks"]:
        assert f"{event['id']} {pk} {event['event']} {receiver.url} delivered 1 HTTP 200" in webhook_log
    assert "magic-values" in text_of(section(overview, "scenarios"))
    assert "+120 s" in text_of(section(overview, "clock"))
    pki = links(section(overview, "pki"))
    assert (pki["ca.pem"], pki["crl"]) == ("/_mock/pki/ca.pem", "/_mock/pki/crl")
    for href in pki.values():
        assert (await sandbox.call("GET", href)).status == 200

    again = await page(sandbox, "/_mock" + NO_REFRESH)
    assert without_now(again) == without_now(overview), "/_mock without the slash is the same page"
    refreshing = await page(sandbox, "/_mock/")
    assert '<meta http-equiv="refresh" content="5; url=/_mock/">' in refreshing
    slower = await page(sandbox, "/_mock/?refresh=30")
    assert '<meta http-equiv="refresh" content="30; url=/_mock/?refresh=30">' in slower


async def test_request_page_shows_history_documents_contract_sms_and_webhooks(receiver, make_client):
    sandbox = await make_client(ra_webhooks=(("9999", receiver.url),))
    pk, uid, otp = await signed_request(sandbox, receiver)

    markup = await page(sandbox, f"/_mock/dashboard/requests/{pk}" + NO_REFRESH)
    history = text_of(section(markup, "history"))
    assert re.search(r"1 CREATED - \S+ \S+ 2 ENROLLREADY CREATED \S+ \S+ 3 ISSUED ENROLLREADY", history), history
    documents = section(markup, "documents")
    downloads = links(documents)
    assert downloads["original"] == f"/api/v1/document/{pk}/original/{uid}"
    assert downloads["signed"] == f"/api/v1/document/{pk}/signed/{uid}"
    assert downloads["signed contract"] == f"/api/v1/document/{pk}/contract"
    for href in downloads.values():
        answer = await sandbox.call("GET", href)
        assert (answer.status, answer.content_type) == (200, "application/pdf"), href
    assert f'<span class="otp">{otp}</span>' in section(markup, "sms")
    events = (await sandbox.call("GET", f"/_mock/webhooks?request={pk}")).body["webhooks"]
    forms = FORM_ACTION.findall(section(markup, "webhooks"))
    assert forms == [f"/_mock/dashboard/webhooks/{e['id']}/replay?refresh=0" for e in events]
    assert "videoid" not in markup


async def test_videoid_request_links_its_identification_page(sandbox):
    created = await create_videoid(sandbox, EIDAS)
    markup = await page(sandbox, f"/_mock/dashboard/requests/{created['request_pk']}")
    link = URL(created["videoid_link"]).path
    assert links(section(markup, "videoid"))[link] == link
    assert "Identification recorded" not in await page(sandbox, link), "the link page answers"


async def test_everything_is_escaped(receiver, make_client):
    sandbox = await make_client(ra_webhooks=(("9999", receiver.url),))
    pk, _, _ = await signed_request(sandbox, receiver, given_name="<script>alert(1)</script>",
                                    surname_1='"><img src=x onerror=alert(2)>')
    for path in ("/_mock/", f"/_mock/dashboard/requests/{pk}"):
        markup = await page(sandbox, path)
        assert "<script>alert" not in markup and "<img" not in markup, path  # the page's own script aside
        assert "&lt;script&gt;alert(1)&lt;/script&gt; &#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in markup, path
    unknown = await page(sandbox, "/_mock/dashboard/requests/<b>1", status=404)
    assert "<b>" not in unknown and "Request &lt;b&gt;1 does not exist" in unknown


async def test_replay_button_sends_the_event_again_and_comes_back(receiver, make_client):
    sandbox = await make_client(ra_webhooks=(("9999", receiver.url),))
    pk, _, _ = await signed_request(sandbox, receiver)
    markup = await page(sandbox, f"/_mock/dashboard/requests/{pk}")
    first = html.unescape(FORM_ACTION.findall(markup)[0])
    event_id = first.split("/")[-2]

    async with sandbox.http.post(first, data={}, allow_redirects=False) as answer:
        assert answer.status == 303
        location = answer.headers["Location"]
    assert location == f"/_mock/dashboard/requests/{pk}?replayed={event_id}#webhooks"
    delivered = await receiver.wait_for(4)
    assert delivered[3].id == event_id and delivered[3].body == delivered[0].body

    back = await page(sandbox, location.split("#")[0])
    assert f"Webhook {event_id} sent again: HTTP 200." in text_of(back)
    assert '<meta http-equiv="refresh" content="5; url=/_mock/dashboard/requests/' f'{pk}">' in back
    event = next(e for e in (await sandbox.call("GET", "/_mock/webhooks")).body["webhooks"] if e["id"] == event_id)
    assert [a["status"] for a in event["attempts"]] == [200, 200]


async def test_namespaces_are_listed_and_followed(sandbox):
    qa = sandbox.in_namespace("qa")
    pk = await qa.create_request(given_name="Quality")
    uid = await qa.upload_pdf(pk)

    default = await page(sandbox, "/_mock/")
    assert "Quality" not in default
    assert links(default)["qa (1)"] == "/_mock/?namespace=qa"
    scoped = await page(sandbox, "/_mock/?namespace=qa")
    assert "Quality" in text_of(section(scoped, "requests"))
    assert links(scoped)["default (0)"] == "/_mock/"
    assert links(section(scoped, "requests"))[str(pk)] == f"/_mock/dashboard/requests/{pk}?namespace=qa"

    await page(sandbox, f"/_mock/dashboard/requests/{pk}", status=404)
    request_page = await page(sandbox, f"/_mock/dashboard/requests/{pk}?namespace=qa")
    # The vendor API reads the namespace from its header only: no browser link to the default namespace.
    documents = section(request_page, "documents")
    assert "/api/v1/document/" not in "".join(links(documents).values())
    assert f"<code>/api/v1/document/{pk}/original/{uid}</code>" in documents
    assert "X-Mock-Namespace: qa" in text_of(documents)


async def test_unknown_things_answer_404_and_bad_parameters_400(sandbox):
    missing = await page(sandbox, "/_mock/dashboard/requests/999999", status=404)
    assert "Request 999999 does not exist" in text_of(missing)
    assert links(missing)["Back to the dashboard"] == "/_mock/"
    for pk in ("abc", "1" * 40, "%C2%B9"):
        await page(sandbox, f"/_mock/dashboard/requests/{pk}", status=404)
    async with sandbox.http.post("/_mock/dashboard/webhooks/msg_nope/replay", allow_redirects=False) as answer:
        assert (answer.status, answer.content_type) == (404, "text/html")
        assert "Webhook event msg_nope does not exist" in text_of(await answer.text())
    for refresh in ("x", "-1", "3601"):
        bad = await sandbox.call("GET", f"/_mock/?refresh={refresh}")
        assert bad.status == 400 and bad.body["error"].startswith("refresh must be"), bad.body


async def test_answers_are_as_documented(receiver, make_client):
    sandbox = await make_client(ra_webhooks=(("9999", receiver.url),))
    pk, _, _ = await signed_request(sandbox, receiver)
    event_id = (await sandbox.call("GET", "/_mock/webhooks")).body["webhooks"][0]["id"]
    call = DocumentedClient(sandbox)
    await call("GET", "/_mock", 200)
    await call("GET", "/_mock", 200, "/_mock/?namespace=other")
    await call("GET", "/_mock", 400, "/_mock?refresh=never")
    await call("GET", "/_mock/dashboard/requests/{pk}", 200, f"/_mock/dashboard/requests/{pk}")
    await call("GET", "/_mock/dashboard/requests/{pk}", 404, "/_mock/dashboard/requests/1")
    await call("POST", "/_mock/dashboard/webhooks/{id}/replay", 303, f"/_mock/dashboard/webhooks/{event_id}/replay")
    await call("POST", "/_mock/dashboard/webhooks/{id}/replay", 404, "/_mock/dashboard/webhooks/nope/replay")


async def test_the_admin_token_guards_the_dashboard(make_client):
    sandbox = await make_client(admin_token="s3cret")
    pk = await sandbox.create_request()
    paths = [("GET", "/_mock"), ("GET", "/_mock/"), ("GET", f"/_mock/dashboard/requests/{pk}"),
             ("POST", "/_mock/dashboard/webhooks/msg_x/replay")]
    for method, path in paths:
        assert (await sandbox.call(method, path)).status == 401, path
        wrong = await sandbox.call(method, path, headers={"Authorization": "Bearer nope"})
        assert wrong.status == 403 and "admin token" in wrong.body["error"], path
    right = await sandbox.call("GET", f"/_mock/dashboard/requests/{pk}", headers={"Authorization": "Bearer s3cret"})
    assert right.status == 200 and right.content_type == "text/html"


async def test_no_dashboard_without_the_control_api(make_client):
    sandbox = await make_client(control_api=False)
    for path in ("/_mock", "/_mock/", "/_mock/dashboard/requests/1"):
        assert (await sandbox.call("GET", path)).status == 404, path
