"""OpenAIProvider over the real client and a real loopback upstream, on both transports."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from providers import Upstream
from providers.openai import OpenAIConfig, OpenAIProvider
from router.errors import (
    AuthenticationFailed,
    ConnectFailed,
    ContentFiltered,
    ContextLengthExceeded,
    InvalidRequest,
    MalformedResponse,
    ModelNotFound,
    ProviderError,
    RateLimited,
    StreamErrorEvent,
    StreamInterrupted,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from router.events import (
    Chunk,
    Finish,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from router.provider import AttemptOptions, ProviderRequest
from tests.fakes.openai_upstream import End, FakeUpstream, Reset, Status, Stream

MESSAGES = [{"role": "user", "content": "Say hello"}]
OPTIONS = AttemptOptions(connect_timeout_s=2.0)


def make_provider(
    client: Upstream, base_url: str, env: dict[str, str] | None = None, **config: Any
) -> OpenAIProvider:
    cfg = OpenAIConfig(base_url=base_url, api_key_env="UP_KEY", **config)
    return OpenAIProvider("up", cfg, client, {"UP_KEY": "sk-upstream"} if env is None else env)


@pytest.fixture
def provider(client: Upstream, upstream: FakeUpstream) -> OpenAIProvider:
    return make_provider(client, upstream.base_url)


async def collect(
    provider: OpenAIProvider,
    model: str = "gpt-test",
    params: dict[str, Any] | None = None,
    into: list[Chunk] | None = None,
    options: AttemptOptions = OPTIONS,
) -> list[list[Chunk]]:
    """Every batch the provider yields; chunks also go to ``into`` as they arrive, so a
    test can see what was delivered before a failure."""
    batches = []
    request = ProviderRequest(MESSAGES, params or {})
    async for batch in provider.stream(model, request, options):
        batches.append(batch)
        if into is not None:
            into.extend(batch)
    return batches


def text_of(chunks: list[Chunk]) -> str:
    return "".join(c.text for c in chunks if isinstance(c, TextDelta))


# --- success ------------------------------------------------------------------------


async def test_streams_text_deltas_then_finish_then_usage(
    provider: OpenAIProvider, upstream: FakeUpstream
) -> None:
    upstream.script("gpt-test", Stream(["Hel", "lo", ", world"], delay_s=0.001))
    batches = await collect(provider)
    assert all(batches), "no empty batches"
    chunks = [c for batch in batches for c in batch]
    assert text_of(chunks) == "Hello, world"
    assert chunks[-2:] == [Finish("stop"), Usage(10, 3, 13)]


async def test_streams_tool_calls_with_ids_names_and_arguments(
    provider: OpenAIProvider, upstream: FakeUpstream
) -> None:
    calls = [
        ("call_1", "get_weather", '{"city": "Paris"}'),
        ("call_2", "get_time", '{"tz": "CET"}'),
    ]
    upstream.script("gpt-test", Stream([], tool_calls=calls))
    chunks = [c for batch in await collect(provider) for c in batch]
    deltas = [c for c in chunks if isinstance(c, ToolCallDelta)]
    assert len(deltas) > len(calls), "arguments arrive in several pieces"
    rebuilt = [
        (
            next(d.id for d in deltas if d.index == i and d.id),
            next(d.name for d in deltas if d.index == i and d.name),
            "".join(d.arguments for d in deltas if d.index == i),
        )
        for i in range(len(calls))
    ]
    assert rebuilt == calls
    assert Finish("tool_calls") in chunks


async def test_sends_model_messages_stream_usage_option_and_passthrough_params(
    provider: OpenAIProvider, upstream: FakeUpstream
) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    upstream.script("gpt-test", Stream(["ok"]))
    await collect(provider, params={"temperature": 0.2, "tools": tools})
    [body] = upstream.requests_for("gpt-test")
    assert body == {
        "temperature": 0.2,
        "tools": tools,
        "model": "gpt-test",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def test_no_usage_chunk_is_asked_for_when_stream_usage_is_off(
    client: Upstream, upstream: FakeUpstream
) -> None:
    upstream.script("gpt-test", Stream(["ok"]))
    chunks = [
        c
        for b in await collect(make_provider(client, upstream.base_url, stream_usage=False))
        for c in b
    ]
    assert "stream_options" not in upstream.requests[0]
    assert chunks[-1] == Finish("stop")


async def test_sends_bearer_key_from_the_env_mapping_and_configured_headers(
    client: Upstream, upstream: FakeUpstream
) -> None:
    upstream.script("gpt-test", Stream(["ok"]))
    await collect(make_provider(client, upstream.base_url, headers={"x-org": "acme"}))
    [headers] = upstream.headers_for("gpt-test")
    assert headers["authorization"] == "Bearer sk-upstream"
    assert headers["x-org"] == "acme"
    assert headers["content-type"] == "application/json"


async def test_sends_no_authorization_when_the_key_variable_is_unset(
    client: Upstream, upstream: FakeUpstream
) -> None:
    upstream.script("gpt-test", Stream(["ok"]))
    await collect(make_provider(client, upstream.base_url, env={}))
    assert "authorization" not in upstream.headers[0]


async def test_reuses_the_connection_for_consecutive_requests(
    provider: OpenAIProvider, upstream: FakeUpstream
) -> None:
    upstream.script("gpt-test", Stream(["one"]))
    for _ in range(3):
        await collect(provider)
    assert upstream.connections == 1


# --- failures before the first token ------------------------------------------------


def _status(code: int, err_code: str | None = None, message: str = "nope") -> Status:
    return Status(
        code, {"error": {"message": message, "type": "invalid_request_error", "code": err_code}}
    )


@pytest.mark.parametrize(
    ("behaviour", "error", "retry_after"),
    [
        pytest.param(
            Status(429, headers={"retry-after": "7"}),
            RateLimited,
            7.0,
            id="429-retry-after-seconds",
        ),
        pytest.param(
            Status(429, headers={"retry-after-ms": "250"}),
            RateLimited,
            0.25,
            id="429-retry-after-ms",
        ),
        pytest.param(Status(429), RateLimited, None, id="429"),
        pytest.param(Status(500), UpstreamUnavailable, None, id="500"),
        pytest.param(Status(503, headers={"retry-after": "2"}), UpstreamUnavailable, 2.0, id="503"),
        pytest.param(Status(529), UpstreamUnavailable, None, id="529-overloaded"),
        pytest.param(Status(401), AuthenticationFailed, None, id="401"),
        pytest.param(Status(403), AuthenticationFailed, None, id="403"),
        pytest.param(Status(404), ModelNotFound, None, id="404"),
        pytest.param(
            _status(400, "context_length_exceeded"),
            ContextLengthExceeded,
            None,
            id="400-context-length-code",
        ),
        pytest.param(
            _status(400, None, "This model's maximum context length is 8192 tokens"),
            ContextLengthExceeded,
            None,
            id="400-context-length-message",
        ),
        pytest.param(
            _status(400, "content_filter"), ContentFiltered, None, id="400-content-filter"
        ),
        pytest.param(_status(400, "invalid_value"), InvalidRequest, None, id="400-other"),
        pytest.param(
            Status(400, {"detail": "not openai-shaped"}),
            InvalidRequest,
            None,
            id="400-foreign-body",
        ),
    ],
)
async def test_maps_each_error_status_to_one_error_type(
    provider: OpenAIProvider,
    upstream: FakeUpstream,
    behaviour: Status,
    error: type[ProviderError],
    retry_after: float | None,
) -> None:
    upstream.script("gpt-test", behaviour)
    with pytest.raises(ProviderError) as info:
        await collect(provider)
    assert type(info.value) is error
    assert info.value.provider == "up"
    assert info.value.upstream_status == behaviour.code
    assert info.value.retry_after == retry_after
    assert f"HTTP {behaviour.code}" in str(info.value)


async def test_error_message_carries_the_upstream_message(
    provider: OpenAIProvider, upstream: FakeUpstream
) -> None:
    upstream.script("gpt-test", _status(400, "invalid_value", "temperature is out of range"))
    with pytest.raises(InvalidRequest, match="temperature is out of range"):
        await collect(provider)


async def test_connection_reset_before_headers_is_connect_failed(
    provider: OpenAIProvider, upstream: FakeUpstream
) -> None:
    upstream.script("gpt-test", Reset())
    with pytest.raises(ConnectFailed):
        await collect(provider)


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connection_refused_is_connect_failed(client: Upstream, closed_port: int) -> None:
    provider = make_provider(client, f"http://127.0.0.1:{closed_port}/v1")
    with pytest.raises(ConnectFailed):
        await collect(provider)


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose listen queue is full: the kernel drops new SYNs, so a connect
    attempt hangs until the client's connect timeout (Linux loopback behaviour)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    yield port
    for filler in fillers:
        filler.close()
    listener.close()


async def test_connect_timeout_is_upstream_timeout_in_the_connect_phase(
    client: Upstream, full_backlog: int
) -> None:
    provider = make_provider(client, f"http://127.0.0.1:{full_backlog}/v1")
    with pytest.raises(UpstreamTimeout) as info:
        await collect(provider, options=AttemptOptions(connect_timeout_s=0.2))
    assert info.value.phase == "connect"


# --- failures after the first token -------------------------------------------------


@pytest.mark.parametrize(
    ("end", "error"),
    [
        ("cut", StreamInterrupted),
        ("no_done", StreamInterrupted),
        ("malformed", MalformedResponse),
        ("error_event", StreamErrorEvent),
    ],
)
@pytest.mark.parametrize("delay_s", [0.0, 0.001], ids=["burst", "paced"])
async def test_mid_stream_failure_raises_after_delivering_the_text_before_it(
    provider: OpenAIProvider,
    upstream: FakeUpstream,
    end: End,
    error: type[ProviderError],
    delay_s: float,
) -> None:
    upstream.script(
        "gpt-test", Stream(["The quick ", "brown fox ", "jumps"], end=end, after=2, delay_s=delay_s)
    )
    delivered: list[Chunk] = []
    with pytest.raises(ProviderError) as info:
        await collect(provider, into=delivered)
    assert type(info.value) is error
    assert info.value.provider == "up"
    # Burst: the failure arrives in the same read as the text, which still counts.
    assert text_of(delivered) == "The quick brown fox "
    assert not any(isinstance(c, Finish) for c in delivered)


async def test_many_concurrent_streams_each_get_their_own_answer(
    provider: OpenAIProvider, upstream: FakeUpstream
) -> None:
    for i in range(40):
        upstream.script(f"m{i}", Stream(["answer ", f"{i}"], delay_s=0.005))
    results = await asyncio.gather(*(collect(provider, f"m{i}") for i in range(40)))
    assert [text_of([c for b in r for c in b]) for r in results] == [
        f"answer {i}" for i in range(40)
    ]
    assert 1 < upstream.connections <= 40


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_reasoning_deltas_are_reasoning_not_answer_text(
    provider: OpenAIProvider, upstream: FakeUpstream, field: str
) -> None:
    upstream.script(
        "gpt-test", Stream(["Paris."], reasoning=["The user", " asks."], reasoning_field=field)
    )
    chunks = [c for batch in await collect(provider) for c in batch]
    assert [c for c in chunks if isinstance(c, ReasoningDelta)] == [
        ReasoningDelta("The user"),
        ReasoningDelta(" asks."),
    ]
    assert text_of(chunks) == "Paris."


async def test_a_refusal_is_its_own_delta_not_empty_text(
    provider: OpenAIProvider, upstream: FakeUpstream
) -> None:
    upstream.script("gpt-test", Stream([], refusal=["I can't", " help with that."]))
    chunks = [c for batch in await collect(provider) for c in batch]
    assert [c for c in chunks if isinstance(c, RefusalDelta)] == [
        RefusalDelta("I can't"),
        RefusalDelta(" help with that."),
    ]
    assert text_of(chunks) == ""
