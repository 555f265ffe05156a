"""An admin's session, in a real browser: sign in, create a route (an invalid field is
refused inline, then fixed and saved), watch a streamed request fall back mid-stream
appear live with its switch marked, open it, rehearse a failure in the playground.
Each page is photographed at 1280x800 into ``screenshots/``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from openai import AsyncOpenAI

from tests.browser.conftest import CLIENT_KEY, ENV, Browser, Serve

CONFIG: dict[str, Any] = {
    "server": {"reload_poll_s": 3600, "request_log_flush_s": 0.05},
    "providers": {
        "mock": {"kind": "mock", "tokens": 30, "token_latency_ms": 2},
        "flaky": {"kind": "mock", "tokens": 30, "token_latency_ms": 2, "cut_after": 6},
    },
    "routes": {
        "chat": {"targets": ["mock/echo"]},
        "resilient": {
            "targets": ["flaky/demo", "mock/backup"],
            "stream_fallback_mode": "prefill",
            "max_retries": 0,
            "budget": {"requests_per_hour": 100, "tokens_per_day": 100000},
        },
    },
}


async def _until(check: Any, what: str, deadline_s: float = 10.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def test_an_admin_edits_a_route_and_watches_a_fallback_live(
    serve: Serve, browser: Browser
) -> None:
    gateway = await serve(config=CONFIG, env=ENV)
    page = browser.page

    # Sign in.
    await page.goto(f"{gateway.base}/admin/login")
    await browser.shot("01-sign-in")
    await browser.sign_in(gateway)
    await browser.shot("02-overview-empty")

    # Create a route with an invalid field: the error shows beside it, nothing typed is lost.
    await page.goto(f"{gateway.base}/admin/routes")
    await browser.shot("03-routes")
    await page.click("#new-route")
    await page.wait_for_selector("#route-form")
    await page.fill("#field-name", "summarise")
    await page.fill("#field-targets-0", "mock/summary")
    await page.fill("#field-max_retries", "99")
    await page.click("#save-route")
    error = page.locator("#error-max_retries")
    await error.wait_for()
    assert "10" in (await error.inner_text())  # the schema's bound, in its own words
    assert await page.input_value("#field-name") == "summarise"
    assert await page.input_value("#field-targets-0") == "mock/summary"
    await browser.shot("04-route-form-invalid")

    # Fix it and save: the new route is listed and served.
    await page.fill("#field-max_retries", "3")
    await page.click("#save-route")
    await page.wait_for_selector("tr#route-summarise")
    assert (await gateway.answer("summarise"))[:2] == (200, "mock/summary")

    # Watch the requests page while a streamed request falls back mid-stream.
    await page.goto(f"{gateway.base}/admin/requests")
    feed = gateway.app.state.live_feed
    await _until(lambda: feed.subscribers >= 1, "the page to connect to the live feed")

    client = AsyncOpenAI(base_url=f"{gateway.base}/v1", api_key=CLIENT_KEY, max_retries=0)
    text = ""
    stream = await client.chat.completions.create(
        model="resilient", messages=[{"role": "user", "content": "tell me"}], stream=True
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
    await client.close()
    assert len(text.split()) == 30  # one answer, continued where the cut stopped

    row = page.locator("#requests-body tr.request[data-status=ok]").filter(has_text="resilient")
    await row.wait_for()
    switch = row.locator(".switch")
    assert "flaky/demo" in await switch.inner_text()
    assert "mock/backup" in await switch.inner_text()
    await browser.shot("05-requests-live")

    # Its detail: the attempts, and the text with the switch marked where it happened.
    await row.locator("a").first.click()
    marker = page.locator('#transcript .marker[data-from="flaky/demo"]')
    await marker.wait_for()
    assert await page.locator("#timeline li.attempt").count() == 2
    await browser.shot("06-request-detail")

    # Providers and revisions.
    await page.goto(f"{gateway.base}/admin/providers")
    await page.wait_for_selector("#new-provider")
    await browser.shot("07-providers")
    await page.goto(f"{gateway.base}/admin/revisions")
    await page.wait_for_selector("#revision-2")
    await browser.shot("08-revisions")

    # Rehearse a failure in the playground: the answer streams in, the switch shows.
    await page.goto(f"{gateway.base}/admin/playground?route=chat")
    await page.select_option("#route", "resilient")
    await page.wait_for_selector("#simulate:not([disabled])")
    await page.select_option("#simulate", "cut")
    await page.fill("#simulate-n", "3")
    await page.fill("#prompt", "Rehearse a cut")
    await page.click("#run")
    await page.wait_for_selector("#outcome .badge.ok")
    await page.locator('#answer .marker[data-event="stream_switch"]').wait_for()
    await browser.shot("09-playground")

    # API keys: a new secret is shown once. Budgets: each limit's use.
    await page.goto(f"{gateway.base}/admin/keys")
    await page.fill("#field-name", "app1")
    await page.click("#create-key")
    secret = await page.locator("#new-secret").inner_text()
    assert secret.startswith("sk-lg-")
    await browser.shot("10-api-keys")
    await page.goto(f"{gateway.base}/admin/budgets")
    await page.wait_for_selector("#limit-route-resilient-requests_per_hour")
    await browser.shot("11-budgets")

    # The overview, now with traffic.
    await page.goto(f"{gateway.base}/admin")
    await page.wait_for_selector("tr.route-stats[data-route=resilient]")
    await browser.shot("12-overview")
