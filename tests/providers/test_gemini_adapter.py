"""GeminiProvider's own wire format, over the real client and a real loopback Gemini API
on both transports; what every adapter does is in ``test_contract.py``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from providers import Upstream
from providers.gemini import GeminiConfig, GeminiProvider
from router.engine import Engine
from router.errors import (
    AuthenticationFailed,
    ContentFiltered,
    ContextLengthExceeded,
    InvalidRequest,
    ModelNotFound,
    ProviderError,
    RateLimited,
    StreamErrorEvent,
)
from router.events import Chunk, Done, Event, Finish, TextDelta, Usage
from router.policy import RoutePolicy
from router.provider import AttemptOptions, Provider, ProviderRequest
from router.table import RoutingTable
from tests.fakes.gemini_upstream import GeminiUpstream, Status, Stream, error_body

MESSAGES = [{"role": "user", "content": "Say hello"}]
OPTIONS = AttemptOptions(connect_timeout_s=2.0)
PATH = "/v1beta/models/gemini-test:streamGenerateContent?alt=sse"
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "additionalProperties": False,
}
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "description": "The weather", "parameters": SCHEMA},
}


@pytest.fixture
def upstream() -> Iterator[GeminiUpstream]:
    with GeminiUpstream() as fake:
        yield fake


def make_provider(client: Upstream, base_url: str, **config: Any) -> GeminiProvider:
    cfg = GeminiConfig(base_url=base_url, api_key_env="UP_KEY", **config)
    return GeminiProvider("gem", cfg, client, {"UP_KEY": "AIza-key"})


@pytest.fixture
def provider(client: Upstream, upstream: GeminiUpstream) -> GeminiProvider:
    return make_provider(client, upstream.base_url)


async def collect(
    provider: GeminiProvider,
    messages: list[dict[str, Any]] = MESSAGES,
    params: dict[str, Any] | None = None,
    *,
    model: str = "gemini-test",
    into: list[Chunk] | None = None,
) -> list[Chunk]:
    """Every chunk; also appended to ``into`` as they arrive, to see what came before a
    failure."""
    chunks: list[Chunk] = [] if into is None else into
    async for batch in provider.stream(model, ProviderRequest(messages, params or {}), OPTIONS):
        assert batch, "no empty batches"
        chunks.extend(batch)
    return chunks


async def sent(
    provider: GeminiProvider,
    upstream: GeminiUpstream,
    messages: list[dict[str, Any]] = MESSAGES,
    params: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The body the upstream received for this request."""
    upstream.script("gemini-test", Stream(["ok"]))
    await collect(provider, messages, params)
    return upstream.requests_for("gemini-test")[-1]


def text_of(chunks: list[Chunk] | list[Event]) -> str:
    return "".join(c.text for c in chunks if isinstance(c, TextDelta))


async def route(providers: dict[str, Provider], policy: RoutePolicy) -> list[Event]:
    """Every event of one request through the real engine."""
    engine = Engine(clock=time.monotonic, rng=lambda: 0.0)
    table = RoutingTable(providers, {"r": policy})
    events: list[Event] = []
    async for batch in engine.stream(table, "r", ProviderRequest(MESSAGES, {}), request_id="t"):
        events.extend(batch)
    return events


# --- streaming ------------------------------------------------------------------------


async def test_usage_reports_cached_content_tokens(
    provider: GeminiProvider, upstream: GeminiUpstream
) -> None:
    upstream.script("gemini-test", Stream(["ok"], prompt_tokens=500, cached_tokens=400))
    assert (await collect(provider))[-1] == Usage(500, 1, 501, 400)


@pytest.mark.parametrize(
    ("reason", "finish"), [("STOP", "stop"), ("MAX_TOKENS", "length"), ("OTHER", "stop")]
)
async def test_maps_finish_reasons_to_openai_finish_reasons(
    provider: GeminiProvider, upstream: GeminiUpstream, reason: str, finish: str
) -> None:
    upstream.script("gemini-test", Stream(["ok"], finish_reason=reason))
    assert Finish(finish) in await collect(provider)


@pytest.mark.parametrize(
    "reason", ["SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII"]
)
async def test_a_withheld_answer_is_content_filtered_not_a_finish(
    provider: GeminiProvider, upstream: GeminiUpstream, reason: str
) -> None:
    upstream.script("gemini-test", Stream(["Sure, "], finish_reason=reason))
    delivered: list[Chunk] = []
    with pytest.raises(ContentFiltered, match=reason):
        await collect(provider, into=delivered)
    assert text_of(delivered) == "Sure, "
    assert not any(isinstance(c, Finish) for c in delivered)


@pytest.mark.parametrize("delay_s", [0.0, 0.001], ids=["burst", "paced"])
async def test_a_safety_stop_mid_answer_is_content_filtered_after_the_text_before_it(
    provider: GeminiProvider, upstream: GeminiUpstream, delay_s: float
) -> None:
    upstream.script(
        "gemini-test",
        Stream(["The quick ", "brown fox ", "jumps"], end="safety", after=2, delay_s=delay_s),
    )
    delivered: list[Chunk] = []
    with pytest.raises(ProviderError) as info:
        await collect(provider, into=delivered)
    assert type(info.value) is ContentFiltered
    assert info.value.provider == "gem"
    assert text_of(delivered) == "The quick brown fox "
    assert not any(isinstance(c, Finish) for c in delivered)


async def test_a_blocked_prompt_is_content_filtered_before_any_text(
    provider: GeminiProvider, upstream: GeminiUpstream
) -> None:
    upstream.script("gemini-test", Stream(["never"], end="blocked_prompt"))
    delivered: list[Chunk] = []
    with pytest.raises(ContentFiltered, match="blocked the prompt: SAFETY") as info:
        await collect(provider, into=delivered)
    assert delivered == []
    assert info.value.provider == "gem"


async def test_a_malformed_function_call_finish_is_a_retryable_stream_error(
    provider: GeminiProvider, upstream: GeminiUpstream
) -> None:
    upstream.script("gemini-test", Stream([], finish_reason="MALFORMED_FUNCTION_CALL"))
    with pytest.raises(StreamErrorEvent) as info:
        await collect(provider)
    assert info.value.retryable


# --- the request ----------------------------------------------------------------------


async def test_posts_to_stream_generate_content_with_alt_sse_and_the_key_header(
    client: Upstream, upstream: GeminiUpstream
) -> None:
    provider = make_provider(client, upstream.base_url + "/", headers={"x-goog-user-project": "p"})
    upstream.script("gemini-test", Stream(["ok"]))
    await collect(provider, model="models/gemini-test")
    assert upstream.paths == [PATH]
    [headers] = upstream.headers_for("gemini-test")
    assert headers["x-goog-api-key"] == "AIza-key"
    assert headers["x-goog-user-project"] == "p"
    assert "key=" not in upstream.paths[0], "the key never goes into the URL"


async def test_api_version_is_configurable(client: Upstream, upstream: GeminiUpstream) -> None:
    provider = make_provider(client, upstream.base_url, api_version="v1")
    with pytest.raises(ModelNotFound):  # the fake serves v1beta only
        await collect(provider)
    assert upstream.paths == ["/v1/models/gemini-test:streamGenerateContent?alt=sse"]


async def test_a_plain_request_is_user_contents_without_generation_config(
    provider: GeminiProvider, upstream: GeminiUpstream
) -> None:
    assert await sent(provider, upstream) == {
        "contents": [{"role": "user", "parts": [{"text": "Say hello"}]}]
    }


async def test_system_and_developer_messages_become_the_system_instruction(
    provider: GeminiProvider, upstream: GeminiUpstream
) -> None:
    messages = [
        {"role": "system", "content": "Be terse."},
        {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
        *MESSAGES,
    ]
    body = await sent(provider, upstream, messages)
    assert body["systemInstruction"] == {"parts": [{"text": "Be terse."}, {"text": "Use French."}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Say hello"}]}]


async def test_sampling_parameters_become_generation_config(
    provider: GeminiProvider, upstream: GeminiUpstream
) -> None:
    params = {
        "temperature": 0.2,
        "top_p": 0.9,
        "max_tokens": 100,
        "stop": ["END", "STOP"],
        "seed": 7,
        "response_format": {"type": "json_schema", "json_schema": {"schema": SCHEMA}},
        "stream_options": {"include_usage": True},
    }
    body = await sent(provider, upstream, params=params)
    assert body["generationConfig"] == {
        "temperature": 0.2,
        "topP": 0.9,
        "seed": 7,
        "maxOutputTokens": 100,
        "stopSequences": ["END", "STOP"],
        "responseMimeType": "application/json",
        "responseJsonSchema": SCHEMA,
    }
    assert set(body) == {"contents", "generationConfig"}


async def test_function_tools_become_declarations_with_json_schema_parameters(
    provider: GeminiProvider, upstream: GeminiUpstream
) -> None:
    bare = {"type": "function", "function": {"name": "now"}}
    body = await sent(provider, upstream, params={"tools": [WEATHER, bare]})
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "The weather",
                    "parametersJsonSchema": SCHEMA,
                },
                {"name": "now"},
            ]
        }
    ]
    assert "toolConfig" not in body


@pytest.mark.parametrize(
    ("tool_choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
    ],
)
async def test_tool_choice_becomes_a_function_calling_config(
    provider: GeminiProvider,
    upstream: GeminiUpstream,
    tool_choice: Any,
    config: dict[str, Any],
) -> None:
    body = await sent(provider, upstream, params={"tools": [WEATHER], "tool_choice": tool_choice})
    assert body["toolConfig"] == {"functionCallingConfig": config}


async def test_tool_calls_and_results_become_function_calls_and_named_responses(
    provider: GeminiProvider, upstream: GeminiUpstream
) -> None:
    calls = [
        {
            "id": "call_0",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": ""}},
    ]
    conversation = [
        {"role": "user", "content": "Weather and time in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "call_0", "content": '{"sky": "sunny"}'},
        {"role": "tool", "tool_call_id": "call_1", "content": "12:00"},
        {"role": "assistant", "content": "Sunny, noon."},
        {"role": "user", "content": "Thanks"},
    ]
    body = await sent(provider, upstream, conversation, {"tools": [WEATHER]})
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Weather and time in Paris?"}]},
        {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "get_time", "args": {}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"sky": "sunny"}}},
                {"functionResponse": {"name": "get_time", "response": {"result": "12:00"}}},
            ],
        },
        {"role": "model", "parts": [{"text": "Sunny, noon."}]},
        {"role": "user", "parts": [{"text": "Thanks"}]},
    ]


async def test_image_parts_become_inline_data_or_file_data(
    provider: GeminiProvider, upstream: GeminiUpstream
) -> None:
    content = [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "gs://bucket/cat.jpg"}},
    ]
    body = await sent(provider, upstream, [{"role": "user", "content": content}])
    assert body["contents"][0]["parts"] == [
        {"text": "Compare"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
        {"fileData": {"fileUri": "gs://bucket/cat.jpg"}},
    ]


async def test_a_request_gemini_cannot_express_is_invalid_before_anything_is_sent(
    provider: GeminiProvider, upstream: GeminiUpstream
) -> None:
    audio = [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]
    with pytest.raises(InvalidRequest) as info:
        await collect(provider, audio)
    assert info.value.provider == "gem"
    assert upstream.requests == []


# --- errors ---------------------------------------------------------------------------


def _retry_info(delay: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


@pytest.mark.parametrize(
    ("behaviour", "error", "retry_after"),
    [
        pytest.param(
            Status(
                429,
                error_body(
                    429, "Quota exceeded", "RESOURCE_EXHAUSTED", details=[_retry_info("37s")]
                ),
            ),
            RateLimited,
            37.0,
            id="429-retry-info",
        ),
        pytest.param(
            Status(
                429,
                error_body(429, "Quota", "RESOURCE_EXHAUSTED", details=[_retry_info("37s")]),
                headers={"retry-after": "3"},
            ),
            RateLimited,
            3.0,
            id="429-retry-after-header-wins",
        ),
        pytest.param(
            Status(
                400,
                error_body(
                    400,
                    "The input token count (2551556) exceeds the maximum number of tokens "
                    "allowed (1048576).",
                    "INVALID_ARGUMENT",
                ),
            ),
            ContextLengthExceeded,
            None,
            id="400-token-count",
        ),
        pytest.param(
            Status(
                400,
                error_body(
                    400,
                    "API key not valid. Please pass a valid API key.",
                    "INVALID_ARGUMENT",
                    details=[
                        {
                            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                            "reason": "API_KEY_INVALID",
                            "domain": "googleapis.com",
                        }
                    ],
                ),
            ),
            AuthenticationFailed,
            None,
            id="400-api-key-invalid",
        ),
        pytest.param(
            Status(400, error_body(400, "User location is not supported", "FAILED_PRECONDITION")),
            InvalidRequest,
            None,
            id="400-other",
        ),
    ],
)
async def test_an_error_body_refines_its_status_and_carries_the_retry_delay(
    provider: GeminiProvider,
    upstream: GeminiUpstream,
    behaviour: Status,
    error: type[ProviderError],
    retry_after: float | None,
) -> None:
    upstream.script("gemini-test", behaviour)
    with pytest.raises(ProviderError) as info:
        await collect(provider)
    assert type(info.value) is error
    assert info.value.provider == "gem"
    assert info.value.upstream_status == behaviour.code
    assert info.value.retry_after == retry_after


# --- prefill --------------------------------------------------------------------------


async def test_engine_prefill_mode_continues_gemini_as_a_user_turn(
    provider: GeminiProvider, upstream: GeminiUpstream
) -> None:
    upstream.script("first", Stream(["Once", " upon", " a"], end="cut", after=2))
    upstream.script("gemini-test", Stream([" a time"]))
    policy = RoutePolicy(
        targets=["gem/first", "gem/gemini-test"], stream_fallback_mode="prefill", max_retries=0
    )
    events = await route({"gem": provider}, policy)
    assert isinstance(events[-1], Done)
    assert text_of(events) == "Once upon a time"
    [continuation] = upstream.requests_for("gemini-test")
    assert [c["role"] for c in continuation["contents"]] == ["user", "model", "user"]
    assert continuation["contents"][1] == {"role": "model", "parts": [{"text": "Once upon"}]}
