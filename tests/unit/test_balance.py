"""Pools: each balancing strategy's order with injected randomness, and the engine
trying a pool's members before the route's next entry."""

from __future__ import annotations

import random
from collections import Counter

import msgspec
import pytest

from router.balance import EXPLORE, Load, Sessions, by_session, order
from router.engine import Engine
from router.events import Done, Event
from router.policy import Balance, Pool, RoutePolicy, Target
from router.table import Entry, RoutingTable
from tests.unit._fakes import REQUEST, FakeProvider, SteadyClock, answer, down

A, B, C = Target("a", "m"), Target("b", "m"), Target("c", "m")


def entry(balance: Balance, *members: Target, weights: tuple[float, ...] | None = None) -> Entry:
    return Entry("r#0", members, balance, weights)


def loads(**kw: tuple[int, float | None]) -> dict[str, Load]:
    """``a=(in_flight, ttft_s)`` for target ``a/m``."""
    out = {}
    for name, (in_flight, ttft) in kw.items():
        load = out[f"{name}/m"] = Load()
        load.in_flight, load.ttft_s = in_flight, ttft
    return out


def firsts(
    e: Entry, n: int, loads: dict[str, Load] | None = None, costs: dict[str, float] | None = None
) -> Counter[str]:
    """How often each member came first in ``n`` orders, with a seeded random source."""
    rng = random.Random(7).random
    return Counter(order(e, loads or {}, costs or {}, rng)[0].provider for _ in range(n))


def test_weighted_picks_in_proportion_to_the_weights() -> None:
    counts = firsts(entry("weighted", A, B, C, weights=(3, 1, 1)), 20_000)
    assert counts["a"] / 20_000 == pytest.approx(0.6, abs=0.02)
    assert counts["b"] / 20_000 == pytest.approx(0.2, abs=0.02)
    assert counts["c"] / 20_000 == pytest.approx(0.2, abs=0.02)


def test_weighted_without_weights_spreads_evenly_and_orders_every_member() -> None:
    counts = firsts(entry("weighted", A, B, C), 15_000)
    assert all(c / 15_000 == pytest.approx(1 / 3, abs=0.02) for c in counts.values())
    rng = random.Random(1).random
    assert set(order(entry("weighted", A, B, C), {}, {}, rng)) == {A, B, C}


def test_round_robin_rotates_with_the_turn() -> None:
    e = entry("round_robin", A, B, C)
    never = lambda: pytest.fail("round_robin draws nothing")  # noqa: E731
    assert [order(e, {}, {}, never, turn)[0] for turn in range(4)] == [A, B, C, A]
    assert order(e, {}, {}, never, 1) == [B, C, A]


def test_least_busy_prefers_the_fewest_in_flight_and_breaks_ties_at_random() -> None:
    e = entry("least_busy", A, B, C)
    assert order(e, loads(a=(3, None), b=(1, None), c=(2, None)), {}, random.random) == [B, C, A]
    tied = firsts(e, 1000, loads=loads(a=(0, None), b=(0, None), c=(5, None)))
    assert set(tied) == {"a", "b"} and min(tied.values()) > 400


def test_least_latency_prefers_the_fastest_and_still_explores() -> None:
    e = entry("least_latency", A, B)
    counts = firsts(e, 20_000, loads=loads(a=(0, 0.9), b=(0, 0.1)))
    slow_share = counts["a"] / 20_000
    # Only exploration puts the slow member first: half of the explored requests.
    assert slow_share == pytest.approx(EXPLORE / 2, abs=0.01) and slow_share > 0


def test_least_latency_measures_an_unmeasured_member_first() -> None:
    e = entry("least_latency", A, B)
    rng = random.Random(3).random
    picks = [order(e, loads(a=(0, 0.2)), {}, rng)[0] for _ in range(200)]
    assert Counter(picks)[B] > 180


def test_lowest_cost_orders_by_price_then_load_and_puts_the_unpriced_last() -> None:
    e = entry("lowest_cost", A, B, C)
    costs = {"a/m": 10.0, "b/m": 2.0, "c/m": 2.0}
    busy = loads(b=(4, None), c=(1, None))
    assert order(e, busy, costs, random.random) == [C, B, A]
    assert order(e, {}, {"b/m": 5.0}, random.random)[0] == B


def test_a_load_follows_recent_times_to_first_token() -> None:
    load = Load()
    load.first_token(1.0)
    assert load.ttft_s == 1.0
    for _ in range(10):
        load.first_token(0.2)
    assert load.ttft_s == pytest.approx(0.2, abs=0.03)


@pytest.mark.parametrize(
    ("pool", "error"),
    [
        ({"pool": ["a/m", "b/m"], "weights": [1]}, "expected one weight per pool member"),
        ({"pool": ["a/m", "b/m"], "balance": "fastest"}, "Invalid enum value 'fastest'"),
        ({"pool": ["a/m", "a/m"]}, "a pool names each member once"),
        ({"pool": ["a/m"], "balance": "round_robin", "weights": [2]}, "weights apply to"),
        ({"pool": []}, "Expected `array` of length >= 1"),
    ],
)
def test_an_invalid_pool_is_refused_with_its_key_path(pool: dict[str, object], error: str) -> None:
    with pytest.raises(msgspec.ValidationError) as info:
        msgspec.convert({"targets": ["c/m", pool]}, RoutePolicy)
    assert error in str(info.value) and "$.targets[1]" in str(info.value)


# --- the engine over pools ------------------------------------------------------------


def pool_table(balance: Balance, *providers: FakeProvider, then: str | None = None) -> RoutingTable:
    names = [f"{p.name}/m" for p in providers if p.name != then]
    targets: list[str | Pool] = [Pool(names, balance)]
    if then is not None:
        targets.append(f"{then}/m")
    return RoutingTable(
        {p.name: p for p in providers}, {"r": RoutePolicy(targets=targets, max_retries=0)}
    )


async def run(engine: Engine, tbl: RoutingTable) -> list[Event]:
    stream = engine.stream(tbl, "r", REQUEST, request_id="req")
    return [event async for batch in stream for event in batch]


async def test_a_failed_member_is_replaced_by_another_member_before_the_next_entry(
    clock: SteadyClock,
) -> None:
    engine = Engine(clock=clock, rng=lambda: 0.0)
    a, b = FakeProvider("a", [down()]), FakeProvider("b", answer("from b"))
    after = FakeProvider("z")  # the next entry: never asked
    events = await run(engine, pool_table("weighted", a, b, after, then="z"))
    done = events[-1]
    assert isinstance(done, Done) and done.model == "b/m"
    assert (len(a.calls), len(b.calls), len(after.calls)) == (1, 1, 0)


async def test_round_robin_spreads_requests_over_the_members(clock: SteadyClock) -> None:
    engine = Engine(clock=clock, rng=lambda: 0.5)
    members = [FakeProvider(n, *(answer(n) for _ in range(3))) for n in "abc"]
    tbl = pool_table("round_robin", *members)
    served = []
    for _ in range(6):
        done = (await run(engine, tbl))[-1]
        assert isinstance(done, Done)
        served.append(done.model)
    assert served == ["a/m", "b/m", "c/m", "a/m", "b/m", "c/m"]


async def test_least_busy_sends_a_request_away_from_a_member_with_one_in_flight(
    clock: SteadyClock,
) -> None:
    engine = Engine(clock=clock, rng=lambda: 0.0)
    a = FakeProvider("a", answer("first", "still going"), answer("a again"))
    b = FakeProvider("b", answer("from b"))
    tbl = pool_table("least_busy", a, b)
    first = engine.stream(tbl, "r", REQUEST, request_id="one")
    await anext(first)  # a's attempt has started and is in flight
    assert engine.load("a/m").in_flight == 1
    second = (await run(engine, tbl))[-1]
    assert isinstance(second, Done) and second.model == "b/m"
    async for _ in first:
        pass
    assert engine.load("a/m").in_flight == 0


async def test_loads_outlive_a_new_table(clock: SteadyClock) -> None:
    engine = Engine(clock=clock, rng=lambda: 0.5)
    a = FakeProvider("a", answer("x"), answer("y"))
    b = FakeProvider("b", answer("z"))
    await run(engine, pool_table("least_latency", a, b))
    measured = engine.load("a/m").ttft_s
    assert measured is not None
    await run(engine, pool_table("least_latency", a, b))  # a hot reload's new table
    assert engine.load("a/m").ttft_s is not None and engine.load("b/m").ttft_s is not None


# --- session affinity -------------------------------------------------------------------

ABC = Entry("r#0", (A, B, C))


def test_a_session_always_gets_the_same_order_and_sessions_spread_over_the_members() -> None:
    firsts = Counter(by_session(ABC, f"key\0session-{i}")[0] for i in range(300))
    assert by_session(ABC, "key\0s") == by_session(Entry("other#1", (A, B, C)), "key\0s")
    assert set(firsts) == {A, B, C} and min(firsts.values()) > 70


def test_removing_a_member_moves_only_its_own_sessions() -> None:
    sessions = [f"key\0session-{i}" for i in range(300)]
    before = {s: by_session(ABC, s)[0] for s in sessions}
    after = {s: by_session(Entry("r#0", (A, C)), s)[0] for s in sessions}
    moved = {s for s in sessions if before[s] != after[s]}
    assert moved == {s for s in sessions if before[s] == B}
    # and the second member of each of them is where it goes
    assert all(after[s] == by_session(ABC, s)[1] for s in moved)


def test_weights_share_sessions_in_proportion() -> None:
    weighted = Entry("r#0", (A, B), "weighted", (3.0, 1.0))
    firsts = Counter(by_session(weighted, f"k\0{i}")[0] for i in range(4000))
    assert firsts[A] / 4000 == pytest.approx(0.75, abs=0.03)


def sticky_table(*providers: FakeProvider) -> RoutingTable:
    pool = Pool([f"{p.name}/m" for p in providers])
    policy = RoutePolicy(targets=[pool], max_retries=0, affinity="session")
    return RoutingTable({p.name: p for p in providers}, {"r": policy})


async def served_by(engine: Engine, tbl: RoutingTable, session: str | None) -> tuple[str, Done]:
    stream = engine.stream(tbl, "r", REQUEST, request_id="req", session=session)
    events = [event async for batch in stream for event in batch]
    done = events[-1]
    assert isinstance(done, Done)
    return done.model, done


async def test_a_session_stays_on_its_member_in_every_engine_and_moves_when_it_fails(
    clock: SteadyClock,
) -> None:
    providers = [FakeProvider(n, *(answer(n) for _ in range(60))) for n in "abc"]
    tbl = sticky_table(*providers)
    one, two = Engine(clock=clock, rng=random.random), Engine(clock=clock, rng=random.random)
    session = "key\0conversation-7"
    home, done = await served_by(one, tbl, session)
    assert done.record.pools[0].affinity == "hit"
    for engine in (one, two) * 5:  # two processes: nothing shared but the hash
        assert (await served_by(engine, tbl, session))[0] == home

    own = next(p for p in providers if f"{p.name}/m" == home)
    own.scripts.insert(0, [down()])
    moved_to, done = await served_by(one, tbl, session)
    assert moved_to != home and done.record.attempts[0].target == home
    assert moved_to == by_session(tbl.routes["r"].entries[0], session)[1].name


async def test_without_a_session_the_pool_balances_as_usual(clock: SteadyClock) -> None:
    providers = [FakeProvider(n, *(answer(n) for _ in range(3))) for n in "ab"]
    pool = Pool(["a/m", "b/m"], "round_robin")
    policy = RoutePolicy(targets=[pool], affinity="session")
    tbl = RoutingTable({p.name: p for p in providers}, {"r": policy})
    engine = Engine(clock=clock, rng=random.random)
    served = [(await served_by(engine, tbl, None))[0] for _ in range(4)]
    assert served == ["a/m", "b/m", "a/m", "b/m"]


async def test_loads_lists_the_targets_tried_and_reading_creates_none(clock: SteadyClock) -> None:
    engine = Engine(clock=clock, rng=lambda: 0.5)
    assert engine.loads() == {}
    await run(engine, pool_table("round_robin", FakeProvider("a", answer("x")), FakeProvider("b")))
    loads = engine.loads()
    assert list(loads) == ["a/m"]  # b was never tried
    assert loads["a/m"].in_flight == 0 and loads["a/m"].ttft_s is not None
    loads.clear()  # a snapshot: the engine keeps its own
    assert list(engine.loads()) == ["a/m"]


async def test_a_moved_session_stays_where_it_went_until_idle_for_the_ttl(
    clock: SteadyClock,
) -> None:
    providers = [FakeProvider(n, *(answer(n) for _ in range(20))) for n in "abc"]
    pool = Pool([f"{p.name}/m" for p in providers])
    policy = RoutePolicy(targets=[pool], max_retries=0, affinity="session", affinity_ttl_s=60)
    tbl = RoutingTable({p.name: p for p in providers}, {"r": policy})
    engine = Engine(clock=clock, rng=random.random)
    session = "key\0conversation-9"
    own, second = (t.name for t in by_session(tbl.routes["r"].entries[0], session)[:2])
    next(p for p in providers if f"{p.name}/m" == own).scripts.insert(0, [down()])
    assert (await served_by(engine, tbl, session))[0] == second  # its own member failed
    # Its own member answers again, but the conversation's prompt cache is on the second:
    # it stays there while it keeps talking...
    for _ in range(3):
        clock.advance(50)
        served, done = await served_by(engine, tbl, session)
        assert served == second and done.record.pools[0].order[0] == second
    # ...and goes home once it was idle for affinity_ttl_s (its cache is gone anyway).
    clock.advance(61)
    assert (await served_by(engine, tbl, session))[0] == own
    assert len(engine._sessions) == 0  # a session at home needs no memory


def test_sessions_are_bounded_and_expire() -> None:
    sessions = Sessions(max_size=2)
    sessions.served("p", "s1", "a/m", until=10.0)
    sessions.served("p", "s2", "b/m", until=10.0)
    sessions.served("p", "s3", "c/m", until=10.0)
    assert sessions.member("p", "s1", now=0.0) is None  # the least recently served went
    assert sessions.member("p", "s3", now=0.0) == "c/m"
    assert sessions.member("p", "s3", now=10.0) is None and len(sessions) == 1
