"""OpenAI and every OpenAI-compatible endpoint (Groq, Together, vLLM, Ollama, llama.cpp)."""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Mapping
from typing import Any, ClassVar

import httpx
import msgspec

from providers._client import Upstream
from providers._http import openai_style_classifier
from providers._stream import sse_chunks
from providers.pricing import Price
from router.errors import (
    ContentFiltered,
    ContextLengthExceeded,
    MalformedResponse,
    StreamErrorEvent,
    StreamInterrupted,
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

__all__ = ["OpenAIConfig", "OpenAIProvider"]


class OpenAIConfig(
    msgspec.Struct, tag_field="kind", tag="openai", forbid_unknown_fields=True, frozen=True
):
    """``[providers.NAME]`` with ``kind = "openai"``."""

    base_url: str = "https://api.openai.com/v1"
    api_key_env: str | None = None
    supports_prefill: bool = False
    stream_usage: bool = True
    """Ask for a final usage chunk (``stream_options.include_usage``)."""
    headers: dict[str, str] = {}
    prices: dict[str, Price] = {}
    """USD per million tokens per model (``"*"``: any other), see `providers.pricing`."""


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


_decode_chunk = msgspec.json.Decoder(_ChunkWire).decode
_encode = msgspec.json.Encoder().encode


class OpenAIProvider:
    """Speaks ``POST {base_url}/chat/completions`` with ``stream: true``.

    Always streams upstream, also for clients that asked for one JSON answer: one code
    path, and the engine's first-token and stall timeouts apply to every request.
    """

    kind: ClassVar[str] = "openai"

    def __init__(
        self,
        name: str,
        config: OpenAIConfig,
        client: Upstream,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.supports_prefill = config.supports_prefill
        self._client = client
        self._url = httpx.URL(config.base_url.rstrip("/") + "/chat/completions")
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream",
            "accept-encoding": "identity",
            **config.headers,
        }
        key = (env if env is not None else os.environ).get(config.api_key_env or "", "")
        if key:
            headers["authorization"] = f"Bearer {key}"
        self._headers = headers

    def stream(
        self, model: str, request: ProviderRequest, options: AttemptOptions
    ) -> AsyncGenerator[list[Chunk], None]:
        body: dict[str, Any] = {
            **request.params,
            "model": model,
            "messages": request.messages,
            "stream": True,
        }
        if self.config.stream_usage:
            body["stream_options"] = {"include_usage": True}
        reader = _Reader(self)
        return sse_chunks(
            self._client,
            self.name,
            self._url,
            headers=self._headers,
            body=_encode(body),
            options=options,
            classify=openai_style_classifier,
            feed=reader.feed,
            complete=reader.complete,
        )

    def _translate(self, payload: bytes, out: list[Chunk]) -> bool:
        """Append the chunks in one SSE payload; True if it carried a finish_reason."""
        try:
            wire = _decode_chunk(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise MalformedResponse(
                f"{self.name} sent a malformed stream chunk: {exc}: {payload[:200]!r}",
                provider=self.name,
            ) from exc
        if wire.error is not None:
            raise self._in_band_error(wire.error)
        finished = False
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
                finished = True
        if wire.usage is not None:
            u = wire.usage
            cached = (u.prompt_tokens_details.cached_tokens or 0) if u.prompt_tokens_details else 0
            out.append(
                Usage(u.prompt_tokens or 0, u.completion_tokens or 0, u.total_tokens or 0, cached)
            )
        return finished

    def _in_band_error(self, error: Any) -> Exception:
        err = error if isinstance(error, dict) else {"message": str(error)}
        message = f"{self.name} sent an error event mid-stream: {err.get('message', err)}"
        specific = openai_style_classifier(0, err)
        if specific in (ContentFiltered, ContextLengthExceeded):
            return specific(message, provider=self.name)
        return StreamErrorEvent(message, provider=self.name)


class _Reader:
    """The end markers of one stream: ``[DONE]``, or at least a finish_reason."""

    __slots__ = ("_provider", "done", "finished")

    def __init__(self, provider: OpenAIProvider) -> None:
        self._provider = provider
        self.done = self.finished = False

    def feed(self, _event: bytes | None, payload: bytes, out: list[Chunk]) -> None:
        if payload == b"[DONE]":
            self.done = True
        elif self._provider._translate(payload, out):
            self.finished = True

    def complete(self) -> None:
        if not (self.done or self.finished):
            name = self._provider.name
            raise StreamInterrupted(
                f"{name} stream ended without [DONE] or a finish_reason", provider=name
            )
