"""The requests table (filters, keyset pages) and the request detail page, through real
HTTP on a served gateway: rows written by the gateway's own request log, or inserted
directly where a test needs many rows with chosen times."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any

import httpx
import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from server.store.models import RequestLog
from tests.dashboard.conftest import CONFIG, MESSAGES, Dashboard, Serve, sign_in

ROW_ID = re.compile(r'<tr id="req-([^"]+)"')

# A route whose first target breaks after three words; the second one continues.
SWITCHING: dict[str, Any] = {
    **CONFIG,
    "server": {**CONFIG["server"], "request_log_flush_s": 0.05},  # rows show up sooner
    "providers": {
        **CONFIG["providers"],
        "cutter": {"kind": "mock", "cut_after": 3},
        "spare": {"kind": "mock"},
        "broken": {"kind": "mock", "fail_status": 500},
        "slow": {"kind": "mock", "stall_after": 2},
    },
    "routes": {
        **CONFIG["routes"],
        "prefill": {"targets": ["cutter/m", "spare/m"], "stream_fallback_mode": "prefill"},
        "restart": {"targets": ["cutter/m", "new/b"], "stream_fallback_mode": "restart"},
        "down": {"targets": ["broken/m"], "max_retries": 0},
        "stall": {"targets": ["slow/m"]},
    },
}


def log_row(n: int, at: datetime, **changes: Any) -> dict[str, Any]:
    """A request log row as the writer stores it (one attempt on ``old/a``)."""
    return {
        "id": f"chatcmpl-{n:06d}",
        "created_at": at,
        "route": "chat",
        "target": "old/a",
        "status": "ok",
        "latency_ms": 100.0,
        "ttft_ms": 20.0,
        "prompt_tokens": 1,
        "completion_tokens": 2,
        "total_tokens": 3,
        "cost_usd": None,
        "error": None,
        "record": {
            "request_id": f"chatcmpl-{n:06d}",
            "route": "chat",
            "attempts": [{"attempt": 1, "target": "old/a", "outcome": "ok", "chars": 10}],
            "switches": [],
            "skipped": [],
        },
        "transcript": [{"target": "old/a", "text": "old answer"}],
        **changes,
    }


async def insert_rows(engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(RequestLog), rows)


async def until(check: Callable[[], Awaitable[Any]], what: str, deadline_s: float = 10) -> Any:
    """Poll ``check()`` until it returns something truthy: the request log is written
    in the background, within its flush interval."""
    deadline = time.monotonic() + deadline_s
    while not (result := await check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return result


async def request_id(gateway: Any, model: str, *, stream: bool = False) -> str:
    body = {"model": model, "messages": MESSAGES, "stream": stream}
    headers = {"x-llmgate-accept-reset": "1"}  # the restart row shows the discarded text
    async with gateway.http.stream(
        "POST", "/v1/chat/completions", json=body, headers=headers
    ) as response:
        await response.aread()
    rid: str = response.headers["x-llmgate-request-id"]
    return rid


async def logged(web: httpx.AsyncClient, rid: str) -> str:
    async def page() -> str:
        response = await web.get(f"/admin/requests/{rid}")
        return (
            response.text
            if response.status_code == 200 and "still running" not in response.text
            else ""
        )

    text: str = await until(page, f"request {rid} in the log")
    return text


def ids(html: str) -> list[str]:
    return ROW_ID.findall(html)


async def test_the_table_lists_logged_requests_newest_first_and_filters_them(
    serve: Serve,
) -> None:
    gateway = await serve(SWITCHING)
    web = await sign_in(gateway.base)
    try:
        chat = [await request_id(gateway, "chat") for _ in range(2)]
        down = await request_id(gateway, "down")
        other = await request_id(gateway, "new/b")

        async def all_logged() -> str:
            text = (await web.get("/admin/requests")).text
            return text if len(ids(text)) == 4 else ""

        text = await until(all_logged, "four logged requests")
        assert ids(text) == [other, down, *reversed(chat)]
        assert 'sse-connect="/admin/live/requests?"' in text  # the first page is live

        by_route = (await web.get("/admin/requests", params={"route": "chat"})).text
        assert ids(by_route) == list(reversed(chat))
        assert 'sse-connect="/admin/live/requests?route=chat"' in by_route
        assert 'value="chat"' in by_route  # the form keeps the filter
        by_status = (await web.get("/admin/requests", params={"status": "failed"})).text
        assert ids(by_status) == [down]
        assert '<option value="failed" selected>' in by_status
        by_target = (await web.get("/admin/requests", params={"target": "new/b"})).text
        assert ids(by_target) == [other]
        none = (await web.get("/admin/requests", params={"route": "chat", "status": "failed"})).text
        assert ids(none) == [] and "No requests match these filters" in none

        # The filter form's htmx request gets the fragment and a clean URL to push.
        fragment = await web.get(
            "/admin/requests?route=chat&status=&target=",
            headers={
                "hx-request": "true",
                "hx-target": "requests",
                "hx-trigger": "requests-filters",
            },
        )
        assert fragment.text.lstrip().startswith('<div id="requests">')
        assert "<html" not in fragment.text and ids(fragment.text) == list(reversed(chat))
        assert fragment.headers["hx-push-url"] == "/admin/requests?route=chat"
        # The configured routes and targets are offered without reading the log.
        assert '<option value="prefill">' in text and '<option value="cutter/m">' in text
    finally:
        await web.aclose()


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
async def test_keyset_pages_cover_every_row_once_in_both_directions(
    dashboard: Dashboard, engine: AsyncEngine
) -> None:
    start = datetime.now(UTC) - timedelta(hours=2)
    rows = [
        # Pairs share a created_at, so the id must break ties at page boundaries.
        log_row(n, start + timedelta(seconds=n // 2), route="chat" if n % 3 else "other")
        for n in range(120)
    ]
    await insert_rows(engine, rows)
    newest_first = [r["id"] for r in reversed(rows)]

    async def walk(params: dict[str, str]) -> tuple[list[list[str]], list[str]]:
        """Older pages from the first to the last; the newer links back from there."""
        pages, html = [], (await dashboard.get("/admin/requests", params=params)).text
        while True:
            pages.append(ids(html))
            older = re.search(r'id="page-older" href="([^"]+)"', html)
            if not older:
                break
            html = (await dashboard.get(unescape(older[1]))).text
            assert "sse-connect" not in html  # only the first page is live
        back = []
        while newer := re.search(r'id="page-newer" href="([^"]+)"', html):
            html = (await dashboard.get(unescape(newer[1]))).text
            back.append(ids(html))
        return pages, [i for page in reversed(back) for i in page] + pages[-1]

    pages, back = await walk({})
    assert [len(p) for p in pages] == [50, 50, 20]
    assert [i for p in pages for i in p] == newest_first
    assert back == newest_first  # the way back shows the same pages

    chat = [i for i, r in zip(newest_first, reversed(rows), strict=True) if r["route"] == "chat"]
    pages, back = await walk({"route": "chat"})
    assert [len(p) for p in pages] == [50, 30]
    assert [i for p in pages for i in p] == chat and back == chat


async def test_bad_filters_and_page_links_are_shown_inline_and_kept(dashboard: Dashboard) -> None:
    response = await dashboard.get(
        "/admin/requests", params={"status": "bogus", "route": "x" * 300}
    )
    assert response.status_code == 200
    assert (
        'id="status-error"' in response.text
        and "expected one of ok, partial, failed" in response.text
    )
    assert '<option value="bogus" selected>bogus</option>' in response.text
    assert 'id="route-error"' in response.text and "at most 200 characters" in response.text
    assert 'value="' + "x" * 300 + '"' in response.text
    control = await dashboard.get("/admin/requests", params={"target": "a\x00b"})
    assert control.status_code == 200 and 'id="target-error"' in control.text
    for cursor in ("garbage", "123", "99999999999999999999.x", "1.\x01"):
        bad = await dashboard.get("/admin/requests", params={"before": cursor})
        assert bad.status_code == 200 and 'id="cursor-error"' in bad.text
    both = await dashboard.get("/admin/requests", params={"before": "1.a", "after": "1.a"})
    assert both.status_code == 200 and 'id="cursor-error"' in both.text


async def test_the_detail_page_marks_a_prefill_switch_where_it_happened(serve: Serve) -> None:
    gateway = await serve(SWITCHING)
    web = await sign_in(gateway.base)
    try:
        rid = await request_id(gateway, "prefill", stream=True)
        text = await logged(web, rid)
        assert 'id="timeline"' in text
        assert re.search(
            r'<li class="attempt failed" id="attempt-1">.*?stream_interrupted', text, re.S
        )
        assert '<li class="attempt ok" id="attempt-2">' in text
        assert text.index('class="switch-item') < text.index('id="attempt-2"')
        transcript = text[text.index('id="transcript"') :]
        marker = re.search(
            r'<span class="marker" data-from="cutter/m" data-to="spare/m">([^<]*)<', transcript
        )
        assert marker and "prefill" in marker[1] and "chars delivered" in marker[1]
        before, after = transcript.split(marker[0], 1)
        assert 'data-target="cutter/m"' in before and 'data-target="spare/m"' in after
        assert "discarded" not in before.split("</div>")[0]
        assert 'id="request-usage"' in text and 'id="request-cost"' in text
    finally:
        await web.aclose()


async def test_a_restart_marks_the_text_before_it_discarded(serve: Serve) -> None:
    gateway = await serve(SWITCHING)
    web = await sign_in(gateway.base)
    try:
        rid = await request_id(gateway, "restart", stream=True)
        text = await logged(web, rid)
        transcript = text[text.index('id="transcript"') :].split("</div>")[0]
        marker = re.search(r'<span class="marker reset"[^>]*>([^<]*)<', transcript)
        assert marker and "the client was told to discard the text above" in marker[1]
        before, after = transcript.split(marker[0], 1)
        assert re.search(r'<span class="seg discarded" data-target="cutter/m"', before)
        assert '<span class="seg" data-target="new/b"' in after and "discarded" not in after
        assert "Restarted: the client was told to discard" in text  # in the timeline too
    finally:
        await web.aclose()


async def test_a_failed_request_shows_its_error_and_an_unknown_id_is_a_404(serve: Serve) -> None:
    gateway = await serve(SWITCHING)
    web = await sign_in(gateway.base)
    try:
        rid = await request_id(gateway, "down")
        text = await logged(web, rid)
        assert 'id="request-status">failed<' in text and 'id="request-error"' in text
        assert re.search(r'<li class="attempt failed" id="attempt-1">.*?HTTP 500', text, re.S)
        assert 'id="transcript-empty"' in text
        for missing in ("chatcmpl-nope", "x" * 100, "a%00b"):
            response = await web.get(f"/admin/requests/{missing}")
            assert response.status_code == 404 and 'id="not-found"' in response.text
    finally:
        await web.aclose()


async def test_a_running_request_shows_what_is_known_so_far(serve: Serve) -> None:
    gateway = await serve(SWITCHING)
    web = await sign_in(gateway.base)
    try:
        body = {"model": "stall", "messages": MESSAGES, "stream": True}
        async with gateway.http.stream("POST", "/v1/chat/completions", json=body) as response:
            rid = response.headers["x-llmgate-request-id"]
            page = await web.get(f"/admin/requests/{rid}")
            assert page.status_code == 200 and 'id="still-running"' in page.text
            assert '<span class="badge running" id="request-status">running</span>' in page.text
            assert "slow/m" in page.text
        # The client went away: the request ends, and its row is logged.
        text = await logged(web, rid)
        assert "ClientDisconnected" in text
    finally:
        await web.aclose()


async def test_without_a_database_the_pages_say_the_log_needs_one(serve: Serve) -> None:
    gateway = await serve(url=None)
    web = await sign_in(gateway.base)
    try:
        table = await web.get("/admin/requests")
        assert table.status_code == 200 and 'id="no-request-log"' in table.text
        assert 'sse-connect="/admin/live/requests?"' in table.text  # live rows still come
        detail = await web.get("/admin/requests/chatcmpl-nope")
        assert detail.status_code == 404 and "needs a database" in detail.text
    finally:
        await web.aclose()


async def test_the_detail_page_shows_skipped_targets_tool_calls_and_omitted_text(
    dashboard: Dashboard, engine: AsyncEngine
) -> None:
    switch = {
        "from_target": "old/a",
        "to_target": "new/b",
        "mode": "restart",
        "reason": "stall",
        "chars_delivered": 5,
        "reset": True,
    }
    record = {
        "request_id": "chatcmpl-000001",
        "route": "chat",
        "attempts": [
            {
                "attempt": 1,
                "target": "old/a",
                "outcome": "failed",
                "error_type": "stall",
                "error": "no data for 30 s",
                "chars": 5,
            },
            {"attempt": 2, "target": "new/b", "outcome": "ok", "chars": 4},
        ],
        "switches": [switch],
        "skipped": ["down/x"],
    }
    transcript = [
        {"target": "old/a", "text": "Hello"},
        {"tool_call": {"index": 0, "id": "c1", "name": "lookup", "arguments": '{"q": 1}'}},
        {"switch": switch},
        {"target": "new/b", "chars": 4},  # a log that keeps no text
        {"omitted_chars": 1234},
    ]
    row = log_row(1, datetime.now(UTC), record=record, transcript=transcript, target="new/b")
    await insert_rows(engine, [row, log_row(2, datetime.now(UTC), transcript=None)])

    text = (await dashboard.get("/admin/requests/chatcmpl-000001")).text
    assert re.search(
        r'<li class="skipped"><span class="badge open">breaker open</span> skipped', text
    )
    assert text.index('class="skipped"') < text.index('id="attempt-1"')
    transcript_html = text[text.index('id="transcript"') :].split("</div>")[0]
    assert '<span class="seg discarded" data-target="old/a"' in transcript_html
    assert (
        '<span class="tool-call discarded">tool call lookup({&#34;q&#34;: 1})</span>'
        in transcript_html
    )
    assert "[4 chars from new/b: text not stored]" in transcript_html
    assert '<span class="marker omitted">… 1234 more chars were not kept</span>' in transcript_html
    missing = (await dashboard.get("/admin/requests/chatcmpl-000002")).text
    assert 'id="transcript-missing"' in missing


async def test_a_cursor_of_non_ascii_digits_is_an_inline_error_not_a_crash(
    dashboard: Dashboard,
) -> None:
    for cursor in ("%C2%B2.x", "%D9%A3%D9%A4.x", "1" * 30 + ".x"):
        page = await dashboard.get(f"/admin/requests?before={cursor}")
        assert page.status_code in (200, 422), (cursor, page.status_code)


async def test_the_detail_page_says_how_each_pool_ranked_its_members(
    dashboard: Dashboard, engine: AsyncEngine
) -> None:
    record = {
        "request_id": "chatcmpl-000003",
        "route": "chat",
        "attempts": [
            {"attempt": 1, "target": "new/b", "outcome": "failed", "error_type": "rate_limited"},
            {"attempt": 2, "target": "old/a", "outcome": "ok", "chars": 4},
        ],
        "pools": [{"entry": 0, "balance": "least_busy", "order": ["new/b", "old/a"]}],
    }
    await insert_rows(engine, [log_row(3, datetime.now(UTC), record=record, target="old/a")])
    text = (await dashboard.get("/admin/requests/chatcmpl-000003")).text
    choice = re.search(r'<li class="pool-choice">(.*?)</li>', text)
    assert choice and "least_busy" in choice.group(1)
    assert "new/b → old/a" in choice.group(1)
    assert text.index('class="pool-choice"') < text.index('id="attempt-1"')


async def test_the_detail_page_shows_a_hedge_and_its_cancelled_loser(
    dashboard: Dashboard, engine: AsyncEngine
) -> None:
    record = {
        "request_id": "chatcmpl-000004",
        "route": "chat",
        "attempts": [
            {
                "attempt": 1,
                "target": "old/a",
                "outcome": "cancelled",
                "error": "new/b sent content first",
            },
            {"attempt": 2, "target": "new/b", "outcome": "ok", "chars": 4},
        ],
        "hedges": [{"attempt": 1, "hedge": 2, "target": "new/b", "after_s": 0.5, "won": True}],
        "door": "responses",
    }
    await insert_rows(engine, [log_row(4, datetime.now(UTC), record=record, target="new/b")])
    text = (await dashboard.get("/admin/requests/chatcmpl-000004")).text
    assert '<dd class="mono" id="request-door">responses</dd>' in text  # the endpoint
    hedge = re.search(r'<li class="hedge-item">(.*?)</li>', text, re.S)
    assert hedge, text
    assert "#1 sent no content within 500 ms: #2 asked new/b in parallel" in hedge.group(1)
    assert "the hedge answered first" in hedge.group(1)
    assert text.index('id="attempt-1"') < text.index('class="hedge-item"')
    assert text.index('class="hedge-item"') < text.index('id="attempt-2"')
    loser = re.search(r'id="attempt-1">(.*?)</li>', text, re.S)
    assert loser and "badge cancelled" in loser.group(1)
    assert "cancelled</span>: new/b sent content first" in loser.group(1)
