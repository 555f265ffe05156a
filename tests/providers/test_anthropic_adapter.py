"""AnthropicProvider's own wire format, over the real client and a real loopback Messages
API on both transports; what every adapter does is in ``test_contract.py``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from providers import Upstream
from providers.anthropic import AnthropicConfig, AnthropicProvider
from router.engine import Engine
from router.errors import ContextLengthExceeded, InvalidRequest, ProviderError
from router.events import (
    Chunk,
    Done,
    Event,
    Finish,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from router.policy import RoutePolicy
from router.provider import AttemptOptions, Provider, ProviderRequest
from router.table import RoutingTable
from tests.fakes.anthropic_upstream import AnthropicUpstream, Status, Stream, error_body

MESSAGES = [{"role": "user", "content": "Say hello"}]
OPTIONS = AttemptOptions(connect_timeout_s=2.0)
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@pytest.fixture
def upstream() -> Iterator[AnthropicUpstream]:
    with AnthropicUpstream() as fake:
        yield fake


def make_provider(client: Upstream, base_url: str, **config: Any) -> AnthropicProvider:
    cfg = AnthropicConfig(base_url=base_url, api_key_env="UP_KEY", **config)
    return AnthropicProvider("claude", cfg, client, {"UP_KEY": "sk-ant"})


@pytest.fixture
def provider(client: Upstream, upstream: AnthropicUpstream) -> AnthropicProvider:
    return make_provider(client, upstream.base_url)


async def collect(
    provider: AnthropicProvider,
    messages: list[dict[str, Any]] = MESSAGES,
    params: dict[str, Any] | None = None,
    *,
    model: str = "claude-test",
    prefill: bool = False,
) -> list[Chunk]:
    """Every chunk the provider yields."""
    chunks: list[Chunk] = []
    request = ProviderRequest(messages, params or {}, prefill=prefill)
    async for batch in provider.stream(model, request, OPTIONS):
        assert batch, "no empty batches"
        chunks.extend(batch)
    return chunks


async def sent(
    provider: AnthropicProvider,
    upstream: AnthropicUpstream,
    messages: list[dict[str, Any]] = MESSAGES,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The body the upstream received for this request."""
    upstream.script("claude-test", Stream(["ok"]))
    await collect(provider, messages, params)
    return upstream.requests_for("claude-test")[-1]


def text_of(chunks: list[Chunk] | list[Event]) -> str:
    return "".join(c.text for c in chunks if isinstance(c, TextDelta))


async def route(
    providers: dict[str, Provider], policy: RoutePolicy, messages: list[dict[str, Any]] = MESSAGES
) -> list[Event]:
    """Every event of one request through the real engine."""
    engine = Engine(clock=time.monotonic, rng=lambda: 0.0)
    table = RoutingTable(providers, {"r": policy})
    events: list[Event] = []
    async for batch in engine.stream(table, "r", ProviderRequest(messages, {}), request_id="t"):
        events.extend(batch)
    return events


# --- streaming ------------------------------------------------------------------------


async def test_usage_counts_cache_reads_and_writes_as_prompt_tokens(
    provider: AnthropicProvider, upstream: AnthropicUpstream
) -> None:
    upstream.script(
        "claude-test",
        Stream(["ok"], input_tokens=7, cache_read_input_tokens=100, cache_creation_input_tokens=20),
    )
    chunks = await collect(provider)
    assert chunks[-1] == Usage(
        prompt_tokens=127, completion_tokens=1, total_tokens=128, cached_tokens=100
    )


async def test_streams_tool_uses_as_tool_calls_numbered_from_zero_after_text_and_thinking(
    provider: AnthropicProvider, upstream: AnthropicUpstream
) -> None:
    uses = [
        ("toolu_1", "get_weather", '{"city": "Paris"}'),
        ("toolu_2", "get_time", '{"tz": "CET"}'),
    ]
    upstream.script("claude-test", Stream(["Let me check."], tool_uses=uses, thinking="hmm"))
    chunks = await collect(provider)
    deltas = [c for c in chunks if isinstance(c, ToolCallDelta)]
    assert {d.index for d in deltas} == {0, 1}
    rebuilt = [
        (
            next(d.id for d in deltas if d.index == i and d.id),
            next(d.name for d in deltas if d.index == i and d.name),
            "".join(d.arguments for d in deltas if d.index == i),
        )
        for i in range(2)
    ]
    assert rebuilt == uses
    assert text_of(chunks) == "Let me check."  # the thinking block is not answer text
    assert [c for c in chunks if isinstance(c, ReasoningDelta)] == [
        ReasoningDelta("hmm"),
        ReasoningDelta("", signature="c2ln"),  # the block's proof, passed on for the client
    ]
    assert chunks[-2:] == [Finish("tool_calls"), Usage(10, 3, 13, 0)]


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
async def test_maps_each_stop_reason_to_an_openai_finish_reason(
    provider: AnthropicProvider, upstream: AnthropicUpstream, stop_reason: str, finish: str
) -> None:
    upstream.script("claude-test", Stream(["ok"], stop_reason=stop_reason))
    assert Finish(finish) in await collect(provider)


async def test_the_fake_speaks_the_stream_the_anthropic_sdk_parses(
    upstream: AnthropicUpstream,
) -> None:
    """The fake's wire bytes are the real API's, as far as Anthropic's own SDK can tell."""
    anthropic = pytest.importorskip("anthropic")
    upstream.script("claude-test", Stream(["Hel", "lo"], tool_uses=[("toolu_1", "f", '{"a": 1}')]))
    sdk = anthropic.AsyncAnthropic(base_url=upstream.base_url, api_key="sk-ant")
    try:
        async with sdk.messages.stream(model="claude-test", max_tokens=5, messages=MESSAGES) as s:
            message = await s.get_final_message()
    finally:
        await sdk.close()
    assert [b.type for b in message.content] == ["text", "tool_use"]
    assert message.content[0].text == "Hello"
    assert message.content[1].input == {"a": 1}
    assert message.stop_reason == "tool_use"


# --- the request ----------------------------------------------------------------------


async def test_posts_to_v1_messages_with_key_version_and_configured_headers(
    client: Upstream, upstream: AnthropicUpstream
) -> None:
    provider = make_provider(client, upstream.base_url + "/", headers={"anthropic-beta": "x"})
    upstream.script("claude-test", Stream(["ok"]))
    await collect(provider)
    [headers] = upstream.headers_for("claude-test")
    assert upstream.paths == ["/v1/messages"]
    assert headers["x-api-key"] == "sk-ant"
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["anthropic-beta"] == "x"
    assert "authorization" not in headers


async def test_a_plain_request_gets_the_default_max_tokens_and_stream_true(
    provider: AnthropicProvider, upstream: AnthropicUpstream
) -> None:
    assert await sent(provider, upstream) == {
        "model": "claude-test",
        "max_tokens": 4096,
        "messages": MESSAGES,
        "stream": True,
    }


@pytest.mark.parametrize(
    ("params", "max_tokens"),
    [
        ({"max_tokens": 100}, 100),
        ({"max_completion_tokens": 200}, 200),
        ({"max_tokens": 100, "max_completion_tokens": 200}, 200),
    ],
)
async def test_max_tokens_comes_from_the_request_when_it_names_one(
    provider: AnthropicProvider,
    upstream: AnthropicUpstream,
    params: dict[str, Any],
    max_tokens: int,
) -> None:
    assert (await sent(provider, upstream, params=params))["max_tokens"] == max_tokens


async def test_default_max_tokens_is_configurable(
    client: Upstream, upstream: AnthropicUpstream
) -> None:
    provider = make_provider(client, upstream.base_url, default_max_tokens=64)
    assert (await sent(provider, upstream))["max_tokens"] == 64


async def test_system_and_developer_messages_become_the_system_prompt(
    provider: AnthropicProvider, upstream: AnthropicUpstream
) -> None:
    one = [{"role": "system", "content": "Be terse."}, *MESSAGES]
    assert (await sent(provider, upstream, one))["system"] == "Be terse."
    two = [
        {"role": "system", "content": [{"type": "text", "text": "Be terse."}]},
        {"role": "developer", "content": "Use French."},
        *MESSAGES,
    ]
    body = await sent(provider, upstream, two)
    assert body["system"] == [
        {"type": "text", "text": "Be terse."},
        {"type": "text", "text": "Use French."},
    ]
    assert body["messages"] == MESSAGES


async def test_sampling_parameters_and_stop_translate_and_openai_only_ones_are_dropped(
    provider: AnthropicProvider, upstream: AnthropicUpstream
) -> None:
    params = {
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": "END",
        "user": "u-1",
        "frequency_penalty": 0.5,
        "n": 1,
        "seed": 3,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    body = await sent(provider, upstream, params=params)
    assert body == {
        "model": "claude-test",
        "max_tokens": 4096,
        "messages": MESSAGES,
        "temperature": 0.2,
        "top_p": 0.9,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u-1"},
        "stream": True,
    }


async def test_function_tools_become_input_schemas(
    provider: AnthropicProvider, upstream: AnthropicUpstream
) -> None:
    bare = {"type": "function", "function": {"name": "now"}}
    body = await sent(provider, upstream, params={"tools": [WEATHER, bare]})
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "The weather in a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
        {"name": "now", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in body


@pytest.mark.parametrize(
    ("params", "tool_choice"),
    [
        ({"tool_choice": "auto"}, {"type": "auto"}),
        ({"tool_choice": "required"}, {"type": "any"}),
        ({"tool_choice": "none"}, {"type": "none"}),
        (
            {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
            {"type": "tool", "name": "get_weather"},
        ),
        ({"parallel_tool_calls": False}, {"type": "auto", "disable_parallel_tool_use": True}),
        (
            {"tool_choice": "required", "parallel_tool_calls": False},
            {"type": "any", "disable_parallel_tool_use": True},
        ),
    ],
)
async def test_tool_choice_translates(
    provider: AnthropicProvider,
    upstream: AnthropicUpstream,
    params: dict[str, Any],
    tool_choice: dict[str, Any],
) -> None:
    body = await sent(provider, upstream, params={"tools": [WEATHER], **params})
    assert body["tool_choice"] == tool_choice


async def test_tool_calls_become_tool_use_blocks_and_results_one_user_message(
    provider: AnthropicProvider, upstream: AnthropicUpstream
) -> None:
    calls = [
        {
            "id": "toolu_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {
            "id": "toolu_2",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
        },
    ]
    conversation = [
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": [{"type": "text", "text": "rain"}]},
        {"role": "user", "content": "And tomorrow?"},
        {"role": "assistant", "content": None, "tool_calls": calls[:1]},
    ]
    body = await sent(provider, upstream, conversation, {"tools": [WEATHER]})
    use_1 = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
    use_2 = {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"city": "Oslo"}}
    assert body["messages"] == [
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {"role": "assistant", "content": [{"type": "text", "text": "Checking."}, use_1, use_2]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"},
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "rain"},
                {"type": "text", "text": "And tomorrow?"},
            ],
        },
        {"role": "assistant", "content": [use_1]},
    ]


async def test_image_parts_become_base64_or_url_image_blocks(
    provider: AnthropicProvider, upstream: AnthropicUpstream
) -> None:
    content = [
        {"type": "text", "text": "Compare", "cache_control": {"type": "ephemeral"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    body = await sent(provider, upstream, [{"role": "user", "content": content}])
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "Compare", "cache_control": {"type": "ephemeral"}},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


@pytest.mark.parametrize(
    "messages",
    [
        pytest.param(
            [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}],
            id="audio-part",
        ),
        pytest.param(
            [
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "{oops"}}],
                }
            ],
            id="arguments-not-json",
        ),
        pytest.param([{"role": "function", "content": "x"}], id="unknown-role"),
    ],
)
async def test_a_request_anthropic_cannot_express_is_invalid_before_anything_is_sent(
    provider: AnthropicProvider, upstream: AnthropicUpstream, messages: list[dict[str, Any]]
) -> None:
    with pytest.raises(InvalidRequest) as info:
        await collect(provider, messages)
    assert info.value.provider == "claude"
    assert upstream.requests == []


# --- prefill --------------------------------------------------------------------------


async def test_a_final_assistant_message_is_sent_as_a_prefill_to_continue(
    provider: AnthropicProvider, upstream: AnthropicUpstream
) -> None:
    upstream.script("claude-test", Stream([" upon", " a time"]))
    messages = [*MESSAGES, {"role": "assistant", "content": "Once"}]
    chunks = await collect(provider, messages, prefill=True)
    assert upstream.requests[0]["messages"] == messages
    assert text_of(chunks) == " upon a time"


async def test_prefill_trailing_whitespace_is_stripped_and_not_repeated_by_the_continuation(
    provider: AnthropicProvider, upstream: AnthropicUpstream
) -> None:
    """The API rejects a final assistant message ending in whitespace; the client
    already has that whitespace, so the continuation's own leading space is dropped."""
    upstream.script("claude-test", Stream([" ", " a", " time"]))
    messages = [*MESSAGES, {"role": "assistant", "content": "Once upon \n"}]
    chunks = await collect(provider, messages, prefill=True)
    assert upstream.requests[0]["messages"][-1] == {"role": "assistant", "content": "Once upon"}
    assert text_of(chunks) == "a time"


def test_prefill_is_refused_for_models_matching_a_no_prefill_prefix(
    client: Upstream,
) -> None:
    provider = make_provider(
        client, "http://unused", no_prefill_models=["claude-opus-4-6", "claude-x"]
    )
    assert provider.supports_prefill
    assert provider.prefill_ok("claude-sonnet-4-5")
    assert not provider.prefill_ok("claude-opus-4-6")
    assert not provider.prefill_ok("claude-x-20990101")
    off = make_provider(client, "http://unused", supports_prefill=False)
    assert not off.prefill_ok("claude-sonnet-4-5")


@pytest.mark.parametrize(
    ("model", "last_role"), [("claude-new", "assistant"), ("claude-old-1", "user")]
)
async def test_engine_prefill_mode_continues_as_user_turn_on_a_no_prefill_model(
    client: Upstream, upstream: AnthropicUpstream, model: str, last_role: str
) -> None:
    provider = make_provider(client, upstream.base_url, no_prefill_models=["claude-old"])
    upstream.script("claude-first", Stream(["Once", " upon", " a"], end="cut", after=2))
    upstream.script(model, Stream([" a time"]))
    policy = RoutePolicy(
        targets=["claude/claude-first", f"claude/{model}"],
        stream_fallback_mode="prefill",
        max_retries=0,
    )
    events = await route({"claude": provider}, policy)
    assert isinstance(events[-1], Done)
    assert text_of(events) == "Once upon a time"
    [continuation] = upstream.requests_for(model)
    assert continuation["messages"][-1]["role"] == last_role
    assert {"role": "assistant", "content": "Once upon"} in continuation["messages"]


# --- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "error"),
    [
        pytest.param(
            "prompt is too long: 208310 tokens > 200000 maximum",
            ContextLengthExceeded,
            id="prompt-too-long",
        ),
        pytest.param("temperature: range: 0..1", InvalidRequest, id="other"),
    ],
)
async def test_the_message_of_a_400_says_whether_the_prompt_is_too_long(
    provider: AnthropicProvider,
    upstream: AnthropicUpstream,
    message: str,
    error: type[ProviderError],
) -> None:
    upstream.script("claude-test", Status(400, error_body("invalid_request_error", message)))
    with pytest.raises(ProviderError) as info:
        await collect(provider)
    assert type(info.value) is error
    assert info.value.provider == "claude"
    assert info.value.upstream_status == 400
    assert info.value.retry_after is None


# --- structured output ----------------------------------------------------------------


async def test_json_schema_response_format_forces_a_tool_whose_input_is_the_answer(
    provider: AnthropicProvider, upstream: AnthropicUpstream
) -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string"}}}
    answer = '{"name": "Paris"}'
    upstream.script("claude-test", Stream([], tool_uses=[("toolu_s", "structured_output", answer)]))
    fmt = {"type": "json_schema", "json_schema": {"name": "City", "schema": schema}}
    chunks = await collect(provider, params={"response_format": fmt})
    assert text_of(chunks) == answer
    assert not [c for c in chunks if isinstance(c, ToolCallDelta)]
    assert Finish("stop") in chunks
    sent = upstream.requests_for("claude-test")[0]
    assert sent["tools"] == [
        {
            "name": "structured_output",
            "input_schema": schema,
            "description": "Give the answer as this tool's input.",
        }
    ]
    assert sent["tool_choice"] == {"type": "tool", "name": "structured_output"}
    assert "response_format" not in sent
