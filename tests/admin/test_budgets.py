"""Budgets on routes and keys: refused before any upstream call with 429 and when the
window resets, or downgraded to a cheaper route; a stream that crosses a limit finishes;
counters survive restarts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from prometheus_client.parser import text_string_to_metric_families

from providers import decode_config
from router.errors import ConfigError
from server.core.budgets import window_of
from tests.admin.conftest import CONFIG, MESSAGES, Serve, ServedGateway

CHAT = {"model": "chat", "messages": MESSAGES}


def config(**routes: Any) -> dict[str, Any]:
    return {
        **CONFIG,
        "providers": {
            "old": {"kind": "mock", "tokens": 10},
            "cheap": {"kind": "mock", "tokens": 5},
        },
        "routes": routes,
    }


async def _post(gateway: ServedGateway, body: dict[str, Any] = CHAT, **headers: str) -> Any:
    return await gateway.http.post("/v1/chat/completions", json=body, headers=headers)


def test_calendar_windows_follow_the_zone() -> None:
    paris = ZoneInfo("Europe/Paris")
    now = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # 01:30 in Paris, the night clocks go on
    start, end = window_of("day", now, paris)
    assert start.isoformat() == "2026-03-29T00:00:00+01:00"
    assert end.isoformat() == "2026-03-30T00:00:00+02:00"  # a 23-hour day
    start, end = window_of("month", datetime(2026, 12, 31, 23, 30, tzinfo=UTC), paris)
    assert (start.month, start.year, end.month, end.year) == (1, 2027, 2, 2027)
    start, end = window_of("minute", datetime(2026, 1, 1, 10, 5, 42, tzinfo=UTC), ZoneInfo("UTC"))
    assert (start.minute, start.second, (end - start).total_seconds()) == (5, 0, 60)


def test_budgets_are_validated_with_their_key_path() -> None:
    for budget, where in [
        ({"timezone": "Mars/Olympus"}, "routes.chat.budget.timezone"),
        ({"downgrade_to": "nowhere"}, "routes.chat.budget.downgrade_to"),
        ({"requests_per_minute": 0}, "routes.chat.budget.requests_per_minute"),
    ]:
        with pytest.raises(ConfigError) as caught:
            decode_config(config(chat={"targets": ["old/a"], "budget": budget}), "test")
        assert where in str(caught.value)
    loop = config(
        chat={"targets": ["old/a"], "budget": {"requests_per_minute": 1, "downgrade_to": "b"}},
        b={"targets": ["old/a"], "budget": {"requests_per_minute": 1, "downgrade_to": "chat"}},
    )
    with pytest.raises(ConfigError, match="loops"):
        decode_config(loop, "test")


async def test_a_spent_route_is_refused_with_429_naming_the_budget_and_its_reset(
    serve: Serve,
) -> None:
    gateway = await serve(
        config=config(chat={"targets": ["old/a"], "budget": {"requests_per_hour": 3}})
    )
    assert [(await _post(gateway)).status_code for _ in range(3)] == [200, 200, 200]
    refused = await _post(gateway)
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "budget_exceeded" and error["param"] == "budget.requests_per_hour"
    assert "route 'chat' allows 3 requests per hour" in error["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 3600
    assert "resets at" in error["message"]
    # nothing reached an upstream: the metrics count three requests, not four
    metrics = (await gateway.http.get("/metrics")).text
    counted = [
        (s.labels, s.value)
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
        if s.name == "llmgate_requests_total"
    ]
    assert counted == [({"route": "chat", "status": "ok", "door": "chat.completions"}, 3.0)]
    # the admin API reports the same use
    (budget,) = (await gateway.admin.get("/budgets")).json()["budgets"]
    assert budget["scope"] == "route:chat" and budget["limit"] == "requests_per_hour"
    assert (budget["used"], budget["max"], budget["remaining"]) == (3.0, 3.0, 0.0)
    assert budget["resets_at"] > budget["window_start"]


def _target(response: Any) -> str:
    target: str = response.json()["llmgate"]["attempts"][-1]["target"]
    return target


DOWNGRADING = {
    "chat": {"targets": ["old/a"], "budget": {"requests_per_hour": 1, "downgrade_to": "budget"}},
    "budget": {"targets": ["cheap/a"]},
}


@pytest.mark.parametrize(
    ("path", "extra"),
    [("/v1/chat/completions", {}), ("/v1/messages", {"max_tokens": 64})],
    ids=["openai", "anthropic"],
)
async def test_a_spent_route_downgrades_to_its_cheaper_route_and_says_so_on_every_door(
    serve: Serve, path: str, extra: dict[str, Any]
) -> None:
    gateway = await serve(config=config(**DOWNGRADING))
    body = {"model": "chat", "messages": MESSAGES, **extra}
    first, second = [await gateway.http.post(path, json=body) for _ in range(2)]
    assert _target(first) == "old/a" and "x-llmgate-downgraded-to" not in first.headers
    assert second.status_code == 200 and _target(second) == "cheap/a"
    assert second.headers["x-llmgate-downgraded-to"] == "budget"


async def test_the_request_that_crosses_a_token_limit_finishes_and_the_next_is_refused(
    serve: Serve,
) -> None:
    # each answer is 10 completion tokens plus a few prompt tokens: the second crosses 20
    gateway = await serve(
        config=config(chat={"targets": ["old/a"], "budget": {"tokens_per_day": 20}})
    )
    async with gateway.http.stream(
        "POST", "/v1/chat/completions", json={**CHAT, "stream": True}
    ) as response:
        body = (await response.aread()).decode()
    assert response.status_code == 200 and body.rstrip().endswith("[DONE]")
    crossing = await _post(gateway)
    assert crossing.status_code == 200  # admitted below the limit: it finishes
    refused = await _post(gateway)
    assert refused.status_code == 429
    assert refused.json()["error"]["param"] == "budget.tokens_per_day"


async def test_a_spend_limit_in_usd_counts_each_request_at_its_price(serve: Serve) -> None:
    cfg = config(chat={"targets": ["old/a"], "budget": {"usd_per_month": 0.00002}})
    cfg["providers"]["old"]["prices"] = {"*": {"input_per_mtok": 1.0, "output_per_mtok": 1.0}}
    gateway = await serve(config=cfg)
    statuses = [(await _post(gateway)).status_code for _ in range(3)]
    assert statuses[0] == 200 and statuses[-1] == 429  # ~14 tokens = $0.000014 each


async def test_a_keys_budget_holds_on_every_route(serve: Serve) -> None:
    gateway = await serve(
        config=config(chat={"targets": ["old/a"]}, other={"targets": ["cheap/a"]})
    )
    created = await gateway.admin.post(
        "/keys", json={"name": "app1", "budget": {"requests_per_day": 2}}
    )
    assert created.status_code == 201, created.text
    auth = {"authorization": f"Bearer {created.json()['secret']}"}
    assert (await _post(gateway, CHAT, **auth)).status_code == 200
    assert (await _post(gateway, {**CHAT, "model": "other"}, **auth)).status_code == 200
    refused = await _post(gateway, CHAT, **auth)
    assert refused.status_code == 429 and "key 'app1'" in refused.json()["error"]["message"]
    assert (await _post(gateway)).status_code == 200  # the master key has no budget
    reported = {b["scope"]: b for b in (await gateway.admin.get("/budgets")).json()["budgets"]}
    assert reported[f"key:{created.json()['id']}"]["used"] == 2.0
    bad = await gateway.admin.post(
        "/keys", json={"name": "x", "budget": {"requests_per_day": 1, "downgrade_to": "other"}}
    )
    assert bad.status_code == 422


async def test_counters_survive_a_restart(serve: Serve) -> None:
    cfg = config(chat={"targets": ["old/a"], "budget": {"requests_per_day": 2}})
    first = await serve(config=cfg)
    assert (await _post(first)).status_code == 200
    await first.aclose()  # hands back what it leased and did not use

    second = await serve(config=cfg)
    assert [(await _post(second)).status_code for _ in range(2)] == [200, 429]
