"""The budgets page through real HTTP: each limit with the same use as
``GET /admin/api/budgets``, each API key's spend today and this month matching the
request log (on SQLite and PostgreSQL), the empty state and a gateway without a database."""

from __future__ import annotations

import asyncio
import html
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from server.store.models import RequestLog
from server.store.traffic import spend_query
from tests.dashboard.conftest import CONFIG, MESSAGES, Serve, ServedGateway, sign_in

PRICES = {"*": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}}
BUDGETED: dict[str, Any] = {
    "server": {"reload_poll_s": 3600, "request_log_flush_s": 0.05},
    "providers": {
        "m": {"kind": "mock", "tokens": 10, "prices": PRICES},
        "free": {"kind": "mock", "tokens": 7},  # no price: its requests have no cost
    },
    "routes": {
        "chat": {"targets": ["m/a"], "budget": {"requests_per_hour": 5, "usd_per_day": 1.0}},
        "unpriced": {"targets": ["free/a"]},
    },
}


async def _key(gateway: ServedGateway, name: str, **extra: Any) -> tuple[str, str]:
    response = await gateway.admin.post("/keys", json={"name": name, **extra})
    assert response.status_code == 201, response.text
    body = response.json()
    return str(body["id"]), str(body["secret"])


async def _ask(gateway: ServedGateway, secret: str, model: str = "chat") -> int:
    response = await gateway.http.post(
        "/v1/chat/completions",
        json={"model": model, "messages": MESSAGES},
        headers={"authorization": f"Bearer {secret}"},
    )
    return response.status_code


async def _logged(engine: AsyncEngine, count: int) -> None:
    """Until the request log holds ``count`` rows (it is written in the background)."""
    deadline = time.monotonic() + 10
    while True:
        async with engine.connect() as conn:
            n = (await conn.execute(select(func.count()).select_from(RequestLog))).scalar_one()
        if n >= count:
            return
        assert time.monotonic() < deadline, f"{n} of {count} request-log rows after 10 s"
        await asyncio.sleep(0.02)


def _attrs(tag: str) -> dict[str, str]:
    return {k: html.unescape(v) for k, v in re.findall(r'([\w-]+)="([^"]*)"', tag)}


def _limit_rows(page: str) -> dict[tuple[str, str], dict[str, str]]:
    """Each limit row's data attributes, by (scope, limit)."""
    rows = {}
    for tag in re.findall(r'<tr id="limit-[^>]*>', page):
        attrs = _attrs(tag)
        rows[(attrs["data-scope"], attrs["data-limit"])] = attrs
    return rows


def _row(page: str, row_id: str) -> str:
    row = page[page.index(f'id="{row_id}"') :]
    return row[: row.index("</tr>")]


def _cells(row: str) -> dict[str, str]:
    """``{"today cost": data-value, ...}`` of a spend row."""
    return {
        f"{window} {what}": html.unescape(value)
        for window, what, value in re.findall(
            r'<td class="(today|month) (cost|tokens|requests)[^"]*" data-value="([^"]*)"', row
        )
    }


async def _expected_spend(engine: AsyncEngine, key_id: str) -> dict[str, Any]:
    """A key's rows of today, summed here rather than by the page's query."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(RequestLog.cost_usd, RequestLog.total_tokens, RequestLog.created_at).where(
                    RequestLog.api_key_id == key_id
                )
            )
        ).all()
    today = datetime.now(UTC).date()
    rows = [r for r in rows if r.created_at.replace(tzinfo=UTC).date() == today]
    costs = [r.cost_usd for r in rows if r.cost_usd is not None]
    return {
        "requests": len(rows),
        "tokens": sum(r.total_tokens for r in rows),
        "cost": sum(costs) if costs else None,
        "unpriced": len(rows) - len(costs),
    }


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
async def test_budgets_match_the_api_and_key_spend_matches_the_request_log(
    serve: Serve, engine: AsyncEngine
) -> None:
    gateway = await serve(config=BUDGETED)
    web = await sign_in(gateway.base)
    app1, app1_secret = await _key(gateway, "app1", budget={"requests_per_day": 3})
    app2, app2_secret = await _key(gateway, "app2")
    app3, app3_secret = await _key(gateway, "app3")
    idle, _ = await _key(gateway, "idle")

    assert [await _ask(gateway, app1_secret) for _ in range(3)] == [200, 200, 200]
    assert await _ask(gateway, app1_secret) == 429  # app1's budget is spent: not logged
    assert await _ask(gateway, app2_secret) == 200
    assert await _ask(gateway, app2_secret, "unpriced") == 200
    assert await _ask(gateway, app3_secret, "unpriced") == 200
    revoked = await gateway.admin.post(f"/keys/{app3}/revoke")
    assert revoked.status_code == 200
    await _logged(engine, 6)

    # the same numbers as the admin API, read when no process is changing them
    while True:
        before = (await gateway.admin.get("/budgets")).json()["budgets"]
        page = await web.get("/admin/budgets")
        after = (await gateway.admin.get("/budgets")).json()["budgets"]
        if before == after:
            break
    assert page.status_code == 200
    assert 'href="/admin/budgets" class="active"' in page.text
    assert 'id="budgets-used-note"' in page.text
    rows = _limit_rows(page.text)
    assert set(rows) == {
        ("route:chat", "requests_per_hour"),
        ("route:chat", "usd_per_day"),
        (f"key:{app1}", "requests_per_day"),
    }
    for limit in after:
        attrs = rows[(limit["scope"], limit["limit"])]
        for field in ("used", "max", "remaining"):
            assert float(attrs[f"data-{field}"]) == limit[field], (limit, attrs)

    route_requests = _row(page.text, "limit-route-chat-requests_per_hour")
    assert "5 requests per hour" in route_requests
    assert '<span class="used">4</span> / <span class="max">5</span>' in route_requests
    assert 'style="width: 80.0%"' in route_requests and "meter full" not in route_requests
    usd = _row(page.text, "limit-route-chat-usd_per_day")
    assert 'href="/admin/routes/chat/edit"' in usd  # the owner is named on its first limit
    assert "$1.00 per day" in usd and "UTC" in usd and "→" in usd
    key_limit = _row(page.text, f"limit-key-{app1}-requests_per_day")
    assert "3 requests per day" in key_limit and f'href="/admin/keys#key-{app1}"' in key_limit
    assert '<span class="used">3</span> / <span class="max">3</span>' in key_limit
    assert "meter full" in key_limit  # red at 100%

    # spend by key: every key, revoked ones too, as summed from the request log
    assert re.findall(r'<tr id="spend-(key_[0-9a-f]+)"', page.text) == [app1, app2, idle, app3]
    assert 'class="spend-row revoked"' in _row(page.text, f"spend-{app3}")
    for key_id in (app1, app2, app3, idle):
        cells = _cells(_row(page.text, f"spend-{key_id}"))
        expected = await _expected_spend(engine, key_id)
        for window in ("today", "month"):  # every request was made today, this month
            assert int(cells[f"{window} requests"]) == expected["requests"]
            assert int(cells[f"{window} tokens"]) == expected["tokens"]
            if expected["cost"] is None:
                assert cells[f"{window} cost"] == ""
            else:
                assert float(cells[f"{window} cost"]) == pytest.approx(expected["cost"])
    assert _cells(_row(page.text, f"spend-{app1}"))["today requests"] == "3"
    app2_row = _row(page.text, f"spend-{app2}")
    assert "+1 unpriced" in app2_row and float(_cells(app2_row)["today cost"]) > 0
    app3_row = _row(page.text, f"spend-{app3}")
    assert "—" in app3_row and "+1 unpriced" in app3_row  # no priced request at all
    assert "$0.00" in _row(page.text, f"spend-{idle}")
    assert 'id="unpriced-note"' in page.text

    # the Refresh button's answer: the panel alone, with the same content
    panel = await web.get("/admin/budgets", headers={"hx-request": "true"})
    assert panel.status_code == 200 and "<html" not in panel.text
    assert panel.text.lstrip().startswith('<div id="budgets-panel"')
    assert f'id="spend-{app1}"' in panel.text

    if engine.dialect.name == "sqlite":  # each key is one range of its index
        now = datetime.now(UTC)
        query = spend_query([app1, app2], now - timedelta(days=1), now)
        compiled = query.compile(engine.sync_engine, compile_kwargs={"literal_binds": True})
        async with engine.connect() as conn:
            plan = (await conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))).all()
        assert "ix_request_log_api_key_id_created_at" in " ".join(str(r) for r in plan), plan
    await web.aclose()


async def test_without_budgets_the_page_says_how_to_set_one(serve: Serve) -> None:
    gateway = await serve(config=CONFIG)
    web = await sign_in(gateway.base)
    page = await web.get("/admin/budgets")
    assert page.status_code == 200
    assert 'id="budgets-empty"' in page.text and 'id="budgets-table"' not in page.text
    assert "[routes.NAME.budget]" in page.text and "llmgate keys create --budget-" in page.text
    assert 'id="key-spend-empty"' in page.text
    await web.aclose()


async def test_without_a_database_the_page_says_budgets_need_one(serve: Serve) -> None:
    gateway = await serve(config=BUDGETED, url=None)
    web = await sign_in(gateway.base)
    page = await web.get("/admin/budgets")
    assert page.status_code == 200
    assert 'id="budgets-need-database"' in page.text
    assert "Budgets need the database" in page.text
    assert 'id="budgets-table"' not in page.text and 'id="key-spend-table"' not in page.text
    await web.aclose()
