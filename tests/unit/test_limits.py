"""Rate limits: a target's meter over a sliding minute, what upstreams say is left, and
the engine skipping a member at its limit."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from providers._quota import quota_of
from router.engine import Engine
from router.errors import RateLimited
from router.events import Done, Failed, Quota
from router.limits import Meter, estimate_tokens
from router.policy import Limit, Pool, RoutePolicy
from router.table import RoutingTable
from tests.unit._fakes import REQUEST, FakeProvider, SteadyClock, answer


def test_a_meter_at_its_rpm_waits_until_the_oldest_request_leaves_the_minute() -> None:
    meter, limit = Meter(), Limit(rpm=2)
    meter.start(0.0, 1)
    assert meter.wait(10.0, limit, 1) == 0
    meter.start(10.0, 1)
    assert meter.wait(20.0, limit, 1) == pytest.approx(40.0)
    assert meter.wait(60.5, limit, 1) == 0  # the first has left the window


def test_a_meter_counts_tokens_and_a_reported_usage_replaces_the_estimate() -> None:
    meter, limit = Meter(), Limit(tpm=1000)
    first = meter.start(0.0, 900)
    assert meter.wait(1.0, limit, 200) == pytest.approx(59.0)
    meter.settle(first, 300)  # it used less than estimated
    assert meter.wait(1.0, limit, 200) == 0
    meter.start(2.0, 600)
    assert meter.wait(3.0, limit, 200) == pytest.approx(57.0)  # the first must leave


def test_what_the_upstream_says_is_spent_presses_the_target_until_its_reset() -> None:
    meter = Meter()
    meter.heard(0.0, Quota(requests_left=5, tokens_left=100, reset_s=30.0))
    assert not meter.pressed(1.0)
    meter.heard(0.0, Quota(requests_left=0, tokens_left=100, reset_s=30.0))
    assert meter.pressed(29.0) and not meter.pressed(30.5)
    meter.press(40.0, 5.0)  # a 429
    assert meter.pressed(44.0) and not meter.pressed(45.5)


def test_quota_headers_of_openai_and_anthropic_are_read() -> None:
    openai = {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1m30s",
        "x-ratelimit-remaining-tokens": "1200",
        "x-ratelimit-reset-tokens": "120ms",
    }
    assert quota_of(openai) == Quota(0, 1200, 90.0)
    now = datetime(2026, 12, 8, 0, 0, 0, tzinfo=UTC)
    anthropic = {
        "anthropic-ratelimit-requests-remaining": "10",
        "anthropic-ratelimit-tokens-remaining": "0",
        "anthropic-ratelimit-tokens-reset": "2026-12-08T00:00:12Z",
    }
    assert quota_of(anthropic, now) == Quota(10, 0, 12.0)
    assert quota_of({"content-type": "text/event-stream"}) is None


def test_a_request_is_estimated_from_its_prompt_and_the_completion_it_asks_for() -> None:
    messages: list[dict[str, object]] = [{"role": "user", "content": "x" * 400}]
    assert estimate_tokens(messages, {}) == 101
    assert estimate_tokens(messages, {"max_tokens": 50}) == 151


def limited(rpm: int, *providers: FakeProvider) -> RoutingTable:
    pool = Pool([f"{p.name}/m" for p in providers], "round_robin")
    policy = RoutePolicy(targets=[pool], max_retries=0)
    limits = {p.name: {"*": Limit(rpm=rpm)} for p in providers}
    return RoutingTable({p.name: p for p in providers}, {"r": policy}, limits=limits)


async def last(engine: Engine, tbl: RoutingTable) -> Done | Failed:
    stream = engine.stream(tbl, "r", REQUEST, request_id="req")
    events = [event async for batch in stream for event in batch]
    final = events[-1]
    assert isinstance(final, Done | Failed)
    return final


async def test_a_member_at_its_rpm_is_skipped_and_all_at_theirs_is_a_429(
    clock: SteadyClock,
) -> None:
    a = FakeProvider("a", *(answer("a") for _ in range(3)))
    b = FakeProvider("b", *(answer("b") for _ in range(3)))
    engine, tbl = Engine(clock=clock, rng=lambda: 0.5), limited(1, a, b)
    served = []
    for _ in range(2):
        done = await last(engine, tbl)
        assert isinstance(done, Done)
        served.append(done.model)
    assert sorted(served) == ["a/m", "b/m"]
    refused = await last(engine, tbl)
    assert isinstance(refused, Failed) and isinstance(refused.error, RateLimited)
    assert refused.retry_after is not None and 0 < refused.retry_after <= 60
    assert sorted(refused.record.at_limit) == ["a/m", "b/m"]
    assert (len(a.calls), len(b.calls)) == (1, 1)  # the refusal cost no upstream call
