"""The transcript: what the client was shown, by target, with each switch in place."""

from __future__ import annotations

from router.engine import Engine
from router.events import AttemptStarted, Event, ToolCallDelta
from server.observe.transcript import Transcript
from tests.observe._support import routes, serve
from tests.unit._fakes import FakeProvider, answer, cut, route


class Recorder:
    def __init__(self, **options: object) -> None:
        self.transcript = Transcript(**options)  # type: ignore[arg-type]

    def observe(self, request_id: str, batch: list[Event]) -> None:
        self.transcript.add(batch)


async def test_marks_a_prefill_switch_between_the_text_of_each_target(router: Engine) -> None:
    a = FakeProvider("a", cut("Once", " upon"), supports_prefill=True)
    b = FakeProvider("b", answer(" a time."), supports_prefill=True)
    seen = Recorder()
    await serve(
        router,
        routes([a, b], chat=route("a", "b", stream_fallback_mode="prefill")),
        "chat",
        "r1",
        seen.observe,
    )

    first, switch, second = seen.transcript.segments()
    assert first == {"target": "a/m", "text": "Once upon"}
    assert switch["switch"]["from_target"] == "a/m" and switch["switch"]["to_target"] == "b/m"
    assert switch["switch"]["mode"] == "prefill"
    assert switch["switch"]["chars_delivered"] == len("Once upon")
    assert switch["switch"]["reset"] is False
    assert second == {"target": "b/m", "text": " a time."}


async def test_a_restart_that_diverges_is_a_reset_followed_by_the_new_answer(
    router: Engine,
) -> None:
    a = FakeProvider("a", cut("Once", " upon"))
    b = FakeProvider("b", answer("Something else entirely."))
    seen = Recorder()
    await serve(
        router,
        routes([a, b], chat=route("a", "b", stream_fallback_mode="restart")),
        "chat",
        "r1",
        seen.observe,
    )

    segments = seen.transcript.segments()
    assert segments[0] == {"target": "a/m", "text": "Once upon"}
    assert segments[1]["switch"]["reset"] is True
    assert "".join(s.get("text", "") for s in segments[2:]) == "Something else entirely."


async def test_text_beyond_the_cap_is_counted_not_silently_cut(router: Engine) -> None:
    a = FakeProvider("a", answer("0123456789", "abcdefghij", "KLMNO"))
    seen = Recorder(max_chars=12)
    await serve(router, routes([a], chat=route("a")), "chat", "r1", seen.observe)

    assert seen.transcript.segments() == [
        {"target": "a/m", "text": "0123456789ab"},
        {"omitted_chars": 13},
    ]


async def test_without_text_only_counts_are_kept(router: Engine) -> None:
    a = FakeProvider("a", answer("secret ", "answer"))
    seen = Recorder(keep_text=False)
    await serve(router, routes([a], chat=route("a")), "chat", "r1", seen.observe)

    assert seen.transcript.segments() == [{"target": "a/m", "chars": len("secret answer")}]


def test_tool_calls_count_against_the_cap_and_keep_no_arguments_without_text() -> None:
    start = AttemptStarted(1, "a/m", "original")
    deltas = [ToolCallDelta(0, id="c1", name="lookup", arguments='{"ssn":"123-45-6789"}')] * 10
    hidden = Transcript(keep_text=False, max_chars=100)
    hidden.add([start, *deltas])
    assert hidden.segments() == [
        {"tool_call": {"index": 0, "id": "c1", "name": "lookup", "chars": 100}},
        {"omitted_chars": 110},
    ]
    kept = Transcript(max_chars=30)
    kept.add([start, *deltas])
    (call, omitted) = kept.segments()
    assert len(call["tool_call"]["arguments"]) == 30 and omitted == {"omitted_chars": 180}
