"""`Engine`: attempts, retries, fallbacks, timeouts and circuit breakers.

Stream switches after content was delivered live in test_engine_midstream.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import pytest

from router.engine import Engine
from router.errors import (
    AuthenticationFailed,
    ConnectFailed,
    ContentFiltered,
    ContextLengthExceeded,
    InvalidRequest,
    MalformedResponse,
    ModelNotFound,
    NoSuchModel,
    ProviderError,
    RateLimited,
    RequestTimeout,
    StreamErrorEvent,
    StreamInterrupted,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from router.events import (
    AttemptFailed,
    AttemptStarted,
    Chunk,
    Done,
    Event,
    Failed,
    Finish,
    ReasoningDelta,
    TextDelta,
    Usage,
)
from router.policy import BreakerPolicy
from router.provider import AttemptOptions, ProviderRequest
from router.table import RoutingTable
from tests.unit._fakes import (
    HANG,
    REQUEST,
    Call,
    FakeProvider,
    RecordingSleep,
    Script,
    SteadyClock,
    answer,
    cut,
    down,
    fail,
    of_type,
    route,
    table,
)


async def collect(engine: Engine, tbl: RoutingTable, model: str = "r") -> list[Event]:
    stream = engine.stream(tbl, model, REQUEST, request_id="req-1")
    return [event async for batch in stream for event in batch]


async def final(engine: Engine, tbl: RoutingTable, model: str = "r") -> Done | Failed:
    last = (await collect(engine, tbl, model))[-1]
    assert isinstance(last, Done | Failed)
    return last


# --- success ---------------------------------------------------------------------------


async def test_success_emits_attempt_started_text_and_done(engine: Engine) -> None:
    a = FakeProvider("a", answer("Once", " upon", usage=Usage(7, 2, 9)))

    events = await collect(engine, table(route("a", connect_timeout_s=3.0), a))

    assert events[:3] == [
        AttemptStarted(1, "a/m", "original"),
        TextDelta("Once"),
        TextDelta(" upon"),
    ]
    assert len(events) == 4
    done = events[3]
    assert isinstance(done, Done)
    assert (done.model, done.finish_reason, done.usage) == ("a/m", "stop", Usage(7, 2, 9))
    assert [(r.target, r.outcome, r.chars) for r in done.record.attempts] == [("a/m", "ok", 9)]
    assert a.calls == [Call("m", REQUEST, AttemptOptions(connect_timeout_s=3.0))]


async def test_done_carries_the_upstream_finish_reason(engine: Engine) -> None:
    a = FakeProvider("a", answer("Once", finish="length"))

    done = await final(engine, table(route("a"), a))

    assert isinstance(done, Done)
    assert done.finish_reason == "length"


async def test_provider_model_name_is_served_by_that_provider_directly(engine: Engine) -> None:
    a = FakeProvider("a", answer("hi"))

    done = await final(engine, RoutingTable({"a": a}, {}), "a/other")

    assert isinstance(done, Done)
    assert done.model == "a/other"
    assert [c.model for c in a.calls] == ["other"]


def test_unknown_model_raises_before_anything_is_sent(engine: Engine) -> None:
    a = FakeProvider("a")

    with pytest.raises(NoSuchModel):
        engine.stream(table(route("a"), a), "nope", REQUEST, request_id="req-1")
    assert a.calls == []


async def test_usage_is_summed_across_attempts_and_done_names_the_answering_target(
    engine: Engine,
) -> None:
    a = FakeProvider("a", [[Usage(10, 0, 10)], down()])
    b = FakeProvider("b", answer("hi", usage=Usage(10, 5, 15)))

    done = await final(engine, table(route("a", "b", max_retries=0), a, b))

    assert isinstance(done, Done)
    assert done.model == "b/m"
    assert done.usage == Usage(20, 5, 25)
    assert [r.usage for r in done.record.attempts] == [Usage(10, 0, 10), Usage(10, 5, 15)]


# --- retries and fallbacks before the first token ---------------------------------------


async def test_retries_same_target_after_429_waiting_its_retry_after(
    engine: Engine, sleep: RecordingSleep
) -> None:
    a = FakeProvider("a", fail(RateLimited("slow down", retry_after=1.5)), answer("hi"))

    events = await collect(engine, table(route("a"), a))

    assert sleep.delays == [1.5]
    assert of_type(events, AttemptStarted) == [
        AttemptStarted(1, "a/m", "original"),
        AttemptStarted(2, "a/m", "original"),
    ]
    assert [(f.reason, f.retry_in_s) for f in of_type(events, AttemptFailed)] == [
        ("rate_limited", 1.5)
    ]
    assert isinstance(events[-1], Done)
    assert events[-1].model == "a/m"


async def test_retries_same_target_after_500_with_exponential_backoff(
    engine: Engine, sleep: RecordingSleep
) -> None:
    a = FakeProvider("a", fail(down()), fail(down()), answer("hi"))

    done = await final(engine, table(route("a", backoff_base_s=1.0, max_retries=2), a))

    assert isinstance(done, Done)
    assert done.model == "a/m"
    assert sleep.delays == [0.75, 1.5]  # rng 0.5: three quarters of 1 s, then of 2 s


async def test_persistent_503_exhausts_retries_then_falls_back(
    engine: Engine, sleep: RecordingSleep
) -> None:
    a = FakeProvider("a", fail(down()), fail(down()), fail(down()))
    b = FakeProvider("b", answer("hi"))

    events = await collect(engine, table(route("a", "b", backoff_base_s=1.0, max_retries=2), a, b))

    assert len(a.calls) == 3
    assert sleep.delays == [0.75, 1.5]
    assert [(f.target, f.retry_in_s) for f in of_type(events, AttemptFailed)] == [
        ("a/m", 0.75),
        ("a/m", 1.5),
        ("a/m", None),
    ]
    assert isinstance(events[-1], Done)
    assert events[-1].model == "b/m"


async def test_retry_after_above_the_cap_falls_back_without_waiting(
    engine: Engine, sleep: RecordingSleep
) -> None:
    a = FakeProvider("a", fail(RateLimited("slow down", retry_after=60.0)))
    b = FakeProvider("b", answer("hi"))

    done = await final(engine, table(route("a", "b", max_retry_after_s=10.0), a, b))

    assert isinstance(done, Done)
    assert done.model == "b/m"
    assert sleep.delays == []


async def test_retry_that_would_outlast_the_request_deadline_falls_back_instead(
    engine: Engine, sleep: RecordingSleep
) -> None:
    a = FakeProvider("a", fail(RateLimited("slow down", retry_after=5.0)))
    b = FakeProvider("b", answer("hi"))

    done = await final(engine, table(route("a", "b", request_timeout_s=2.0), a, b))

    assert isinstance(done, Done)
    assert done.model == "b/m"
    assert sleep.delays == []


RETRIED = "retried on a/m"
FELL_BACK = "fell back to b/m"
RETURNED = "returned to the client"


@pytest.mark.parametrize(
    ("error", "decision"),
    [
        (RateLimited("429"), RETRIED),
        (UpstreamUnavailable("500", upstream_status=500), RETRIED),
        (ConnectFailed("refused"), RETRIED),
        (UpstreamTimeout("connect", phase="connect"), FELL_BACK),
        (StreamInterrupted("cut before content"), RETRIED),
        (MalformedResponse("bad json"), RETRIED),
        (StreamErrorEvent("overloaded"), RETRIED),
        (AuthenticationFailed("401"), FELL_BACK),
        (ModelNotFound("404"), FELL_BACK),
        (ContextLengthExceeded("too long"), FELL_BACK),
        (InvalidRequest("bad param"), FELL_BACK),
        (ContentFiltered("policy"), RETURNED),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, ProviderError) else None,
)
async def test_error_type_decides_retry_fallback_or_return(
    engine: Engine, sleep: RecordingSleep, error: ProviderError, decision: str
) -> None:
    a = FakeProvider("a", fail(error), answer("from a"))
    b = FakeProvider("b", answer("from b"))

    result = await final(engine, table(route("a", "b"), a, b))

    if decision == RETURNED:
        assert isinstance(result, Failed)
        assert result.error is error
    else:
        assert isinstance(result, Done)
        assert result.model == ("a/m" if decision == RETRIED else "b/m")
    assert len(a.calls) == (2 if decision == RETRIED else 1)
    assert len(b.calls) == (1 if decision == FELL_BACK else 0)
    assert len(sleep.delays) == (1 if decision == RETRIED else 0)


async def test_content_filtered_is_returned_at_once_without_fallback(engine: Engine) -> None:
    refusal = ContentFiltered("blocked by content policy")
    a = FakeProvider("a", fail(refusal))
    b = FakeProvider("b", answer("hi"))

    events = await collect(engine, table(route("a", "b"), a, b))

    assert [type(e) for e in events] == [AttemptStarted, AttemptFailed, Failed]
    failed = events[-1]
    assert isinstance(failed, Failed)
    assert (failed.error, failed.partial, failed.errors) == (refusal, False, [("a/m", refusal)])
    assert b.calls == []


# --- timeouts --------------------------------------------------------------------------

FAST = {"first_token_timeout_s": 0.05, "stall_timeout_s": 0.05, "max_retries": 0}


@pytest.mark.parametrize(
    ("script", "phase", "partial"),
    [
        pytest.param([HANG], "first_token", False, id="silent-from-the-start"),
        pytest.param([[Usage(5, 0, 5)], [], HANG], "first_token", False, id="no-content-yet"),
        pytest.param([[TextDelta("Once")], HANG], "stall", True, id="silent-mid-stream"),
    ],
)
async def test_timeout_is_reported_with_its_phase_and_falls_back(
    engine: Engine, script: Script, phase: str, partial: bool
) -> None:
    a = FakeProvider("a", script)
    b_error = down()
    b = FakeProvider("b", fail(b_error))

    failed = await final(engine, table(route("a", "b", **FAST), a, b))

    assert isinstance(failed, Failed)
    [(a_target, timeout), (b_target, b_failure)] = failed.errors
    assert isinstance(timeout, UpstreamTimeout)
    assert (a_target, timeout.phase) == ("a/m", phase)
    assert (b_target, b_failure) == ("b/m", b_error)
    assert failed.partial is partial
    assert a.closed == 1


@pytest.mark.parametrize(
    "script",
    [
        pytest.param([HANG], id="before-first-token"),
        pytest.param([[TextDelta("Once")], HANG], id="mid-stream"),
    ],
)
async def test_total_request_timeout_stops_the_request(engine: Engine, script: Script) -> None:
    a = FakeProvider("a", script)
    b = FakeProvider("b", answer("hi"))

    failed = await final(engine, table(route("a", "b", request_timeout_s=0.05), a, b))

    assert isinstance(failed, Failed)
    assert isinstance(failed.error, UpstreamTimeout)
    assert failed.error.phase == "total"
    assert b.calls == []


# --- circuit breakers across requests --------------------------------------------------


async def test_flapping_primary_is_skipped_once_its_breaker_opens_then_probed_after_cooldown(
    engine: Engine, clock: SteadyClock
) -> None:
    a = FakeProvider("a", fail(down()), fail(down()), answer("a is back"))
    b = FakeProvider("b", answer("1"), answer("2"), answer("3"))
    tbl = table(
        route("a", "b", max_retries=0, breaker=BreakerPolicy(failure_threshold=2, cooldown_s=30)),
        a,
        b,
    )

    for _ in range(2):
        done = await final(engine, tbl)
        assert isinstance(done, Done)
        assert (done.model, done.record.skipped) == ("b/m", [])
    assert engine.breaker_states()["a/m"] == "open"

    events = await collect(engine, tbl)
    done = events[-1]
    assert isinstance(done, Done)
    assert (done.model, done.record.skipped) == ("b/m", ["a/m"])
    assert of_type(events, AttemptStarted) == [AttemptStarted(1, "b/m", "original")]
    assert len(a.calls) == 2

    clock.advance(30.0)
    done = await final(engine, tbl)
    assert isinstance(done, Done)
    assert (done.model, done.record.skipped) == ("a/m", [])
    assert engine.breaker_states()["a/m"] == "closed"


async def test_failed_probe_reopens_the_breaker_and_the_target_is_skipped_again(
    engine: Engine, clock: SteadyClock
) -> None:
    a = FakeProvider("a", fail(down()), fail(down()))
    b = FakeProvider("b", answer("1"), answer("2"), answer("3"))
    tbl = table(
        route("a", "b", max_retries=0, breaker=BreakerPolicy(failure_threshold=1, cooldown_s=30)),
        a,
        b,
    )

    await final(engine, tbl)
    clock.advance(30.0)
    probed = await final(engine, tbl)
    skipped = await final(engine, tbl)

    assert isinstance(probed, Done)
    assert (probed.model, probed.record.skipped) == ("b/m", [])
    assert isinstance(skipped, Done)
    assert skipped.record.skipped == ["a/m"]
    assert len(a.calls) == 2


async def test_targets_are_still_tried_when_every_breaker_is_open(
    engine: Engine,
) -> None:
    a = FakeProvider("a", fail(down()), answer("hi"))
    tbl = table(
        route("a", max_retries=0, breaker=BreakerPolicy(failure_threshold=1, cooldown_s=30)), a
    )

    assert isinstance(await final(engine, tbl), Failed)
    assert engine.breaker_states() == {"a/m": "open"}
    done = await final(engine, tbl)

    assert isinstance(done, Done)
    assert (done.model, done.record.skipped) == ("a/m", [])
    assert engine.breaker_states() == {"a/m": "closed"}


async def test_client_errors_do_not_count_against_the_target_breaker(engine: Engine) -> None:
    a = FakeProvider("a", fail(ContextLengthExceeded("too long")), answer("hi"))
    b = FakeProvider("b", answer("hi"))
    tbl = table(route("a", "b", breaker=BreakerPolicy(failure_threshold=1, cooldown_s=30)), a, b)

    await final(engine, tbl)
    done = await final(engine, tbl)

    assert engine.breaker_states()["a/m"] == "closed"
    assert isinstance(done, Done)
    assert done.model == "a/m"


async def test_does_not_wait_for_a_retry_that_the_just_opened_breaker_would_refuse(
    engine: Engine, sleep: RecordingSleep
) -> None:
    a = FakeProvider("a", fail(RateLimited("slow down", retry_after=20.0)))
    b = FakeProvider("b", answer("hi"))
    tbl = table(route("a", "b", breaker=BreakerPolicy(failure_threshold=1)), a, b)

    done = await final(engine, tbl)

    assert isinstance(done, Done)
    assert (done.model, done.record.skipped, sleep.delays) == ("b/m", [], [])


async def test_breaker_follows_the_policy_of_a_reloaded_table(engine: Engine) -> None:
    a = FakeProvider("a", fail(down()), fail(down()))
    b = FakeProvider("b", answer("1"), answer("2"))
    before = route("a", "b", max_retries=0, breaker=BreakerPolicy(failure_threshold=5))
    after = route("a", "b", max_retries=0, breaker=BreakerPolicy(failure_threshold=2))

    await final(engine, table(before, a, b))
    await final(engine, table(after, a, b))

    assert engine.breaker_states()["a/m"] == "open"


# --- the consumer ----------------------------------------------------------------------


async def test_closing_the_stream_early_closes_the_provider_stream(engine: Engine) -> None:
    a = FakeProvider("a", answer("Once", " upon", " a time"))
    stream = engine.stream(table(route("a"), a), "r", REQUEST, request_id="req-1")

    async for batch in stream:
        if any(isinstance(e, TextDelta) for e in batch):
            break
    await stream.aclose()

    assert a.closed == 1
    assert engine.breaker_states() == {"a/m": "closed"}


# --- fallback_on -----------------------------------------------------------------------


async def test_failure_outside_fallback_on_is_returned_at_once(engine: Engine) -> None:
    a = FakeProvider("a", fail(down()))
    b = FakeProvider("b", answer("never"))

    last = await final(engine, table(route("a", "b", fallback_on=frozenset({"timeout"})), a, b))

    assert isinstance(last, Failed) and isinstance(last.error, UpstreamUnavailable)
    assert (len(a.calls), len(b.calls)) == (1, 0)


async def test_failure_inside_fallback_on_still_retries_and_falls_back(
    engine: Engine, sleep: RecordingSleep
) -> None:
    a = FakeProvider("a", fail(down()), fail(down()))
    b = FakeProvider("b", answer("hi"))
    policy = route("a", "b", max_retries=1, fallback_on=frozenset({"upstream_unavailable"}))

    last = await final(engine, table(policy, a, b))

    assert isinstance(last, Done) and last.model == "b/m"
    assert len(a.calls) == 2


async def test_stall_timeout_holds_when_another_task_continues_the_stream(engine: Engine) -> None:
    """A server holds a stream back in one task and streams it from another."""
    a = FakeProvider("a", [[TextDelta("one ")], HANG])
    b = FakeProvider("b", answer("one two"))
    stream = engine.stream(
        table(route("a", "b", stall_timeout_s=0.05, stream_fallback_mode="restart"), a, b),
        "r",
        REQUEST,
        request_id="req-1",
    )
    first = await anext(stream)
    while not any(isinstance(e, TextDelta) for e in first):
        first = await anext(stream)

    async def rest() -> list[Event]:
        return [event async for batch in stream for event in batch]

    events = await asyncio.create_task(rest())
    failure = of_type(events, AttemptFailed)[0]
    assert (failure.target, failure.reason) == ("a/m", "timeout")
    assert isinstance(events[-1], Done) and events[-1].model == "b/m"


# --- time-aware fallback ---------------------------------------------------------------


async def test_silent_target_is_tried_once_then_the_fallback_answers_at_once(
    engine: Engine, sleep: RecordingSleep
) -> None:
    a = FakeProvider("a", [HANG])
    b = FakeProvider("b", answer("hi"))
    policy = route("a", "b", first_token_timeout_s=0.05, request_timeout_s=0.5, max_retries=2)

    events = await collect(engine, table(policy, a, b))

    assert isinstance(events[-1], Done) and events[-1].model == "b/m"
    assert (len(a.calls), len(b.calls), sleep.delays) == (1, 1, [])
    [failure] = of_type(events, AttemptFailed)
    assert (failure.reason, failure.retry_in_s) == ("timeout", None)


async def test_silent_last_target_is_retried_while_time_remains(
    engine: Engine, sleep: RecordingSleep
) -> None:
    a = FakeProvider("a", [HANG], answer("hi"))

    done = await final(engine, table(route("a", first_token_timeout_s=0.05), a))

    assert isinstance(done, Done)
    assert len(a.calls) == 2 and len(sleep.delays) == 1


async def test_retries_that_would_starve_the_next_target_go_to_it_instead(
    engine: Engine, sleep: RecordingSleep
) -> None:
    a = FakeProvider("a", fail(down()))
    b = FakeProvider("b", answer("hi"))
    # a retry of a (plus its own first-token wait) would leave b less than 2 s
    policy = route("a", "b", first_token_timeout_s=2.0, request_timeout_s=3.0)

    done = await final(engine, table(policy, a, b))

    assert isinstance(done, Done) and done.model == "b/m"
    assert (len(a.calls), sleep.delays) == (1, [])


async def test_total_timeout_is_its_own_error_and_the_one_the_client_hears(
    engine: Engine,
) -> None:
    a = FakeProvider("a", fail(RateLimited("429", retry_after=0.01)), [HANG])

    failed = await final(engine, table(route("a", request_timeout_s=0.1), a))

    assert isinstance(failed, Failed)
    assert isinstance(failed.error, RequestTimeout)
    assert (failed.error.status, failed.error.phase) == (504, "total")


# --- what the client is told -----------------------------------------------------------


async def test_every_target_without_the_model_is_a_404_told_once(engine: Engine) -> None:
    a = FakeProvider("a", fail(ModelNotFound("no such model", upstream_status=404)))
    b = FakeProvider("b", fail(ModelNotFound("no such model", upstream_status=404)))

    failed = await final(engine, table(route("a", "b"), a, b))

    assert isinstance(failed, Failed)
    assert isinstance(failed.error, ModelNotFound) and failed.error.status == 404
    assert [t for t, _ in failed.errors] == ["a/m", "b/m"]


async def test_failed_relays_the_retry_after_of_the_failure_that_decided(
    engine: Engine,
) -> None:
    limited = RateLimited("429", retry_after=7.0, upstream_status=429)
    a = FakeProvider("a", fail(limited))
    b = FakeProvider("b", fail(down()))

    policy = route("a", "b", max_retry_after_s=1.0, max_retries=0)
    failed = await final(engine, table(policy, a, b))

    assert isinstance(failed, Failed)
    assert (failed.error, failed.retry_after) == (limited, 7.0)


async def test_a_target_whose_probe_another_request_took_is_skipped_not_crashed_on(
    engine: Engine, clock: SteadyClock
) -> None:
    policy = route("a", "b", max_retries=0, breaker=BreakerPolicy(failure_threshold=1))
    b = FakeProvider("b", fail(down()))

    class TakesTheProbe:
        """An upstream that fails while another request takes b's half-open probe."""

        name, supports_prefill = "a", False
        calls = 0

        async def stream(
            self, model: str, request: ProviderRequest, options: AttemptOptions
        ) -> AsyncGenerator[list[Chunk], None]:
            self.calls += 1
            if self.calls == 2:
                assert engine.breaker("b/m", policy).allow(clock())
            raise down()
            yield []

    a = TakesTheProbe()
    tbl = RoutingTable({"a": a, "b": b}, {"r": policy})
    await final(engine, tbl)  # both fail; both breakers open
    clock.advance(31)

    failed = await final(engine, tbl)

    assert isinstance(failed, Failed)
    assert failed.record.skipped == ["b/m"]
    assert (len(b.calls), a.calls) == (1, 2)
    assert isinstance(failed.error, UpstreamUnavailable)


# --- content kinds ---------------------------------------------------------------------


async def test_reasoning_and_refusals_pass_through_and_are_not_answer_text(
    engine: Engine,
) -> None:
    a = FakeProvider(
        "a",
        [[ReasoningDelta("The user asks")], [ReasoningDelta(" for X.")], *cut("I can")],
    )
    b = FakeProvider("b", [[ReasoningDelta("Again.")], [TextDelta("I can help")], [Finish("stop")]])

    events = await collect(engine, table(route("a", "b", stream_fallback_mode="user_turn"), a, b))

    assert [e.text for e in of_type(events, ReasoningDelta)] == [
        "The user asks",
        " for X.",
        "Again.",
    ]
    # the continuation joins the answer text only
    assert b.calls[0].request.messages[-2] == {"role": "assistant", "content": "I can"}
    assert [e.text for e in of_type(events, TextDelta)] == ["I can", " help"]


async def test_a_cut_after_the_upstream_finished_loses_nothing(engine: Engine) -> None:
    a = FakeProvider("a", [[TextDelta("Done.")], [Finish("stop")], StreamInterrupted("no [DONE]")])

    done = await final(engine, table(route("a"), a))

    assert isinstance(done, Done)
    assert (done.finish_reason, len(a.calls)) == ("stop", 1)
    assert [a_.outcome for a_ in done.record.attempts] == ["ok"]
