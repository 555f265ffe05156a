"""The requests table's live feed over real HTTP: the page connects to it with htmx's
SSE extension, and the endpoint pushes a request's row as it starts and its new state
as it ends, filtered like the table."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx

from tests.dashboard.conftest import Dashboard
from tests.dashboard.test_requests_pages import request_id


async def subscribed(response: httpx.Response) -> AsyncIterator[str]:
    """The feed's lines from when it says it is subscribed: every request started after
    this reaches it."""
    lines = response.aiter_lines()
    async with asyncio.timeout(5):
        async for line in lines:
            if line.startswith(": connected"):
                return lines
    raise AssertionError("the feed ended before it was subscribed")


async def events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, str]]:
    """``(event, data)`` of each server-sent event; comments (``: connected``,
    ``: keep-alive``), which litestar sends with an empty data line, are skipped."""
    name, data = "message", []
    async for line in lines:
        if not line:
            if any(data):
                yield name, "\n".join(data)
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))


async def until_ended(lines: AsyncIterator[str], rid: str) -> list[tuple[str, str]]:
    """Events up to the one that shows ``rid`` ended, within a short deadline."""
    seen = []
    async with asyncio.timeout(5):
        async for name, data in events(lines):
            seen.append((name, data))
            if f'id="req-{rid}"' in data and 'data-status="running"' not in data:
                return seen
    raise AssertionError("the feed ended")


async def test_the_first_page_connects_to_the_feed_and_later_pages_do_not(
    dashboard: Dashboard,
) -> None:
    page = (await dashboard.get("/admin/requests", params={"route": "chat"})).text
    connect = re.search(
        r'<div id="requests-table" class="live" hx-ext="sse" sse-connect="([^"]+)"', page
    )
    assert connect and connect[1] == "/admin/live/requests?route=chat"
    assert '<tbody id="requests-body" sse-swap="row" hx-swap="afterbegin">' in page
    assert 'sse-swap="update" hx-swap="none"' in page  # updates arrive as oob swaps
    assert 'hx-trigger="sse:resync" hx-get="/admin/requests?route=chat"' in page
    older = (await dashboard.get("/admin/requests", params={"before": "1.x"})).text
    assert "sse-connect" not in older and "sse-swap" not in older


async def test_a_request_arrives_as_a_row_then_updates_in_place(dashboard: Dashboard) -> None:
    headers = {"accept": "text/event-stream"}
    async with dashboard.web.stream("GET", "/admin/live/requests", headers=headers) as feed:
        assert feed.status_code == 200
        assert feed.headers["content-type"].startswith("text/event-stream")
        lines = await subscribed(feed)
        rid = await request_id(dashboard.gateway, "chat")
        seen = await until_ended(lines, rid)
    mine = [(name, data) for name, data in seen if f'id="req-{rid}"' in data]
    first, *_, last = mine
    assert first[0] == "row" and 'data-status="running"' in first[1]
    assert "hx-swap-oob" not in first[1]
    assert last[0] == "update" and 'hx-swap-oob="outerHTML"' in last[1]
    assert 'data-status="ok"' in last[1] and "old/a" in last[1]
    assert "\n" not in last[1]  # one data line: an SSE data field cannot hold raw newlines


async def test_the_feed_only_sends_rows_that_match_its_filters(dashboard: Dashboard) -> None:
    headers = {"accept": "text/event-stream"}
    params = {"route": "old/a"}  # a client naming a target directly: its own route
    async with dashboard.web.stream(
        "GET", "/admin/live/requests", params=params, headers=headers
    ) as feed:
        lines = await subscribed(feed)
        skipped = await request_id(dashboard.gateway, "chat")
        shown = await request_id(dashboard.gateway, "old/a")
        seen = await until_ended(lines, shown)
    assert not any(skipped in data for _, data in seen)
    assert seen[0][0] == "row" and f'id="req-{shown}"' in seen[0][1]
