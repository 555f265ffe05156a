"""The overview page: per route volume, error and fallback rates and latency
percentiles over the last hour and day, aggregated by the database (SQLite and
PostgreSQL), with its bar charts, the live feed's totals and an empty state."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from server.store.traffic import LATENCY_BOUNDS_MS
from tests.dashboard.conftest import Dashboard, Serve, sign_in
from tests.dashboard.test_requests_pages import insert_rows, log_row, until


def section(html: str, window: str) -> str:
    start = html.index(f'<section class="window" id="window-{window}">')
    return html[start : html.index("</section>", start)]


def route_stats(html: str, route: str) -> dict[str, Any]:
    """A route's row of the window's table, as numbers."""
    row = re.search(rf'<tr class="route-stats" data-route="{route}">(.*?)</tr>', html, re.S)
    assert row, f"no row for {route}"

    def value(pattern: str) -> float:
        found = re.search(pattern, row[1])
        assert found, pattern
        return float(found[1])

    return {
        "volume": int(value(r'<td class="volume">(\d+)</td>')),
        "error_rate": value(r'class="error-rate[^"]*" data-value="([^"]+)"'),
        "fallback_rate": value(r'class="fallback-rate" data-value="([^"]+)"'),
        "p50": value(r'class="p50" data-ms="([^"]+)"'),
        "p95": value(r'class="p95" data-ms="([^"]+)"'),
        "buckets": [int(n) for n in re.findall(r'data-requests="(\d+)"', row[1])],
    }


def bucket_of(ms: float) -> tuple[float, float]:
    """The histogram bucket (lower, upper] that holds ``ms``."""
    lower = 0.0
    for bound in LATENCY_BOUNDS_MS:
        if ms <= bound:
            return lower, float(bound)
        lower = float(bound)
    return lower, math.inf


def nearest_rank(values: list[float], q: float) -> float:
    return sorted(values)[math.ceil(q * len(values)) - 1]


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
async def test_each_route_is_aggregated_over_the_hour_and_the_day(
    dashboard: Dashboard, engine: AsyncEngine
) -> None:
    now = datetime.now(UTC)
    rows, hour_latencies = [], []
    for i in range(40):  # chat, in the last hour: 10 errors, 8 that needed a fallback
        latency = float((i * 137) % 1900 + 30)
        hour_latencies.append(latency)
        changes: dict[str, Any] = {"latency_ms": latency}
        if i % 4 == 0:
            changes.update(status="failed" if i % 8 else "partial", error="Timeout: slow")
        if i % 5 == 0:
            record = log_row(i, now)["record"]
            record["attempts"] = [*record["attempts"], {"attempt": 2, "target": "new/b"}]
            changes["record"] = record
        at = now - timedelta(minutes=2.5 + 5 * (i % 12))  # the middle of a 5 minute bucket
        rows.append(log_row(i, at, **changes))
    for i in range(40, 60):  # chat, earlier today: slow and fine
        rows.append(log_row(i, now - timedelta(hours=3, minutes=i), latency_ms=5000.0))
    for i in range(60, 65):  # another route, ten hours ago
        rows.append(log_row(i, now - timedelta(hours=10), route="other", status="failed"))
    rows.append(log_row(99, now - timedelta(hours=30), route="ancient"))  # before the day
    await insert_rows(engine, rows)

    html = (await dashboard.get("/admin")).text
    assert 'id="overview-empty"' not in html
    hour, day = section(html, "hour"), section(html, "day")

    chat = route_stats(hour, "chat")
    assert chat["volume"] == 40 and chat["error_rate"] == 0.25 and chat["fallback_rate"] == 0.2
    for q, key in ((0.5, "p50"), (0.95, "p95")):
        lower, upper = bucket_of(nearest_rank(hour_latencies, q))
        assert lower <= chat[key] <= upper, (key, chat[key], lower, upper)
    per_bucket = [sum(1 for i in range(40) if 11 - i % 12 == b) for b in range(12)]
    assert chat["buckets"] == per_bucket  # oldest bucket first
    assert 'data-route="other"' not in hour and "ancient" not in hour

    chat_day = route_stats(day, "chat")
    assert chat_day["volume"] == 60 and chat_day["error_rate"] == pytest.approx(10 / 60)
    assert 4000 < chat_day["p95"] <= 5000  # the bucket of 5000 ms, (4000, 5000]
    assert sum(chat_day["buckets"]) == 60 and len(chat_day["buckets"]) == 24
    other = route_stats(day, "other")
    assert other["volume"] == 5 and other["error_rate"] == 1.0 and other["fallback_rate"] == 0
    assert "ancient" not in day
    assert re.search(r'<div class="kpi volume">65</div>', day)  # every route together


async def test_a_new_gateway_shows_an_empty_state_then_its_first_request(
    dashboard: Dashboard,
) -> None:
    html = (await dashboard.get("/admin")).text
    assert 'id="overview-empty"' in html and "No requests yet" in html
    assert re.search(r'id="live-totals".*?<strong id="running-now">0</strong>', html, re.S)

    assert (await dashboard.gateway.answer("chat"))[0] == 200

    async def counted() -> str:
        page = (await dashboard.get("/admin")).text
        return page if 'data-route="chat"' in page else ""

    html = await until(counted, "the request in the overview")
    assert route_stats(section(html, "hour"), "chat")["volume"] == 1


async def test_without_a_database_the_overview_shows_only_live_totals(serve: Serve) -> None:
    gateway = await serve(url=None)
    web = await sign_in(gateway.base)
    try:
        html = (await web.get("/admin")).text
        assert 'id="no-request-log"' in html and 'id="live-totals"' in html
        assert 'id="window-hour"' not in html
    finally:
        await web.aclose()
