"""`Engine`: a failure after content was delivered, in each ``stream_fallback_mode``."""

from __future__ import annotations

from router.engine import Engine
from router.errors import AuthenticationFailed, InvalidRequest, RateLimited, StreamInterrupted
from router.events import (
    AttemptFailed,
    AttemptStarted,
    Done,
    Event,
    Failed,
    Finish,
    Mode,
    Reset,
    StreamSwitch,
    SwitchRecord,
    TextDelta,
    ToolCallDelta,
)
from router.provider import ProviderRequest
from router.table import RoutingTable
from tests.unit._fakes import (
    REQUEST,
    FakeProvider,
    RecordingSleep,
    answer,
    client_text,
    cut,
    down,
    fail,
    of_type,
    route,
    table,
)

PARTIAL = {"role": "assistant", "content": "Once upon"}
RESUME = "Go on."
PREFILL_REQUEST = ProviderRequest([*REQUEST.messages, PARTIAL], REQUEST.params, prefill=True)
USER_TURN_REQUEST = ProviderRequest(
    [*REQUEST.messages, PARTIAL, {"role": "user", "content": RESUME}], REQUEST.params
)


async def collect(engine: Engine, tbl: RoutingTable, *, accept_reset: bool = False) -> list[Event]:
    stream = engine.stream(tbl, "r", REQUEST, request_id="req-1", accept_reset=accept_reset)
    return [event async for batch in stream for event in batch]


def shapes(events: list[Event]) -> list[tuple[str, str]]:
    return [(e.target, e.shape) for e in of_type(events, AttemptStarted)]


def switch(mode: Mode, *, trimmed: int = 0, reset: bool = False, to: str = "b/m") -> SwitchRecord:
    return SwitchRecord(
        from_target="a/m",
        to_target=to,
        mode=mode,
        reason="stream_interrupted",
        chars_delivered=9,
        trimmed_chars=trimmed,
        reset=reset,
    )


# --- restart ---------------------------------------------------------------------------


async def test_restart_resets_a_client_that_accepts_resets_when_the_new_answer_diverges(
    engine: Engine,
) -> None:
    a = FakeProvider("a", cut("Once", " upon"))
    b = FakeProvider("b", answer("A long", " time ago"))

    events = await collect(
        engine, table(route("a", "b", stream_fallback_mode="restart"), a, b), accept_reset=True
    )

    assert events[:-1] == [
        AttemptStarted(1, "a/m", "original"),
        TextDelta("Once"),
        TextDelta(" upon"),
        AttemptFailed(1, "a/m", "stream_interrupted", "body cut", None, 9, None),
        AttemptStarted(2, "b/m", "original"),
        Reset(switch("restart", reset=True)),
        TextDelta("A long"),
        TextDelta(" time ago"),
    ]
    done = events[-1]
    assert isinstance(done, Done)
    assert done.model == "b/m"
    assert done.record.switches == [switch("restart", reset=True)]
    assert len(a.calls) == 1  # a mid-stream cut moves on rather than retrying
    assert b.calls[0].request == REQUEST


async def test_restart_is_seamless_when_the_new_answer_repeats_what_was_shown(
    engine: Engine,
) -> None:
    a = FakeProvider("a", cut("Once", " upon"))
    b = FakeProvider("b", answer("Once", " upon a", " time"))

    events = await collect(engine, table(route("a", "b", stream_fallback_mode="restart"), a, b))

    assert of_type(events, Reset) == []
    assert of_type(events, StreamSwitch) == [StreamSwitch(switch("restart", trimmed=9))]
    assert [e.text for e in of_type(events, TextDelta)] == ["Once", " upon", " a", " time"]
    assert isinstance(events[-1], Done)


async def test_after_a_reset_the_next_restart_matches_only_the_new_answer(
    engine: Engine,
) -> None:
    a = FakeProvider("a", cut("Once", " upon"))
    b = FakeProvider("b", cut("A long"))
    c = FakeProvider("c", answer("A long", " time ago"))
    policy = route("a", "b", "c", stream_fallback_mode="restart", max_retries=0)

    events = await collect(engine, table(policy, a, b, c), accept_reset=True)

    done = events[-1]
    assert isinstance(done, Done)
    assert [(s.to_target, s.chars_delivered, s.reset) for s in done.record.switches] == [
        ("b/m", 9, True),
        ("c/m", 6, False),
    ]
    assert client_text(events) == "A long time ago"


async def test_restart_that_diverges_continues_as_user_turn_for_a_client_without_resets(
    engine: Engine,
) -> None:
    a = FakeProvider("a", cut("Once", " upon"))
    b = FakeProvider(
        "b", answer("A long", " time ago"), answer("Once upon", " a time"), supports_prefill=True
    )

    events = await collect(engine, table(route("a", "b", stream_fallback_mode="restart"), a, b))

    assert of_type(events, Reset) == []
    assert shapes(events) == [("a/m", "original"), ("b/m", "original"), ("b/m", "user_turn")]
    assert [(f.target, f.reason) for f in of_type(events, AttemptFailed)] == [
        ("a/m", "stream_interrupted"),
        ("b/m", "restart_diverged"),
    ]
    assert b.calls[0].request == REQUEST
    assert b.calls[1].request.messages[-2] == PARTIAL
    assert b.calls[1].request.messages[-1]["role"] == "user"
    assert client_text(events) == "Once upon a time"
    done = events[-1]
    assert isinstance(done, Done)
    assert [(s.mode, s.reason, s.reset) for s in done.record.switches] == [
        ("user_turn", "stream_interrupted", False)
    ]


async def test_tool_call_cut_mid_arguments_reaches_the_client_only_whole_from_the_retry(
    engine: Engine,
) -> None:
    a = FakeProvider(
        "a",
        [
            [ToolCallDelta(0, "call_1", "get_weather", "")],
            [ToolCallDelta(0, arguments='{"ci')],
            StreamInterrupted("cut", provider="a"),
        ],
        [
            [ToolCallDelta(0, "call_2", "get_weather", "")],
            [ToolCallDelta(0, arguments='{"city":')],
            [ToolCallDelta(0, arguments='"Oslo"}')],
            [Finish("tool_calls")],
        ],
    )

    events = await collect(engine, table(route("a", max_retries=1), a))

    assert of_type(events, ToolCallDelta) == [
        ToolCallDelta(0, "call_2", "get_weather", '{"city":"Oslo"}')
    ]
    assert of_type(events, Reset) == of_type(events, StreamSwitch) == []
    assert isinstance(events[-1], Done)
    assert events[-1].finish_reason == "tool_calls"
    assert a.calls[1].request == REQUEST  # nothing was shown: the retry asks afresh


async def test_parallel_tool_calls_are_passed_on_whole_in_order_once_the_attempt_finishes(
    engine: Engine,
) -> None:
    a = FakeProvider(
        "a",
        [
            [TextDelta("Checking.")],
            [ToolCallDelta(3, "call_a", "get_weather", '{"city":')],
            [ToolCallDelta(3, arguments='"Oslo"}'), ToolCallDelta(5, "call_b", "get_", "")],
            [ToolCallDelta(5, name="time", arguments="{}")],
            [Finish("tool_calls")],
        ],
    )

    events = await collect(engine, table(route("a"), a))

    calls = of_type(events, ToolCallDelta)
    assert calls == [
        ToolCallDelta(0, "call_a", "get_weather", '{"city":"Oslo"}'),
        ToolCallDelta(1, "call_b", "get_time", "{}"),
    ]
    assert events.index(calls[0]) > events.index(of_type(events, TextDelta)[0])


async def test_mid_stream_cut_on_the_last_target_retries_it_in_the_fallback_mode(
    engine: Engine, sleep: RecordingSleep
) -> None:
    a = FakeProvider("a", cut("Once", " upon"), answer("Once upon", " a time"))

    events = await collect(engine, table(route("a", stream_fallback_mode="restart"), a))

    assert len(sleep.delays) == 1
    assert of_type(events, StreamSwitch) == [StreamSwitch(switch("restart", trimmed=9, to="a/m"))]
    assert client_text(events) == "Once upon a time"
    assert isinstance(events[-1], Done)


# --- prefill and user_turn -------------------------------------------------------------


async def test_prefill_continues_from_the_delivered_text_on_a_prefill_target(
    engine: Engine,
) -> None:
    a = FakeProvider("a", cut("Once", " upon"))
    b = FakeProvider("b", answer(" a time"), supports_prefill=True)

    events = await collect(engine, table(route("a", "b", stream_fallback_mode="prefill"), a, b))

    assert b.calls[0].request == PREFILL_REQUEST
    assert shapes(events) == [("a/m", "original"), ("b/m", "prefill")]
    assert events[-3:-1] == [StreamSwitch(switch("prefill")), TextDelta(" a time")]
    assert client_text(events) == "Once upon a time"
    assert isinstance(events[-1], Done)
    assert events[-1].model == "b/m"


async def test_prefill_continues_as_user_turn_on_a_target_without_prefill(
    engine: Engine,
) -> None:
    a = FakeProvider("a", cut("Once", " upon"))
    b = FakeProvider("b", answer(" a time"), supports_prefill=False)
    policy = route("a", "b", stream_fallback_mode="prefill", stream_resume_prompt=RESUME)

    events = await collect(engine, table(policy, a, b))

    assert b.calls[0].request == USER_TURN_REQUEST
    assert shapes(events) == [("a/m", "original"), ("b/m", "user_turn")]
    assert client_text(events) == "Once upon a time"


async def test_user_turn_asks_to_continue_even_where_prefill_is_supported(
    engine: Engine,
) -> None:
    a = FakeProvider("a", cut("Once", " upon"))
    b = FakeProvider("b", answer(" a time"), supports_prefill=True)
    policy = route("a", "b", stream_fallback_mode="user_turn", stream_resume_prompt=RESUME)

    events = await collect(engine, table(policy, a, b))

    assert b.calls[0].request == USER_TURN_REQUEST
    assert of_type(events, StreamSwitch) == [StreamSwitch(switch("user_turn"))]
    assert client_text(events) == "Once upon a time"


async def test_overlap_repeated_by_the_continuation_is_trimmed_and_recorded(
    engine: Engine,
) -> None:
    a = FakeProvider("a", cut("The quick", " brown fox"))
    b = FakeProvider("b", answer("brown fox", " jumps."))

    events = await collect(engine, table(route("a", "b", stream_fallback_mode="user_turn"), a, b))

    assert client_text(events) == "The quick brown fox jumps."
    done = events[-1]
    assert isinstance(done, Done)
    [record] = done.record.switches
    assert (record.trimmed_chars, record.chars_delivered, record.reset) == (9, 19, False)


async def test_switch_reason_is_the_failure_that_cut_the_stream(engine: Engine) -> None:
    a = FakeProvider("a", cut("Once", " upon"))
    b = FakeProvider("b", fail(RateLimited("slow down")))
    c = FakeProvider("c", answer(" a time"))
    policy = route("a", "b", "c", stream_fallback_mode="user_turn", max_retries=0)

    events = await collect(engine, table(policy, a, b, c))

    assert of_type(events, StreamSwitch) == [StreamSwitch(switch("user_turn", to="c/m"))]


async def test_refused_prefill_is_retried_once_on_the_same_target_as_user_turn(
    engine: Engine, sleep: RecordingSleep
) -> None:
    a = FakeProvider("a", cut("Once", " upon"))
    b = FakeProvider(
        "b",
        fail(InvalidRequest("assistant prefill is not supported")),
        fail(down()),
        answer(" a time"),
        supports_prefill=True,
    )
    policy = route("a", "b", stream_fallback_mode="prefill", stream_resume_prompt=RESUME)

    events = await collect(engine, table(policy, a, b))

    assert [c.request for c in b.calls] == [PREFILL_REQUEST, USER_TURN_REQUEST, USER_TURN_REQUEST]
    assert shapes(events)[1:] == [("b/m", "prefill"), ("b/m", "user_turn"), ("b/m", "user_turn")]
    assert len(sleep.delays) == 1  # only the 503 waited; the refusal is retried at once
    assert client_text(events) == "Once upon a time"
    assert isinstance(events[-1], Done)


async def test_when_everything_fails_after_a_refused_prefill_the_original_cut_is_reported(
    engine: Engine,
) -> None:
    original = StreamInterrupted("body cut")
    refusal = InvalidRequest("assistant prefill is not supported")
    outage = down()
    a = FakeProvider("a", [[TextDelta("Once upon")], original])
    b = FakeProvider("b", fail(refusal), fail(outage), supports_prefill=True)
    policy = route("a", "b", stream_fallback_mode="prefill", max_retries=0)

    events = await collect(engine, table(policy, a, b))

    failed = events[-1]
    assert isinstance(failed, Failed)
    assert failed.error is original
    assert failed.partial is True
    assert failed.errors == [("a/m", original), ("b/m", refusal), ("b/m", outage)]


# --- terminate and exhaustion ----------------------------------------------------------


async def test_terminate_fails_mid_stream_without_fallback_or_done(engine: Engine) -> None:
    a = FakeProvider("a", cut("Once", " upon"))
    b = FakeProvider("b", answer("A long time ago"))

    events = await collect(engine, table(route("a", "b", stream_fallback_mode="terminate"), a, b))

    assert of_type(events, Done) == []
    failed = events[-1]
    assert isinstance(failed, Failed)
    assert isinstance(failed.error, StreamInterrupted)
    assert failed.partial is True
    assert (len(a.calls), b.calls) == (1, [])


async def test_terminate_still_falls_back_before_the_first_token(engine: Engine) -> None:
    a = FakeProvider("a", fail(down()))
    b = FakeProvider("b", answer("hi"))
    policy = route("a", "b", stream_fallback_mode="terminate", max_retries=0)

    events = await collect(engine, table(policy, a, b))

    assert isinstance(events[-1], Done)
    assert events[-1].model == "b/m"


async def test_stream_failing_on_every_target_after_partial_text_ends_failed_partial(
    engine: Engine,
) -> None:
    cut_error = StreamInterrupted("body cut")
    outage = down()
    denied = AuthenticationFailed("invalid api key")
    a = FakeProvider("a", [[TextDelta("Once")], cut_error])
    b = FakeProvider("b", fail(outage))
    c = FakeProvider("c", fail(denied))
    policy = route("a", "b", "c", stream_fallback_mode="restart", max_retries=0)

    events = await collect(engine, table(policy, a, b, c))

    assert of_type(events, Done) == []
    failed = events[-1]
    assert isinstance(failed, Failed)
    assert failed.partial is True
    assert failed.error is cut_error
    assert failed.errors == [("a/m", cut_error), ("b/m", outage), ("c/m", denied)]
    assert [r.outcome for r in failed.record.attempts] == ["failed"] * 3
