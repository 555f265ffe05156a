"""OpenAIProvider's own wire format, over the real client and a real loopback upstream on
both transports; what every adapter does is in ``test_contract.py``."""

from __future__ import annotations

from typing import Any

import pytest

from providers import Upstream
from providers.openai import OpenAIConfig, OpenAIProvider
from router.errors import ContentFiltered, ContextLengthExceeded, InvalidRequest, ProviderError
from router.events import Chunk, Finish, ReasoningDelta, RefusalDelta, TextDelta
from router.provider import AttemptOptions, ProviderRequest
from tests.fakes.openai_upstream import FakeUpstream, Status, Stream

MESSAGES = [{"role": "user", "content": "Say hello"}]
OPTIONS = AttemptOptions(connect_timeout_s=2.0)


def make_provider(client: Upstream, base_url: str, **config: Any) -> OpenAIProvider:
    cfg = OpenAIConfig(base_url=base_url, api_key_env="UP_KEY", **config)
    return OpenAIProvider("up", cfg, client, {"UP_KEY": "sk-upstream"})


@pytest.fixture
def provider(client: Upstream, upstream: FakeUpstream) -> OpenAIProvider:
    return make_provider(client, upstream.base_url)


async def collect(provider: OpenAIProvider, params: dict[str, Any] | None = None) -> list[Chunk]:
    """Every chunk the provider yields for model ``gpt-test``."""
    request = ProviderRequest(MESSAGES, params or {})
    return [c async for batch in provider.stream("gpt-test", request, OPTIONS) for c in batch]


def text_of(chunks: list[Chunk]) -> str:
    return "".join(c.text for c in chunks if isinstance(c, TextDelta))


# --- the request ----------------------------------------------------------------------


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
    chunks = await collect(make_provider(client, upstream.base_url, stream_usage=False))
    assert "stream_options" not in upstream.requests[0]
    assert chunks[-1] == Finish("stop")


# --- OpenAI's error codes --------------------------------------------------------------


def _status(code: int, err_code: str | None = None, message: str = "nope") -> Status:
    return Status(
        code, {"error": {"message": message, "type": "invalid_request_error", "code": err_code}}
    )


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [
        pytest.param(
            _status(400, "context_length_exceeded"), ContextLengthExceeded, id="context-length-code"
        ),
        pytest.param(
            _status(400, None, "This model's maximum context length is 8192 tokens"),
            ContextLengthExceeded,
            id="context-length-message",
        ),
        pytest.param(_status(400, "content_filter"), ContentFiltered, id="content-filter"),
        pytest.param(_status(400, "invalid_value"), InvalidRequest, id="other-code"),
    ],
)
async def test_the_error_code_of_a_400_says_which_error_it_is(
    provider: OpenAIProvider, upstream: FakeUpstream, behaviour: Status, error: type[ProviderError]
) -> None:
    upstream.script("gpt-test", behaviour)
    with pytest.raises(ProviderError) as info:
        await collect(provider)
    assert type(info.value) is error
    assert info.value.provider == "up"
    assert info.value.upstream_status == 400
    assert info.value.retry_after is None
    assert "HTTP 400" in str(info.value)


# --- what the deltas carry ------------------------------------------------------------


async def test_reasoning_under_its_other_name_is_reasoning_too(
    provider: OpenAIProvider, upstream: FakeUpstream
) -> None:
    """DeepSeek's ``reasoning_content`` is the contract's; OpenRouter and newer vLLM say
    ``reasoning``."""
    upstream.script(
        "gpt-test",
        Stream(["Paris."], reasoning=["The user", " asks."], reasoning_field="reasoning"),
    )
    chunks = await collect(provider)
    assert [c for c in chunks if isinstance(c, ReasoningDelta)] == [
        ReasoningDelta("The user"),
        ReasoningDelta(" asks."),
    ]
    assert text_of(chunks) == "Paris."


async def test_a_refusal_is_its_own_delta_not_empty_text(
    provider: OpenAIProvider, upstream: FakeUpstream
) -> None:
    upstream.script("gpt-test", Stream([], refusal=["I can't", " help with that."]))
    chunks = await collect(provider)
    assert [c for c in chunks if isinstance(c, RefusalDelta)] == [
        RefusalDelta("I can't"),
        RefusalDelta(" help with that."),
    ]
    assert text_of(chunks) == ""
