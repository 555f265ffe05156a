"""OpenAI and every OpenAI-compatible endpoint (Groq, Together, vLLM, Ollama, llama.cpp)."""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Mapping
from typing import Any, ClassVar

import httpx
import msgspec

from providers._http import error_for_status, openai_style_classifier, transport_errors
from providers._sse import SSEParser
from router.errors import (
    ContentFiltered,
    ContextLengthExceeded,
    MalformedResponse,
    ProviderError,
    StreamErrorEvent,
    StreamInterrupted,
)
from router.events import Chunk, Finish, TextDelta, ToolCallDelta, Usage
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
        client: httpx.AsyncClient,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.supports_prefill = config.supports_prefill
        self._client = client
        self._url = config.base_url.rstrip("/") + "/chat/completions"
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

    async def stream(
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
        timeout = httpx.Timeout(options.connect_timeout_s, read=None)
        headers_seen = [False]
        with transport_errors(self.name, headers_seen):
            async with self._client.stream(
                "POST", self._url, content=_encode(body), headers=self._headers, timeout=timeout
            ) as response:
                if response.status_code >= 400:
                    raise error_for_status(
                        self.name,
                        response.status_code,
                        response.headers,
                        await response.aread(),
                        openai_style_classifier,
                    )
                headers_seen[0] = True
                parser = SSEParser()
                done = finished = False
                async for data in response.aiter_raw():
                    batch: list[Chunk] = []
                    error: ProviderError | None = None
                    try:
                        for _event, payload in parser.feed(data):
                            if payload == b"[DONE]":
                                done = True
                            else:
                                finished |= self._translate(payload, batch)
                    except ProviderError as exc:
                        # Content that arrived in the same read as a bad event was
                        # still delivered by the upstream: pass it on before failing.
                        error = exc
                    if batch:
                        yield batch
                    if error is not None:
                        raise error
                if not (done or (finished and not parser.pending)):
                    raise StreamInterrupted(
                        f"{self.name} stream ended without [DONE] or a finish_reason",
                        provider=self.name,
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
                if delta.content:
                    out.append(TextDelta(delta.content))
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
