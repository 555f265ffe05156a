"""OpenAI and every OpenAI-compatible endpoint (Groq, Together, vLLM, Ollama, llama.cpp)."""

from __future__ import annotations

import base64
import struct
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
from router.provider import EmbedRequest, ProviderRequest

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


class _Embedding(msgspec.Struct, gc=False):
    embedding: list[float] | str
    """Floats, as asked; base64 from a server that ignores ``encoding_format``."""
    index: int = 0


class _EmbeddingsUsage(msgspec.Struct, gc=False):
    prompt_tokens: int | None = 0
    total_tokens: int | None = 0


class _EmbeddingsWire(msgspec.Struct, gc=False):
    data: list[_Embedding]
    usage: _EmbeddingsUsage | None = None


_encode = msgspec.json.Encoder().encode
_decode_embeddings = msgspec.json.Decoder(_EmbeddingsWire).decode


def _floats(embedding: list[float] | str) -> list[float]:
    if isinstance(embedding, list):
        return embedding
    raw = base64.b64decode(embedding, validate=True)  # little-endian float32s, as OpenAI's
    if len(raw) % 4:
        raise ValueError(f"{len(raw)} bytes are no whole number of float32s")
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


class OpenAIProvider(HTTPAdapter[OpenAIConfig]):
    """Speaks ``POST {base_url}/chat/completions`` with ``stream: true``.

    Always streams upstream, also for clients that asked for one JSON answer: one code
    path, and the engine's first-token and stall timeouts apply to every request.
    Embeddings are ``POST {base_url}/embeddings``, always asked as floats.
    """

    kind: ClassVar[str] = "openai"
    key_header = "authorization"
    key_prefix = "Bearer "
    supports_embeddings: ClassVar[bool] = True

    def __init__(
        self,
        name: str,
        config: OpenAIConfig,
        client: Upstream,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(name, config, client, env)
        self._url = httpx.URL(config.base_url.rstrip("/") + "/chat/completions")
        self._embeddings_url = httpx.URL(config.base_url.rstrip("/") + "/embeddings")

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

    def embed_calls(self, model: str, request: EmbedRequest) -> list[tuple[httpx.URL, bytes]]:
        body: dict[str, Any] = {"model": model, "input": request.inputs, "encoding_format": "float"}
        if request.dimensions is not None:
            body["dimensions"] = request.dimensions
        if request.user is not None:
            body["user"] = request.user
        return [(self._embeddings_url, _encode(body))]

    def embed_answer(self, body: bytes) -> tuple[list[list[float]], Usage | None]:
        wire = _decode_embeddings(body)
        vectors = [_floats(item.embedding) for item in sorted(wire.data, key=lambda d: d.index)]
        u = wire.usage
        if u is None:
            return vectors, None
        prompt = u.prompt_tokens or 0
        return vectors, Usage(prompt, 0, u.total_tokens or prompt)


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
