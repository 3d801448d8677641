"""A real headless Chromium on the dashboard and the VideoID link page, while a client app drives the sandbox
over HTTP: what a QA person would see and click (a flow, a webhook replay, a VideoID; signing in with the
admin token, moving the clock past an OTP, loading a scenario, resetting, deleting a namespace).
Screenshots go to test-artifacts/.

Debian's Chromium (``apt-get install chromium``) driven by Playwright; no ``playwright install``. Without
/usr/bin/chromium the test skips, unless the CI environment variable is set: CI must run it.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.test_videoid import EIDAS, create_videoid

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
VIEWPORT = {"width": 1366, "height": 768}  # a laptop screen


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} not found (apt-get install chromium)"
        if "CI" in os.environ:
            pytest.fail(f"{reason}: CI must run the browser test")
        pytest.skip(reason)
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield launched
        await launched.close()


async def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=ARTIFACTS / name, full_page=True)


async def test_a_person_watches_a_classic_flow_replays_a_webhook_and_completes_a_videoid(
        start_receiver, make_client, browser):
    receiver = await start_receiver()
    sandbox = await make_client(ra_webhooks=(("9999", receiver.url),))
    base = f"http://127.0.0.1:{sandbox.http.port}"
    page = await browser.new_page(viewport=VIEWPORT)
    fetched: list[str] = []
    page.on("request", lambda request: fetched.append(request.url))

    # The dashboard, open before anything happens (auto-refresh off: the test reloads when it wants).
    await page.goto(f"{base}/_mock/?refresh=0")
    await expect(page.get_by_text("No requests yet.")).to_be_visible()

    # A client app creates a request, uploads a document and asks for an OTP, over HTTP.
    pk = await sandbox.create_request()
    uid = await sandbox.upload_pdf(pk)
    assert (await sandbox.call("POST", f"/api/v1/otp/{pk}")).status == 200
    await page.reload()
    await expect(page.get_by_role("row", name=re.compile(rf"^{pk} Ana López Ruiz ENROLLREADY"))).to_be_visible()
    await screenshot(page, "dashboard-overview.png")

    # The person opens the request and reads the OTP from the page; the client signs with it.
    await page.get_by_role("link", name=str(pk), exact=True).first.click()
    await expect(page.get_by_role("heading", name=f"Request {pk}")).to_be_visible()
    otp = (await page.locator("#sms ~ table .otp").first.inner_text()).strip()
    assert re.fullmatch(r"[0-9]{6}", otp), otp
    signed = await sandbox.sign(pk, {"secret": otp})
    assert signed.status == 200, signed.body
    await receiver.wait_for(3)
    await page.reload()
    history = page.locator("#history + table tbody tr")
    await expect(history).to_have_count(3)
    for row, (status, previous) in enumerate([("CREATED", "-"), ("ENROLLREADY", "CREATED"),
                                              ("ISSUED", "ENROLLREADY")]):
        await expect(history.nth(row).locator("td").nth(1)).to_have_text(status)
        await expect(history.nth(row).locator("td").nth(2)).to_have_text(previous)
    await expect(page.get_by_role("link", name="signed", exact=True)).to_have_attribute(
        "href", f"/api/v1/document/{pk}/signed/{uid}")
    await expect(page.locator(".event h3 .badge")).to_have_text(["delivered"] * 3)
    await screenshot(page, "dashboard-request-history.png")

    # Replay: the first event goes to the receiver again, and the page comes back saying so.
    first = page.locator(".event").first
    event_id = await first.get_attribute("id")
    await first.get_by_role("button", name="Replay").click()
    await expect(page.locator(".message")).to_have_text(f"Webhook {event_id} sent again: HTTP 200.")
    assert page.url == f"{base}/_mock/dashboard/requests/{pk}?refresh=0&replayed={event_id}#webhooks"
    replayed = (await receiver.wait_for(4))[3]
    assert replayed.id == event_id and replayed.status == "CREATED"
    await expect(page.locator(f"#{event_id} tbody tr")).to_have_count(2)
    await screenshot(page, "dashboard-webhook-replayed.png")

    # VideoID: from the dashboard to the link page, where the person completes the identification.
    created = await create_videoid(sandbox, EIDAS)
    video_pk = created["request_pk"]
    await page.goto(f"{base}/_mock/?refresh=0")
    await page.get_by_role("link", name=str(video_pk), exact=True).first.click()
    await page.locator("#videoid + table a").click()
    await expect(page.get_by_role("heading", name="Video identification")).to_be_visible()
    await page.get_by_role("button", name="Complete identification").click()
    await expect(page.locator(".message")).to_have_text("Identification recorded.")
    await expect(page.get_by_role("row", name="Status VIDEOREVIEW")).to_be_visible()
    await screenshot(page, "videoid-completed.png")
    await page.goto(f"{base}/_mock/dashboard/requests/{video_pk}?refresh=0")
    await expect(page.locator("#history + table tbody tr td:nth-child(2)")).to_have_text(
        ["VIDEOPENDING", "VIDEOREVIEW"])

    assert all(url.startswith(base + "/") for url in fetched), "no external assets: " + repr(fetched)


async def test_a_person_signs_in_expires_an_otp_loads_a_scenario_and_resets(make_client, browser):
    sandbox = await make_client(admin_token="qa-secret", otp_ttl_seconds=60)
    base = f"http://127.0.0.1:{sandbox.http.port}"
    page = await browser.new_page(viewport=VIEWPORT)

    # The sandbox has an admin token: the dashboard asks for it, and a wrong one is refused.
    await page.goto(f"{base}/_mock/?refresh=0")
    await page.get_by_label("Admin token").fill("not-it")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator(".bad")).to_have_text("That is not this sandbox's admin token.")
    await page.get_by_label("Admin token").fill("qa-secret")
    await screenshot(page, "dashboard-sign-in.png")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Controls")).to_be_visible()
    assert page.url == f"{base}/_mock/?refresh=0"

    # A client app asks for an OTP; the person moves the clock past its 60 s and the code no longer signs.
    pk = await sandbox.create_request()
    await sandbox.upload_pdf(pk)
    assert (await sandbox.call("POST", f"/api/v1/otp/{pk}")).status == 200
    await page.reload()
    code = (await page.locator("#sms ~ table .otp").first.inner_text()).strip()
    await page.get_by_label("Advance by").fill("61")
    await page.get_by_role("button", name="Advance").click()
    await expect(page.locator(".message")).to_contain_text("The clock now reads")
    await expect(page.locator("#clock + table td").nth(1)).to_have_text("+61 s")
    refused = await sandbox.sign(pk, {"secret": code})
    assert refused.status == 403 and refused.body["details"] == "Confirmation Code invalid", refused.body
    await screenshot(page, "dashboard-clock-moved.png")

    # A scenario of the library, loaded from the page, then shown with its rules.
    await page.get_by_label("From the library").select_option("sms-outage")
    await page.get_by_role("button", name="Load", exact=True).click()
    await expect(page.locator(".message")).to_have_text("Scenario sms-outage loaded.")
    await expect(page.get_by_role("row", name=re.compile(r"^sms-outage "))).to_be_visible()
    await screenshot(page, "dashboard-scenario-loaded.png")

    # Reset: the request, the clock move and the scenario are gone.
    await page.get_by_role("button", name="Reset this namespace").click()
    await expect(page.locator(".message")).to_have_text("The namespace was reset.")
    await expect(page.get_by_text("No requests yet.")).to_be_visible()
    await expect(page.locator("#clock + table td").nth(1)).to_have_text("+0 s")
    await expect(page.get_by_role("row", name=re.compile(r"^sms-outage "))).to_have_count(0)
    await screenshot(page, "dashboard-reset.png")

    # A QA worker's namespace, opened from the header and deleted once its name is typed.
    await sandbox.in_namespace("qa-case").create_request()
    await page.reload()
    await page.get_by_role("link", name="qa-case (1)").click()
    await page.get_by_label("type its name").fill("qa-case")
    await screenshot(page, "dashboard-namespace-to-delete.png")
    await page.get_by_role("button", name="Delete namespace").click()
    await expect(page.locator(".message")).to_have_text("Namespace qa-case was deleted with its 1 request(s).")
    await expect(page.get_by_role("link", name="qa-case (1)")).to_have_count(0)
    listed = await sandbox.call("GET", "/_mock/namespaces", headers={"Authorization": "Bearer qa-secret"})
    assert [n["namespace"] for n in listed.body["namespaces"]] == [""], listed.body


async def test_the_overview_follows_live_events_without_reloading(make_client, browser):
    sandbox = await make_client()
    base = f"http://127.0.0.1:{sandbox.http.port}"
    page = await browser.new_page(viewport=VIEWPORT)
    await page.goto(f"{base}/_mock/?refresh=30")  # the page alone would reload in 30 s
    await expect(page.get_by_text("No requests yet.")).to_be_visible()
    await page.evaluate("window.loadedOnce = true")

    pk = await sandbox.create_request()
    row = page.get_by_role("row", name=re.compile(rf"^{pk} Ana López Ruiz "))
    await expect(row).to_be_visible(timeout=5000)
    assert await page.locator("#sms ~ table .otp").count() == 0
    assert (await sandbox.call("POST", f"/api/v1/otp/{pk}")).status == 200
    await expect(page.locator("#sms ~ table .otp")).to_have_count(1, timeout=5000)
    assert await page.evaluate("window.loadedOnce") is True, "the page was redrawn, not reloaded"
    await screenshot(page, "dashboard-live.png")
