"""The budget gate on a real database with a clock the test moves: calendar windows
reset when they end; a rolling window frees its oldest use as it drops out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from providers.pricing import PriceBook
from router.policy import Budget
from server.core.budgets import BudgetGate, limits_of
from server.errors import BudgetExceeded
from server.store import PolicyStore


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def _admitted(gate: BudgetGate, budget: Budget, count: int) -> list[bool]:
    limits = limits_of("route:chat", "route 'chat'", budget)
    out = []
    for i in range(count):
        try:
            await gate.admit(f"r{i}", limits)
            out.append(True)
        except BudgetExceeded:
            out.append(False)
    return out


async def test_a_calendar_window_resets_when_it_ends(store: PolicyStore) -> None:
    clock = Clock(datetime(2026, 11, 23, 10, 59, 30, tzinfo=UTC))
    gate = BudgetGate(store.engine, lambda: PriceBook({}), clock=clock)
    budget = Budget(requests_per_hour=2)

    assert await _admitted(gate, budget, 3) == [True, True, False]
    with pytest.raises(BudgetExceeded) as refused:
        await gate.admit("late", limits_of("route:chat", "route 'chat'", budget))
    assert refused.value.retry_after == 30  # at 11:00
    clock.advance(31)
    assert await _admitted(gate, budget, 3) == [True, True, False]


async def test_a_rolling_window_frees_its_oldest_use_as_it_drops_out(store: PolicyStore) -> None:
    clock = Clock(datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC))
    gate = BudgetGate(store.engine, lambda: PriceBook({}), clock=clock)
    budget = Budget(requests_per_hour=3, window="rolling")

    assert await _admitted(gate, budget, 2) == [True, True]  # at 10:00
    clock.advance(30 * 60)
    assert await _admitted(gate, budget, 2) == [True, False]  # at 10:30: 3 in the hour
    with pytest.raises(BudgetExceeded) as refused:
        await gate.admit("late", limits_of("route:chat", "route 'chat'", budget))
    assert refused.value.retry_after == 30 * 60  # 11:00, when 10:00 drops
    assert "per any hour" in str(refused.value)

    clock.advance(30 * 60 + 1)  # 11:00:01: the two of 10:00 are out, the one of 10:30 in
    assert await _admitted(gate, budget, 3) == [True, True, False]
    (report,) = await gate.report([("route:chat", "route 'chat'", budget)])
    assert (report["window"], report["used"], report["max"]) == ("rolling", 3.0, 3.0)


async def test_a_process_that_stops_hands_back_its_unused_lease(store: PolicyStore) -> None:
    clock = Clock(datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC))
    budget = Budget(requests_per_day=1000)
    first = BudgetGate(store.engine, lambda: PriceBook({}), clock=clock)
    assert await _admitted(first, budget, 1) == [True]  # leased 100, used 1
    (leased,) = await first.report([("route:chat", "route 'chat'", budget)])
    assert leased["used"] == 1.0  # its own lease is not counted as use
    await first.aclose()

    second = BudgetGate(store.engine, lambda: PriceBook({}), clock=clock)
    (after,) = await second.report([("route:chat", "route 'chat'", budget)])
    assert after["used"] == 1.0 and after["remaining"] == 999.0


async def test_far_from_its_limit_admission_rarely_touches_the_database(
    store: PolicyStore,
) -> None:
    clock = Clock(datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC))
    gate = BudgetGate(store.engine, lambda: PriceBook({}), clock=clock)
    budget = Budget(requests_per_day=1_000_000, tokens_per_day=10**12)
    assert all(await _admitted(gate, budget, 500))
    # one lease per 100 requests, one lease of tokens (a tenth of what remains)
    assert gate.round_trips <= 5 + 1
    near = Budget(requests_per_hour=5)
    await _admitted(gate, near, 5)
    assert gate.round_trips >= 6 + 5  # near a small limit: one request at a time


async def test_requests_admitted_and_never_ended_are_forgotten_beyond_a_cap(
    store: PolicyStore,
) -> None:
    clock = Clock(datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC))
    gate = BudgetGate(store.engine, lambda: PriceBook({}), clock=clock, max_pending=3)
    assert all(await _admitted(gate, Budget(tokens_per_day=10**9), 5))
    assert gate.forgotten == 2
