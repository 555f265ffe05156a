"""OpenAI and every OpenAI-compatible endpoint (Groq, Together, vLLM, Ollama, llama.cpp)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
import msgspec

from providers._adapter import Call, HTTPAdapter, HTTPConfig
from providers._client import Upstream
from providers._http import in_band_error, openai_style_classifier
from providers._stream import Reader
from router.errors import ProviderError
from router.events import (
    Chunk,
    Finish,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from router.provider import ProviderRequest

__all__ = ["OpenAIConfig", "OpenAIProvider"]


class OpenAIConfig(HTTPConfig, tag="openai", frozen=True):
    """``[providers.NAME]`` with ``kind = "openai"``."""

    base_url: str = "https://api.openai.com/v1"
    stream_usage: bool = True
    """Ask for a final usage chunk (``stream_options.include_usage``)."""


class _Function(msgspec.Struct, gc=False):
    name: str | None = None
    arguments: str | None = None


class _ToolCall(msgspec.Struct, gc=False):
    index: int = 0
    id: str | None = None
    function: _Function | None = None


class _Delta(msgspec.Struct, gc=False):
    content: str | None = None
    tool_calls: list[_ToolCall] | None = None
    refusal: str | None = None
    reasoning_content: str | None = None
    """DeepSeek's, vLLM's and SGLang's reasoning parsers, Qwen3."""
    reasoning: str | None = None
    """The same, as OpenRouter and newer vLLM name it."""


class _Choice(msgspec.Struct, gc=False):
    delta: _Delta | None = None
    finish_reason: str | None = None


class _PromptDetails(msgspec.Struct, gc=False):
    cached_tokens: int | None = 0


class _Usage(msgspec.Struct, gc=False):
    prompt_tokens: int | None = 0
    completion_tokens: int | None = 0
    total_tokens: int | None = 0
    prompt_tokens_details: _PromptDetails | None = None


class _ChunkWire(msgspec.Struct, gc=False):
    choices: list[_Choice] = []
    usage: _Usage | None = None
    error: Any = None


_encode = msgspec.json.Encoder().encode


class OpenAIProvider(HTTPAdapter[OpenAIConfig]):
    """Speaks ``POST {base_url}/chat/completions`` with ``stream: true``.

    Always streams upstream, also for clients that asked for one JSON answer: one code
    path, and the engine's first-token and stall timeouts apply to every request.
    """

    kind: ClassVar[str] = "openai"
    key_header = "authorization"
    key_prefix = "Bearer "

    def __init__(
        self,
        name: str,
        config: OpenAIConfig,
        client: Upstream,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(name, config, client, env)
        self._url = httpx.URL(config.base_url.rstrip("/") + "/chat/completions")

    def translate(self, model: str, request: ProviderRequest) -> Call:
        body: dict[str, Any] = {
            **request.params,
            "model": model,
            "messages": request.messages,
            "stream": True,
        }
        if self.config.stream_usage:
            body["stream_options"] = {"include_usage": True}
        return Call(self._url, _encode(body), _Reader(self.name))

    def classify(self, status: int, err: dict[str, object]) -> type[ProviderError] | None:
        return openai_style_classifier(status, err)


class _Reader(Reader[_ChunkWire]):
    """``chat.completion.chunk`` events; a stream ends with ``[DONE]`` (or at least a
    finish_reason, which some compatible servers send without ``[DONE]``)."""

    decoder = msgspec.json.Decoder(_ChunkWire)
    end_marker = b"[DONE]"
    ending = "[DONE] or a finish_reason"
    __slots__ = ()

    def feed(self, event: bytes | None, wire: _ChunkWire, out: list[Chunk]) -> None:
        if wire.error is not None:
            raise in_band_error(self.provider, wire.error, openai_style_classifier)
        for choice in wire.choices:
            delta = choice.delta
            if delta is not None:
                if delta.reasoning_content or delta.reasoning:
                    out.append(ReasoningDelta(delta.reasoning_content or delta.reasoning or ""))
                if delta.content:
                    out.append(TextDelta(delta.content))
                if delta.refusal:
                    out.append(RefusalDelta(delta.refusal))
                if delta.tool_calls:
                    for tc in delta.tool_calls:
                        fn = tc.function or _Function()
                        out.append(ToolCallDelta(tc.index, tc.id, fn.name, fn.arguments or ""))
            if choice.finish_reason:
                out.append(Finish(choice.finish_reason))
                self.finished = True
        if wire.usage is not None:
            u = wire.usage
            cached = (u.prompt_tokens_details.cached_tokens or 0) if u.prompt_tokens_details else 0
            out.append(
                Usage(u.prompt_tokens or 0, u.completion_tokens or 0, u.total_tokens or 0, cached)
            )
