"""The `llmgate` library against a fake OpenAI-compatible upstream on loopback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import msgspec
import pydantic
import pytest

from llmgate import (
    AllProvidersFailedError,
    CompletionResponse,
    ConfigError,
    EmbeddingResponse,
    LLMGate,
    RateLimited,
    RequestError,
    StreamChunk,
    StructuredOutputError,
    UpstreamUnavailable,
    acompletion,
    aembed,
    completion,
    embed,
)
from llmgate.middleware import LoggingMiddleware, Middleware, RetryMiddleware
from tests.fakes.openai_upstream import Embeddings, FakeUpstream, Status, Stream, fake_vector

MESSAGES = [{"role": "user", "content": "Tell me something."}]
FAST = {
    "backoff_base_s": 0.001,
    "backoff_max_s": 0.002,
    "first_token_timeout_s": 0.5,
    "stall_timeout_s": 0.3,
    "request_timeout_s": 5.0,
    "max_retries": 0,
}


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def gate(upstream: FakeUpstream) -> Iterator[LLMGate]:
    """Provider ``p`` supports prefill, ``np`` does not; both are the fake upstream."""
    providers = {
        "p": {"kind": "openai", "base_url": upstream.base_url, "supports_prefill": True},
        "np": {"kind": "openai", "base_url": upstream.base_url},
    }
    with LLMGate(providers=providers, **FAST) as g:
        yield g


def shown(chunks: list[StreamChunk]) -> str:
    """What a UI shows: deltas appended, cleared on a reset."""
    text = ""
    for chunk in chunks:
        text = chunk.delta if chunk.reset else text + chunk.delta
    return text


def test_primary_success_sets_no_fallback_fields(gate: LLMGate, upstream: FakeUpstream) -> None:
    upstream.script("ok", Stream(["Hello", " there"]))
    chunks = list(gate.stream(["p/ok", "p/unused"], MESSAGES))
    assert shown(chunks) == "Hello there"
    assert not any(c.fallback_attempts or c.resumed_from_partial or c.reset for c in chunks)
    assert (chunks[0].provider, chunks[0].model) == ("p", "ok")
    assert chunks[-1].finish_reason == "stop" and chunks[-1].usage is not None
    assert upstream.requests_for("unused") == []


@pytest.mark.parametrize("mode", ["restart", "prefill", "user_turn", "terminate"])
def test_failure_before_the_first_chunk_falls_back_invisibly_in_every_mode(
    gate: LLMGate, upstream: FakeUpstream, mode: str
) -> None:
    upstream.script(f"down-{mode}", Status(503))
    upstream.script(f"up-{mode}", Stream(["Fine."]))
    chunks = list(
        gate.stream([f"p/down-{mode}", f"p/up-{mode}"], MESSAGES, stream_fallback_mode=mode)
    )
    assert shown(chunks) == "Fine."
    assert chunks[0].fallback_attempts == [f"p/down-{mode}"]
    assert not chunks[0].resumed_from_partial and not chunks[0].reset
    assert upstream.requests_for(f"up-{mode}")[0]["messages"] == MESSAGES


@pytest.mark.parametrize(
    ("mode", "backup", "sent_tail", "resumed", "reset"),
    [
        ("restart", "p", MESSAGES[-1:], False, True),
        ("prefill", "p", [{"role": "assistant", "content": "Once upon "}], True, False),
        (
            "prefill",
            "np",
            [{"role": "assistant", "content": "Once upon "}, {"role": "user", "content": "Go on."}],
            True,
            False,
        ),
        (
            "user_turn",
            "p",
            [{"role": "assistant", "content": "Once upon "}, {"role": "user", "content": "Go on."}],
            True,
            False,
        ),
    ],
    ids=["restart", "prefill", "prefill-downgraded-to-user-turn", "user_turn"],
)
def test_mid_stream_failure_continues_per_mode(
    gate: LLMGate,
    upstream: FakeUpstream,
    mode: str,
    backup: str,
    sent_tail: list[Any],
    resumed: bool,
    reset: bool,
) -> None:
    primary, second = f"cut-{mode}-{backup}", f"cont-{mode}-{backup}"
    upstream.script(primary, Stream(["Once upon ", "a time"], end="cut", after=1))
    answer = ["A new story."] if mode == "restart" else ["a time."]
    upstream.script(second, Stream(answer))
    chunks = list(
        gate.stream(
            [f"p/{primary}", f"{backup}/{second}"],
            MESSAGES,
            stream_fallback_mode=mode,
            stream_resume_prompt="Go on.",
        )
    )
    sent = upstream.requests_for(second)[0]["messages"]
    assert sent[-len(sent_tail) :] == sent_tail
    first_after = chunks[1]
    assert first_after.fallback_attempts == [f"p/{primary}"]
    assert (first_after.resumed_from_partial, first_after.reset) == (resumed, reset)
    assert shown(chunks) == ("A new story." if mode == "restart" else "Once upon a time.")


def test_terminate_mode_raises_after_partial_text(gate: LLMGate, upstream: FakeUpstream) -> None:
    upstream.script("cut-t", Stream(["Half ", "way"], end="cut", after=1))
    received: list[str] = []
    with pytest.raises(AllProvidersFailedError) as info:
        for chunk in gate.stream(
            ["p/cut-t", "p/never-t"], MESSAGES, stream_fallback_mode="terminate"
        ):
            received.append(chunk.delta)
    assert received == ["Half "]
    assert info.value.partial and [t for t, _ in info.value.errors] == ["p/cut-t"]
    assert upstream.requests_for("never-t") == []


def test_three_target_chain_accumulates_the_partial_text(
    gate: LLMGate, upstream: FakeUpstream
) -> None:
    upstream.script("c1", Stream(["One ", "two "], end="cut", after=1))
    upstream.script("c2", Stream(["two ", "three "], end="cut", after=1))
    upstream.script("c3", Stream(["three four."]))
    chunks = list(gate.stream(["p/c1", "p/c2", "p/c3"], MESSAGES, stream_fallback_mode="prefill"))
    assert shown(chunks) == "One two three four."
    assert upstream.requests_for("c2")[0]["messages"][-1] == {
        "role": "assistant",
        "content": "One ",
    }
    assert upstream.requests_for("c3")[0]["messages"][-1] == {
        "role": "assistant",
        "content": "One two ",
    }


def test_all_targets_failing_lists_errors_in_order_even_after_partial_text(
    gate: LLMGate, upstream: FakeUpstream
) -> None:
    upstream.script("f1", Stream(["Some ", "text"], end="cut", after=1))
    upstream.script("f2", Status(503))
    upstream.script("f3", Status(429))
    with pytest.raises(AllProvidersFailedError) as info:
        list(gate.stream(["p/f1", "p/f2", "p/f3"], MESSAGES, stream_fallback_mode="prefill"))
    assert info.value.partial
    assert [(t, type(e)) for t, e in info.value.errors] == [
        ("p/f1", type(info.value.errors[0][1])),
        ("p/f2", UpstreamUnavailable),
        ("p/f3", RateLimited),
    ]
    rate_limited = info.value.errors[2][1]
    assert isinstance(rate_limited, RateLimited) and rate_limited.provider == "p"
    assert rate_limited.upstream_status == 429


def test_reasoning_and_refusals_arrive_apart_from_the_answer_text(
    gate: LLMGate, upstream: FakeUpstream
) -> None:
    upstream.script("think", Stream(["Paris."], reasoning=["Capital", " of France."]))
    chunks = list(gate.stream("p/think", MESSAGES))
    assert "".join(c.reasoning for c in chunks) == "Capital of France."
    assert shown(chunks) == "Paris."
    whole = gate.completion("p/think", MESSAGES)
    assert (whole.text, whole.reasoning) == ("Paris.", "Capital of France.")

    upstream.script("refuse", Stream([], refusal=["I can't help with that."]))
    refused = gate.completion("p/refuse", MESSAGES)
    assert (refused.text, refused.refusal) == ("", "I can't help with that.")


def test_all_providers_failed_has_one_error_per_target_and_every_attempt_beside(
    upstream: FakeUpstream,
) -> None:
    upstream.script("d1", Status(500), Status(502), Status(503))
    upstream.script("d2", Status(503), Status(503), Status(429))
    providers = {"p": {"kind": "openai", "base_url": upstream.base_url}}
    with (
        LLMGate(providers=providers, **{**FAST, "max_retries": 2}) as gate,
        pytest.raises(AllProvidersFailedError) as info,
    ):
        gate.completion(["p/d1", "p/d2"], MESSAGES)
    # the seed's shape: one (target, error) per target tried, in order, its last failure
    assert [(t, e.upstream_status) for t, e in info.value.errors] == [  # type: ignore[attr-defined]
        ("p/d1", 503),
        ("p/d2", 429),
    ]
    assert len(info.value.attempts) == 6
    assert len(upstream.requests) == 6


def test_error_outside_fallback_on_propagates_at_once(
    gate: LLMGate, upstream: FakeUpstream
) -> None:
    upstream.script("limited", Status(429, headers={"retry-after": "7"}))
    with pytest.raises(RateLimited) as info:
        gate.completion(["p/limited", "p/spare"], MESSAGES, fallback_on=[UpstreamUnavailable])
    assert info.value.retry_after == 7.0
    assert upstream.requests_for("spare") == []


def test_unknown_stream_fallback_mode_is_a_clear_error_before_any_call(
    upstream: FakeUpstream,
) -> None:
    with pytest.raises(ConfigError, match=r"stream_fallback_mode.*expected one of"):
        completion("mock/x", MESSAGES, stream=True, stream_fallback_mode="resume")
    assert upstream.requests == []


# --- middleware ----------------------------------------------------------------------


class Trace(Middleware):
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    async def acompletion(self, call: Any, call_next: Any) -> CompletionResponse:
        self.log.append(f"{self.name}>")
        response: CompletionResponse = await call_next(call)
        self.log.append(f"<{self.name}")
        return response

    async def astream(self, call: Any, call_next: Any) -> Any:
        self.log.append(f"{self.name}>")
        async for chunk in call_next(call):
            yield chunk
        self.log.append(f"<{self.name}")


def test_middleware_runs_outermost_first_for_calls_and_streams(upstream: FakeUpstream) -> None:
    upstream.script("mw", Stream(["ok"]))
    log: list[str] = []
    with LLMGate(
        [Trace("a", log), Trace("b", log)],
        providers={"p": {"kind": "openai", "base_url": upstream.base_url}},
    ) as g:
        g.completion("p/mw", MESSAGES)
        list(g.stream("p/mw", MESSAGES))
    assert log == ["a>", "b>", "<b", "<a"] * 2


def test_retry_middleware_retries_a_stream_that_failed_before_its_first_chunk(
    upstream: FakeUpstream,
) -> None:
    upstream.script("flaky", Status(503), Stream(["second time lucky"]))
    with LLMGate(
        [RetryMiddleware(max_retries=3, backoff_s=0.001)],
        providers={"p": {"kind": "openai", "base_url": upstream.base_url}},
        max_retries=0,
    ) as g:
        assert shown(list(g.stream("p/flaky", MESSAGES))) == "second time lucky"
    assert len(upstream.requests_for("flaky")) == 2


def test_retry_middleware_does_not_retry_a_stream_after_text(upstream: FakeUpstream) -> None:
    upstream.script("cutonce", Stream(["a ", "b"], end="cut", after=1), Stream(["never"]))
    with LLMGate(
        [RetryMiddleware(max_retries=3, backoff_s=0.001)],
        providers={"p": {"kind": "openai", "base_url": upstream.base_url}},
        max_retries=0,
    ) as g:
        with pytest.raises(AllProvidersFailedError):
            list(g.stream("p/cutonce", MESSAGES))
    assert len(upstream.requests_for("cutonce")) == 1


def test_logging_middleware_records_a_streams_outcome_when_it_ends(
    upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.script("logged", Stream(["a ", "b"], end="cut", after=1))
    caplog.set_level(logging.INFO, logger="llmgate")
    with LLMGate(
        [LoggingMiddleware()],
        providers={"p": {"kind": "openai", "base_url": upstream.base_url}},
        max_retries=0,
    ) as g:
        with pytest.raises(AllProvidersFailedError):
            list(g.stream("p/logged", MESSAGES))
    [line] = [r.getMessage() for r in caplog.records if r.name == "llmgate"]
    assert "outcome=partial" in line and "chars=2" in line


# --- structured output ----------------------------------------------------------------


class CityP(pydantic.BaseModel):
    name: str
    population: int


class CityM(msgspec.Struct):
    name: str
    population: int


@pytest.mark.parametrize("cls", [CityP, CityM], ids=["pydantic", "msgspec"])
def test_response_format_returns_the_parsed_object(
    gate: LLMGate, upstream: FakeUpstream, cls: Any
) -> None:
    upstream.script(
        f"json-{cls.__name__}", Stream(['{"name": "Paris", ', '"population": 2100000}'])
    )
    response = gate.completion(f"p/json-{cls.__name__}", MESSAGES, response_format=cls)
    assert isinstance(response, CompletionResponse)
    assert (response.parsed.name, response.parsed.population) == ("Paris", 2100000)
    sent = upstream.requests_for(f"json-{cls.__name__}")[0]["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["name"] == cls.__name__
    assert "population" in str(sent["json_schema"]["schema"])


def test_response_format_that_does_not_parse_raises_with_the_text(
    gate: LLMGate, upstream: FakeUpstream
) -> None:
    upstream.script("notjson", Stream(["Paris, about two million"]))
    with pytest.raises(StructuredOutputError) as info:
        gate.completion("p/notjson", MESSAGES, response_format=CityM)
    assert info.value.text == "Paris, about two million"


def test_stream_with_response_format_fails_before_any_network_call(
    gate: LLMGate, upstream: FakeUpstream
) -> None:
    with pytest.raises(RequestError, match="stream=True cannot be combined with response_format"):
        gate.completion("p/x", MESSAGES, stream=True, response_format=CityM)
    assert upstream.requests == []


# --- sync and async -------------------------------------------------------------------


async def test_async_variants_stream_and_complete(upstream: FakeUpstream) -> None:
    upstream.script("as", Stream(["async ", "answer"]))
    api_base = upstream.base_url
    stream = await acompletion("openai/as", MESSAGES, stream=True, api_base=api_base, api_key="k")
    chunks = [chunk async for chunk in stream]  # type: ignore[union-attr]
    assert shown(chunks) == "async answer"
    response = await acompletion("openai/as", MESSAGES, api_base=api_base, api_key="k")
    assert isinstance(response, CompletionResponse) and response.text == "async answer"
    assert upstream.headers_for("as")[0]["authorization"] == "Bearer k"


async def test_sync_calls_work_from_a_running_loops_worker_thread(upstream: FakeUpstream) -> None:
    upstream.script("thread", Stream(["from ", "a thread"]))

    def work() -> str:
        return "".join(
            c.delta
            for c in completion("openai/thread", MESSAGES, stream=True, api_base=upstream.base_url)
        )

    texts = await asyncio.gather(asyncio.to_thread(work), asyncio.to_thread(work))
    assert texts == ["from a thread", "from a thread"]


def test_a_route_from_a_toml_config_is_used_by_name(tmp_path: Any, upstream: FakeUpstream) -> None:
    upstream.script("r1", Status(500))
    upstream.script("r2", Stream(["routed"]))
    config = tmp_path / "llmgate.toml"
    config.write_text(
        f'[providers.local]\nkind = "openai"\nbase_url = "{upstream.base_url}"\n'
        '[routes.chat]\ntargets = ["local/r1", "local/r2"]\nmax_retries = 0\n'
    )
    with LLMGate(config=str(config)) as g:
        assert shown(list(g.stream("chat", MESSAGES))) == "routed"


# --- embeddings -----------------------------------------------------------------------


def test_embed_returns_the_vectors_of_the_target_that_answered(upstream: FakeUpstream) -> None:
    upstream.script("down", Status(503))
    upstream.script("emb", Embeddings(dims=3, prompt_tokens=4))
    gate = LLMGate(
        providers={"up": {"kind": "openai", "base_url": upstream.base_url}}, max_retries=0
    )
    with gate:
        response = gate.embed(["up/down", "up/emb"], ["a", "bc"])

    assert isinstance(response, EmbeddingResponse)
    assert response.embeddings == [fake_vector("a", 3), fake_vector("bc", 3)]
    assert (response.model, response.provider) == ("emb", "up")
    assert (response.usage.prompt_tokens, response.usage.total_tokens) == (4, 4)
    assert response.fallback_attempts == ["up/down"]


def test_aembed_and_embed_of_the_mock_agree_and_honour_dimensions() -> None:
    sync = embed("mock/any", "same text", dimensions=5)
    again = asyncio.run(aembed("mock/any", ["same text"], dimensions=5))

    assert len(sync.embeddings[0]) == 5 and again.embeddings == sync.embeddings


def test_embed_refuses_a_target_that_cannot_embed_before_any_call() -> None:
    gate = LLMGate(providers={"claude": {"kind": "anthropic", "base_url": "http://127.0.0.1:9"}})
    with gate, pytest.raises(RequestError, match="cannot embed"):
        gate.embed("claude/claude-x", "text")


# --- batch ------------------------------------------------------------------------------


def test_batch_answers_in_order_with_each_failure_in_its_place(
    gate: LLMGate, upstream: FakeUpstream
) -> None:
    upstream.respond(
        "m",
        lambda body: (
            Status(503)
            if body["messages"][0]["content"] == "fail"
            else Stream([f"re: {body['messages'][0]['content']}"])
        ),
    )
    upstream.script("backup", Stream(["from the backup"]))
    prompts = ["one", "fail", "three", "four"]
    results = gate.batch(
        ["p/m", "p/backup"],
        [[{"role": "user", "content": p}] for p in prompts[:2]]
        + [{"messages": [{"role": "user", "content": p}], "max_tokens": 5} for p in prompts[2:]],
        concurrency=2,
    )
    texts = [r.text if isinstance(r, CompletionResponse) else r for r in results]
    assert texts == ["re: one", "from the backup", "re: three", "re: four"]
    assert results[1].fallback_attempts == ["p/m"]  # type: ignore[union-attr]
    assert upstream.requests_for("m")[2]["max_tokens"] == 5


def test_a_request_that_fails_everywhere_is_its_own_error_and_the_rest_still_answer(
    gate: LLMGate, upstream: FakeUpstream
) -> None:
    upstream.respond(
        "m",
        lambda body: Status(503) if body["messages"][0]["content"] == "fail" else Stream(["ok"]),
    )
    good = [{"role": "user", "content": "fine"}]
    results = gate.batch("p/m", [good, [{"role": "user", "content": "fail"}], good, []])
    assert [type(r).__name__ for r in results] == [
        "CompletionResponse",
        "AllProvidersFailedError",
        "CompletionResponse",
        "RequestError",  # an empty message list: refused alone, before any call
    ]


async def test_abatch_keeps_at_most_concurrency_requests_in_flight(
    upstream: FakeUpstream,
) -> None:
    upstream.script("slow", Stream(["a", "b", "c"], delay_s=0.02))
    providers = {"p": {"kind": "openai", "base_url": upstream.base_url}}
    async with LLMGate(providers=providers, **FAST) as gate:
        results = await gate.abatch("p/slow", [MESSAGES] * 6, concurrency=2)
    assert [r.text for r in results] == ["abc"] * 6  # type: ignore[union-attr]
    assert upstream.max_concurrent("slow") == 2


def test_batch_refuses_a_concurrency_below_one(gate: LLMGate) -> None:
    with pytest.raises(RequestError, match="concurrency"):
        gate.batch("p/m", [MESSAGES], concurrency=0)


# --- connections ----------------------------------------------------------------------


def test_a_gate_keeps_its_connections_across_calls(upstream: FakeUpstream) -> None:
    upstream.script("keep", Stream(["again"]))
    providers = {"p": {"kind": "openai", "base_url": upstream.base_url}}
    with LLMGate(providers=providers, **FAST) as gate:
        for _ in range(3):
            assert gate.completion("p/keep", MESSAGES).text == "again"  # type: ignore[union-attr]
            assert shown(list(gate.stream("p/keep", MESSAGES))) == "again"
    assert upstream.connections == 1  # six calls, one kept-alive connection


async def test_an_async_gate_keeps_its_connections_until_it_is_closed(
    upstream: FakeUpstream,
) -> None:
    upstream.script("keep", Stream(["again"]))
    providers = {"p": {"kind": "openai", "base_url": upstream.base_url}}
    async with LLMGate(providers=providers, **FAST) as gate:
        for _ in range(3):
            response = await gate.acompletion("p/keep", MESSAGES)
            assert response.text == "again"  # type: ignore[union-attr]
    assert upstream.connections == 1
    async with LLMGate(providers=providers, **FAST) as gate:  # a new gate: a new client
        await gate.acompletion("p/keep", MESSAGES)
    assert upstream.connections == 2
