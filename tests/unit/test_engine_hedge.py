"""`Engine` with ``hedge_after_s``: a second attempt beside a slow first one.

The upstreams are scripted (`Until` steps release their bytes when the test says), the
hedge fires on a real 10 ms timer: each test waits for the engine's events, never for
time.
"""

from __future__ import annotations

from collections.abc import Callable

from router.engine import Engine
from router.errors import ContentFiltered, InvalidRequest
from router.events import (
    AttemptFailed,
    AttemptStarted,
    Done,
    Event,
    Failed,
    Finish,
    Hedged,
    TextDelta,
    Usage,
)
from router.hedge import MIN_SAMPLES, Latencies
from router.policy import Pool, RoutePolicy
from router.table import RoutingTable
from tests.unit._fakes import (
    HANG,
    REQUEST,
    FakeProvider,
    Until,
    answer,
    client_text,
    cut,
    down,
    of_type,
    route,
    table,
)

HEDGE = 0.01


async def run(
    engine: Engine,
    tbl: RoutingTable,
    on: Callable[[Event], None] = lambda e: None,
    *,
    session: str | None = None,
) -> list[Event]:
    """The request's events; ``on`` sees each as it arrives (to release an upstream)."""
    out: list[Event] = []
    async for batch in engine.stream(tbl, "r", REQUEST, request_id="req-1", session=session):
        for event in batch:
            out.append(event)
            on(event)
    return out


def when(kind: type[Event], then: Callable[[], None]) -> Callable[[Event], None]:
    def on(event: Event) -> None:
        if type(event) is kind:
            then()

    return on


async def test_a_silent_first_attempt_is_hedged_and_the_hedge_answers(engine: Engine) -> None:
    a = FakeProvider("a", [HANG])
    b = FakeProvider("b", answer("Once", " upon", usage=Usage(5, 2, 7)))
    events = await run(engine, table(route("a", "b", hedge_after_s=HEDGE), a, b))

    assert client_text(events) == "Once upon"
    kinds = [type(e) for e in events if not isinstance(e, TextDelta)]
    assert kinds == [AttemptStarted, Hedged, AttemptStarted, Done]
    hedged = of_type(events, Hedged)[0]
    assert (hedged.attempt, hedged.target, hedged.after_s) == (2, "b/m", HEDGE)
    done = events[-1]
    assert isinstance(done, Done) and done.model == "b/m"
    assert of_type(events, AttemptStarted)[1].target == "b/m"  # the model that answers
    first, second = done.record.attempts
    assert (first.target, first.outcome) == ("a/m", "cancelled")
    assert first.error == "b/m sent content first"
    assert (second.target, second.outcome, second.ttft_ms is not None) == ("b/m", "ok", True)
    assert done.record.hedges[0].won is True
    assert a.closed == 1  # the loser's upstream stream was closed
    assert not of_type(events, AttemptFailed)  # losing a race is no failure
    assert done.usage == Usage(5, 2, 7)
    assert engine.load("a/m").in_flight == engine.load("b/m").in_flight == 0
    # The first attempt waited at least this long for a first token: its target's
    # recent latency hears of it, so a least_latency pool moves away from it.
    assert engine.load("a/m").ttft_s is not None


async def test_an_attempt_that_answers_in_time_gets_no_hedge(engine: Engine) -> None:
    a = FakeProvider("a", answer("fast"))
    b = FakeProvider("b")
    events = await run(engine, table(route("a", "b", hedge_after_s=5.0), a, b))
    assert client_text(events) == "fast"
    assert not of_type(events, Hedged) and not b.calls
    done = events[-1]
    assert isinstance(done, Done) and done.record.hedges == []


async def test_the_first_attempt_can_still_win_and_the_hedge_is_cancelled(
    engine: Engine,
) -> None:
    late = Until()
    a = FakeProvider("a", [late, *answer("first", " after all")])
    b = FakeProvider("b", [HANG])
    events = await run(
        engine, table(route("a", "b", hedge_after_s=HEDGE), a, b), when(Hedged, late.release)
    )
    assert client_text(events) == "first after all"
    done = events[-1]
    assert isinstance(done, Done) and done.model == "a/m"
    assert [a.target for a in of_type(events, AttemptStarted)] == ["a/m"]  # b never answered
    hedge_attempt = done.record.attempts[1]
    assert (hedge_attempt.target, hedge_attempt.outcome) == ("b/m", "cancelled")
    assert done.record.hedges[0].won is False
    assert b.closed == 1 and len(b.calls) == 1


async def test_a_failure_during_the_race_leaves_the_other_attempt_answering(
    engine: Engine,
) -> None:
    a_fails, b_answers = Until(), Until()
    a = FakeProvider("a", [a_fails, down()])
    b = FakeProvider("b", [b_answers, *answer("from b")])

    def on(event: Event) -> None:
        if isinstance(event, Hedged):
            a_fails.release()
        elif isinstance(event, AttemptFailed):
            b_answers.release()

    events = await run(engine, table(route("a", "b", hedge_after_s=HEDGE), a, b), on)
    assert client_text(events) == "from b"
    failed = of_type(events, AttemptFailed)
    assert [(f.attempt, f.target, f.reason) for f in failed] == [(1, "a/m", "upstream_unavailable")]
    done = events[-1]
    assert isinstance(done, Done) and done.model == "b/m"
    assert [a.outcome for a in done.record.attempts] == ["failed", "ok"]
    assert done.record.hedges[0].won is True


async def test_a_hedge_that_fails_is_not_tried_again_after_the_first_attempt(
    engine: Engine,
) -> None:
    b_fails, a_speaks = Until(), Until()
    a = FakeProvider("a", [a_speaks, *cut("Once upon")])
    b = FakeProvider("b", [b_fails, down()])
    c = FakeProvider("c", answer(" a time"))

    def on(event: Event) -> None:
        if isinstance(event, Hedged):
            b_fails.release()
        elif isinstance(event, AttemptFailed) and event.target == "b/m":
            a_speaks.release()

    policy = route("a", "b", "c", hedge_after_s=HEDGE, stream_fallback_mode="prefill")
    c.supports_prefill = True
    events = await run(engine, table(policy, a, b, c), on)
    assert client_text(events) == "Once upon a time"
    done = events[-1]
    assert isinstance(done, Done) and done.model == "c/m"
    assert [(r.target, r.outcome) for r in done.record.attempts] == [
        ("a/m", "failed"),
        ("b/m", "failed"),
        ("c/m", "ok"),
    ]
    assert len(b.calls) == 1  # the continuation skipped the hedge that had failed


async def test_a_final_failure_during_the_race_stops_both(engine: Engine) -> None:
    refuse = Until()
    a = FakeProvider("a", [refuse, ContentFiltered("refused by the content policy", provider="a")])
    b = FakeProvider("b", [HANG])
    events = await run(
        engine, table(route("a", "b", hedge_after_s=HEDGE), a, b), when(Hedged, refuse.release)
    )
    final = events[-1]
    assert isinstance(final, Failed) and isinstance(final.error, ContentFiltered)
    assert b.closed == 1
    assert final.record.attempts[1].outcome == "cancelled"
    assert "the request stopped" in (final.record.attempts[1].error or "")


async def test_both_failing_moves_on_to_the_next_entry(engine: Engine) -> None:
    a_fails = Until()
    a = FakeProvider("a", [a_fails, down()])
    b = FakeProvider("b", [InvalidRequest("bad", provider="b", upstream_status=400)])
    c = FakeProvider("c", answer("from c"))

    def on(event: Event) -> None:
        if isinstance(event, AttemptFailed) and event.target == "b/m":
            a_fails.release()

    policy = route("a", "b", "c", hedge_after_s=HEDGE, max_retries=0)
    events = await run(engine, table(policy, a, b, c), on)
    assert client_text(events) == "from c"
    assert sorted(f.target for f in of_type(events, AttemptFailed)) == ["a/m", "b/m"]
    done = events[-1]
    assert isinstance(done, Done) and done.record.hedges[0].won is None


async def test_a_consumer_that_leaves_mid_race_closes_both_upstreams(engine: Engine) -> None:
    a = FakeProvider("a", [HANG])
    b = FakeProvider("b", [HANG])
    stream = engine.stream(
        table(route("a", "b", hedge_after_s=HEDGE), a, b), "r", REQUEST, request_id="req-1"
    )
    async for batch in stream:
        if any(isinstance(e, Hedged) for e in batch):
            break
    await stream.aclose()
    # The hedge may not have reached its upstream yet; whatever was opened is closed.
    assert a.closed == 1 and b.closed == len(b.calls)
    assert engine.load("a/m").in_flight == engine.load("b/m").in_flight == 0


async def test_hedges_go_to_the_next_member_of_a_pool(engine: Engine) -> None:
    a = FakeProvider("a", [HANG])
    b = FakeProvider("b", answer("pooled"))
    policy = RoutePolicy(
        targets=[Pool(pool=["a/m", "b/m"], balance="round_robin")], hedge_after_s=HEDGE
    )
    events = await run(engine, RoutingTable({"a": a, "b": b}, {"r": policy}))
    assert client_text(events) == "pooled"
    assert of_type(events, Hedged)[0].target == "b/m"


async def test_p95_hedges_only_with_enough_samples_and_then_at_the_percentile(
    engine: Engine,
) -> None:
    a = FakeProvider("a")
    b = FakeProvider("b")
    tbl = table(route("a", "b", hedge_after_s="p95"), a, b)
    for _ in range(MIN_SAMPLES - 1):  # quick answers: no hedge, and samples gathered
        a.add(answer("ok"))
        events = await run(engine, tbl)
        assert not of_type(events, Hedged)
    latencies = engine._ttfts["r"]
    assert latencies.p95() is None
    a.add(answer("ok"))
    await run(engine, tbl)
    p95 = latencies.p95()
    assert p95 is not None and p95 < 1.0
    a.add([HANG])
    b.add(answer("hedged"))
    events = await run(engine, tbl)
    assert client_text(events) == "hedged"
    assert of_type(events, Hedged)[0].after_s == p95


def test_p95_is_the_nearest_rank_percentile() -> None:
    latencies = Latencies()
    for ms in range(1, 101):
        latencies.add(ms / 1000)
    assert latencies.p95() == 0.095
    latencies.add(5.0)  # the window holds the last 200 samples; a slow one moves it up
    assert latencies.p95() == 0.096


async def test_no_hedge_after_content_was_shown(engine: Engine) -> None:
    """A continuation is never hedged: the client already shows text."""
    a = FakeProvider("a", cut("Once"))
    b = FakeProvider("b", [[TextDelta(" upon")], [Finish("stop")]])
    c = FakeProvider("c")
    policy = route("a", "b", "c", hedge_after_s=HEDGE, stream_fallback_mode="user_turn")
    events = await run(engine, table(policy, a, b, c))
    assert client_text(events).startswith("Once")
    assert not of_type(events, Hedged) and not c.calls
