"""The dashboard drives the sandbox: its buttons and forms, posted as a browser posts them (the form's
own action URL, urlencoded or multipart, redirects followed), reset, move the clock, load and unload
scenarios and flush webhooks, in the page's namespace, behind the admin token; refusals are HTML
pages that say why and change nothing."""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta

import aiohttp

from tests.helpers import SandboxClient
from tests.test_dashboard import NO_REFRESH, page, section, text_of
from tests.test_requests_otp_sign import INVALID_CODE, assert_answer
from tests.test_webhooks import FLOW, all_delivered, create_async, statuses, wait_log

FORM = re.compile(r'<form method="post" action="([^"]+)"[^>]*>(.*?)</form>', re.S)
SCENARIO = """\
name: sign-refused-from-a-file
rules:
  - match: {operation: sign}
    then: {error: sign.400.documents_refused}
"""


def forms(markup: str) -> dict[str, str]:
    """Each form's button label (or its first field's name) → its action URL, unescaped."""
    found = {}
    for action, inner in FORM.findall(markup):
        label = re.search(r"<button>([^<]*)</button>", inner)
        found[html.unescape(label.group(1)) if label else inner] = html.unescape(action)
    return found


async def post_form(sandbox: SandboxClient, action: str, data: object = None) -> tuple[int, str, str]:
    """POST ``data`` to ``action`` as a browser does: the status, then for a 303 the Location and the
    page it leads to (for a refusal, its own page)."""
    async with sandbox.http.post(action, data=data, allow_redirects=False) as response:
        if response.status != 303:
            return response.status, "", await response.text()
        location = response.headers["Location"]
    assert location.startswith("/_mock/?"), location
    return 200, location, await page(sandbox, location.partition("#")[0])


async def loaded(sandbox: SandboxClient) -> list[dict]:
    """The scenarios loaded besides the built-in magic values."""
    scenarios = (await sandbox.call("GET", "/_mock/scenarios")).body["scenarios"]
    return [s for s in scenarios if s["name"] != "magic-values"]


async def overview(sandbox: SandboxClient, namespace: str | None = None) -> str:
    query = NO_REFRESH + (f"&namespace={namespace}" if namespace else "")
    return await page(sandbox, "/_mock/" + query)


async def test_reset_empties_the_namespace_and_says_so(sandbox):
    await sandbox.create_request()
    action = forms(await overview(sandbox))["Reset this namespace"]
    status, url, markup = await post_form(sandbox, action)
    assert status == 200 and url.endswith("#controls")
    assert "The namespace was reset." in text_of(section(markup, "controls"))
    assert "Requests (0)" in text_of(markup)
    assert (await sandbox.call("GET", "/_mock/requests")).body["requests"] == []


async def test_the_clock_form_expires_an_otp(make_client):
    sandbox = await make_client(otp_ttl_seconds=60)
    pk = await sandbox.create_request()
    code = await sandbox.otp(pk)
    before = datetime.fromisoformat((await sandbox.call("GET", "/_mock/clock")).body["now"])
    action = forms(await overview(sandbox))["Advance"]
    status, url, markup = await post_form(sandbox, action, {"advance_s": "61"})
    assert status == 200 and url.endswith("#clock")
    clock = (await sandbox.call("GET", "/_mock/clock")).body
    assert clock["offset_s"] == 61
    assert f"The clock now reads {datetime.fromisoformat(clock['now']):%Y-%m-%d %H:%M}" in text_of(markup)
    assert datetime.fromisoformat(clock["now"]) - before >= timedelta(seconds=61)
    assert_answer(await sandbox.sign(pk, {"secret": code}), 403, INVALID_CODE)


async def test_the_clock_form_sets_a_time_and_refuses_nonsense_without_moving(sandbox):
    action = forms(await overview(sandbox))["Set"]
    target = (datetime.now().astimezone() + timedelta(days=3)).replace(microsecond=0)
    status, _, _ = await post_form(sandbox, action, {"set": target.isoformat()})
    assert status == 200
    moved = (await sandbox.call("GET", "/_mock/clock")).body
    assert abs(datetime.fromisoformat(moved["now"]) - target) < timedelta(seconds=5)
    for fields, reason in (({"advance_s": "soon"}, "advance_s must be a number of seconds"),
                           ({"set": "next tuesday"}, "set must be an ISO 8601 time"),
                           ({}, "give")):
        status, _, markup = await post_form(sandbox, action, fields)
        assert status == 400 and reason in text_of(markup), (fields, text_of(markup))
        assert "Back to the dashboard" in text_of(markup)
        assert (await sandbox.call("GET", "/_mock/clock")).body["offset_s"] == moved["offset_s"]


async def test_a_library_scenario_loads_fires_and_unloads(sandbox):
    markup = await overview(sandbox)
    assert "<option>sms-outage</option>" in section(markup, "scenarios")
    status, url, markup = await post_form(sandbox, forms(markup)["Load"], {"library": "sms-outage"})
    assert status == 200 and url.endswith("#scenarios")
    assert "Scenario sms-outage loaded." in text_of(markup)
    assert [(s["name"], s["source"]) for s in await loaded(sandbox)] == [
        ("sms-outage", "dashboard: library sms-outage")]
    pk = await sandbox.create_request()
    assert (await sandbox.call("POST", f"/api/v1/otp/{pk}")).status == 200
    assert (await sandbox.call("GET", f"/_mock/sms?request={pk}")).body["messages"] == []
    unload = forms(section(markup, "scenarios"))["Unload"]
    status, _, markup = await post_form(sandbox, unload, {"name": "sms-outage"})
    assert status == 200 and "Scenario sms-outage unloaded." in text_of(markup)
    assert await loaded(sandbox) == []


async def test_an_unknown_library_name_or_scenario_is_a_404_page(sandbox):
    actions = forms(await overview(sandbox))
    status, _, markup = await post_form(sandbox, actions["Load"], {"library": "no-such-thing"})
    assert status == 404 and "the library has no scenario 'no-such-thing'" in text_of(markup)
    status, _, markup = await post_form(sandbox, "/_mock/dashboard/scenarios/unload", {"name": "ghost"})
    assert status == 404 and "no scenario named 'ghost'" in text_of(markup)
    assert await loaded(sandbox) == []


async def test_a_scenario_file_uploads_and_a_broken_one_changes_nothing(sandbox):
    action = forms(await overview(sandbox))["Load file"]
    form = aiohttp.FormData()
    form.add_field("file", SCENARIO.encode(), filename="refuse.yaml", content_type="application/yaml")
    status, _, markup = await post_form(sandbox, action, form)
    assert status == 200, text_of(markup)
    assert "Scenario sign-refused-from-a-file loaded." in text_of(markup)
    pk = await sandbox.create_request()
    assert_answer(await sandbox.sign(pk, {"secret": await sandbox.otp(pk)}), 400)
    broken = aiohttp.FormData()
    broken.add_field("file", b"name: [unclosed", filename="broken.yaml", content_type="application/yaml")
    status, _, markup = await post_form(sandbox, action, broken)
    assert status == 400 and "broken.yaml" in text_of(markup)
    assert [s["name"] for s in await loaded(sandbox)] == ["sign-refused-from-a-file"]


async def test_flush_sends_waiting_retries_now(receiver, make_client):
    sandbox = await make_client(webhook_retry_scale=10)  # the first retry would wait 10 s
    receiver.script.append(500)
    pk = await create_async(sandbox, receiver.url)
    await wait_log(sandbox, pk, lambda log: len(log) == 2 and bool(log[0]["attempts"]))
    first = (await sandbox.call("GET", f"/_mock/webhooks?request={pk}")).body["webhooks"][0]
    due = datetime.fromisoformat(first["next_attempt_at"])
    tried = datetime.fromisoformat(first["attempts"][0]["at"])
    assert timedelta(seconds=9) <= due - tried <= timedelta(seconds=11), (tried, due)
    markup = await overview(sandbox)
    row = re.search(rf"<tr><td>[^<]*</td><td><code>{first['id']}</code>.*?</tr>", markup).group(0)
    assert text_of(row).endswith(f"HTTP 500 {due:%Y-%m-%d %H:%M:%S}+00:00"), text_of(row)
    action = forms(markup)["Deliver pending events now"]
    status, url, markup = await post_form(sandbox, action)
    assert status == 200 and url.endswith("#webhooks")
    assert "(2 event(s) pending)" in text_of(markup)
    deliveries = await receiver.wait_for(3, timeout=3)
    assert statuses(deliveries) == [FLOW[0], FLOW[0], FLOW[1]]
    await wait_log(sandbox, pk, all_delivered)
    log = (await sandbox.call("GET", f"/_mock/webhooks?request={pk}")).body["webhooks"]
    assert [event["next_attempt_at"] for event in log] == [None, None]


async def test_actions_touch_only_the_page_namespace(sandbox):
    await sandbox.create_request()
    markup = await overview(sandbox, "qa")
    actions = forms(markup)
    assert "namespace=qa" in actions["Reset this namespace"]
    status, url, _ = await post_form(sandbox, actions["Advance"], {"advance_s": "30"})
    assert status == 200 and "namespace=qa" in url
    await post_form(sandbox, actions["Reset this namespace"])
    assert (await sandbox.call("GET", "/_mock/clock?namespace=qa")).body["offset_s"] == 0
    assert (await sandbox.call("GET", "/_mock/clock")).body["offset_s"] == 0
    await post_form(sandbox, actions["Advance"], {"advance_s": "30"})
    assert (await sandbox.call("GET", "/_mock/clock?namespace=qa")).body["offset_s"] == 30
    assert (await sandbox.call("GET", "/_mock/clock")).body["offset_s"] == 0
    assert len((await sandbox.call("GET", "/_mock/requests")).body["requests"]) == 1


async def test_the_admin_token_guards_every_action(make_client):
    sandbox = await make_client(admin_token="s3cret")
    for action, data in (("/_mock/dashboard/reset", None), ("/_mock/dashboard/clock", {"advance_s": "5"}),
                         ("/_mock/dashboard/scenarios/load", {"library": "sms-outage"}),
                         ("/_mock/dashboard/scenarios/unload", {"name": "x"}),
                         ("/_mock/dashboard/webhooks/flush", None)):
        assert (await sandbox.call("POST", action, data=data)).status == 401, action
        wrong = await sandbox.call("POST", action, data=data, headers={"Authorization": "Bearer nope"})
        assert wrong.status == 403, action
    right = await sandbox.call("POST", "/_mock/dashboard/clock", data={"advance_s": "5"},
                               headers={"Authorization": "Bearer s3cret"})
    assert right.status == 200 and right.content_type == "text/html"
    assert (await sandbox.call("GET", "/_mock/clock", headers={"Authorization": "Bearer s3cret"})
            ).body["offset_s"] == 5


async def test_with_an_admin_token_a_browser_signs_in_and_the_cookie_opens_the_dashboard(make_client):
    sandbox = await make_client(admin_token="s3cret")
    answer = await sandbox.call("GET", "/_mock/?namespace=qa")
    assert answer.status == 401 and answer.content_type == "text/html"
    markup = answer.raw.decode()
    assert 'type="password" name="token"' in markup
    action = forms(markup)["Sign in"]
    assert action == "/_mock/dashboard/sign-in"
    assert 'name="next" value="/_mock/?namespace=qa"' in markup
    json_client = await sandbox.call("GET", "/_mock/requests")
    assert json_client.status == 401 and json_client.body["status"] == 401  # clients keep the JSON answer

    async with sandbox.http.post(action, data={"token": "nope", "next": "/_mock/"},
                                 allow_redirects=False) as refused:
        assert refused.status == 403 and "not this sandbox's admin token" in text_of(await refused.text())
        assert "Set-Cookie" not in refused.headers
    assert (await sandbox.call("GET", "/_mock/")).status == 401

    async with sandbox.http.post(action, data={"token": "s3cret", "next": "/_mock/?namespace=qa"},
                                 allow_redirects=False) as signed_in:
        assert signed_in.status == 303 and signed_in.headers["Location"] == "/_mock/?namespace=qa"
        cookie = signed_in.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/_mock" in cookie
    assert "s3cret" not in cookie
    assert (await sandbox.call("GET", "/_mock/?namespace=qa")).status == 200
    assert (await sandbox.call("GET", "/_mock/pki/ca.pem")).status == 200
    status, _, markup = await post_form(sandbox, forms(await overview(sandbox))["Advance"], {"advance_s": "7"})
    assert status == 200 and "The clock now reads" in text_of(markup)
    assert (await sandbox.call("GET", "/_mock/clock")).body["offset_s"] == 7


async def test_sign_in_only_sends_the_browser_back_into_the_dashboard(make_client):
    sandbox = await make_client(admin_token="s3cret")
    for target in ("https://elsewhere.example/", "//elsewhere.example/_mock/", "/api/v1/hello", ""):
        async with sandbox.http.post("/_mock/dashboard/sign-in", data={"token": "s3cret", "next": target},
                                     allow_redirects=False) as answer:
            assert answer.status == 303 and answer.headers["Location"] == "/_mock/", target


def request_rows(markup: str) -> list[str]:
    """The pks the overview's requests table lists, in order."""
    return re.findall(r'<tr><td><a href="/_mock/dashboard/requests/(\d+)[?"]', section(markup, "requests"))


async def test_requests_are_searched_and_paged_newest_first(sandbox):
    surnames = ["Zubizarreta" if i in (3, 40) else f"Gen{i}" for i in range(52)]
    pks = [await sandbox.create_request(surname_1=surname) for surname in surnames]
    markup = await overview(sandbox)
    assert "Requests (52)" in text_of(markup)
    assert request_rows(markup) == [str(pk) for pk in reversed(pks)][:50]
    assert "Page 1 of 2" in text_of(markup)
    older = html.unescape(re.search(r'<a href="([^"]+)">Older</a>', markup).group(1))
    second = await page(sandbox, older.partition("#")[0])
    assert request_rows(second) == [str(pks[1]), str(pks[0])]
    assert "Page 2 of 2" in text_of(second) and ">Newer</a>" in second

    found = await page(sandbox, "/_mock/?refresh=30&q=zubiZARRETA")
    assert "Requests (2 of 52 match)" in text_of(found)
    assert request_rows(found) == [str(pks[40]), str(pks[3])]
    assert 'url=/_mock/?refresh=30&amp;q=zubiZARRETA"' in found  # the refresh keeps the search
    assert request_rows(await page(sandbox, f"/_mock/?refresh=0&q={pks[7]}")) == [str(pks[7])]
    status = (await sandbox.call("GET", f"/_mock/requests/{pks[0]}")).body["status"]
    assert "Requests (52 of 52 match)" in text_of(await page(sandbox, f"/_mock/?refresh=0&q={status.lower()}"))
    assert request_rows(await page(sandbox, "/_mock/?refresh=0&q=issued")) == []
    none = await page(sandbox, "/_mock/?refresh=0&q=%3Cscript%3E")
    assert "No request matches '<script>'." in text_of(none) and "<script>" not in none
    for bad in ("0", "two", "-1"):
        answer = await sandbox.call("GET", f"/_mock/?page={bad}")
        assert answer.status == 400 and answer.body["error"] == "page must be a page number from 1", bad


async def test_pages_follow_the_event_stream_with_javascript_and_reload_without(sandbox):
    live = await page(sandbox, "/_mock/?namespace=qa&refresh=30")
    assert '<noscript><meta http-equiv="refresh" content="30; url=/_mock/?namespace=qa&amp;refresh=30">' in live
    assert 'new EventSource("/_mock/events?namespace=qa")' in live
    still = await page(sandbox, "/_mock/" + NO_REFRESH)
    assert "<script" not in still and "http-equiv" not in still


async def test_without_an_admin_token_the_sign_in_url_leads_straight_on(sandbox):
    for method, kwargs in (("GET", {"params": {"next": "/_mock/?namespace=qa"}}),
                           ("POST", {"data": {"next": "/_mock/?namespace=qa", "token": "anything"}})):
        async with sandbox.http.request(method, "/_mock/dashboard/sign-in", allow_redirects=False, **kwargs) as answer:
            assert answer.status == 303 and answer.headers["Location"] == "/_mock/?namespace=qa", method
            assert "Set-Cookie" not in answer.headers


async def test_a_namespace_is_deleted_from_its_overview_once_its_name_is_typed(sandbox):
    worker = sandbox.in_namespace("qa-case")
    await worker.create_request()
    assert "Delete namespace" not in forms(await overview(sandbox)), "the default namespace has no delete form"
    action = forms(await overview(sandbox, "qa-case"))["Delete namespace"]
    for typed in ({}, {"confirm": "qa"}):
        status, _, markup = await post_form(sandbox, action, typed)
        assert status == 400 and "To delete namespace 'qa-case', type its name." in text_of(markup)
        assert (await worker.call("GET", "/_mock/requests")).body["requests"] != [], "a refusal deletes nothing"
    status, url, markup = await post_form(sandbox, action, {"confirm": "qa-case"})
    assert status == 200 and "namespace=" not in url, "back to the default namespace's overview"
    assert "Namespace qa-case was deleted with its 1 request(s)." in text_of(section(markup, "controls"))
    assert [n["namespace"] for n in (await sandbox.call("GET", "/_mock/namespaces")).body["namespaces"]] == [""]
    refused = action.replace("namespace=qa-case", "namespace=")
    status, _, markup = await post_form(sandbox, refused, {"confirm": ""})
    assert status == 400 and "the default namespace cannot be deleted: reset it instead" in text_of(markup)
