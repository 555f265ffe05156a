"""llmgate as a library: the service's routing engine, in-process.

    from llmgate import completion

    for chunk in completion("gpt-4o-mini", messages, stream=True):
        print(chunk.delta, end="", flush=True)

``model`` is a target (``"groq/llama-3.3-70b-versatile"``; bare ``gpt-*``,
``claude-*`` and ``gemini-*`` names resolve to their provider) or a list of them, tried
in order, with mid-stream recovery per ``stream_fallback_mode``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from llmgate import middleware
from llmgate._gate import LLMGate
from llmgate.errors import *  # noqa: F403
from llmgate.errors import LLMGateError
from llmgate.errors import __all__ as _errors
from llmgate.types import (
    Call,
    CompletionResponse,
    EmbeddingResponse,
    EmbedInput,
    StreamChunk,
    ToolCall,
    Usage,
)

__all__ = [
    "Call",
    "CompletionResponse",
    "EmbeddingResponse",
    "LLMGate",
    "StreamChunk",
    "ToolCall",
    "Usage",
    "abatch",
    "acompletion",
    "aembed",
    "batch",
    "completion",
    "embed",
    "middleware",
    *_errors,
]


def completion(
    model: str | list[str], messages: list[dict[str, Any]], *, stream: bool = False, **options: Any
) -> CompletionResponse | Iterator[StreamChunk]:
    """One call with a throwaway `LLMGate`. Options: ``stream_fallback_mode``
    (prefill | user_turn | restart | terminate; default prefill),
    ``stream_resume_prompt``, ``response_format``, ``fallback_on``, ``api_key``,
    ``api_base``, and request parameters (``temperature``, ``max_tokens``, ``tools``...).
    """
    gate = LLMGate()
    if stream:
        return _closing(gate, gate.stream(model, messages, **options))
    with gate:
        return gate.completion(model, messages, **options)


async def acompletion(
    model: str | list[str], messages: list[dict[str, Any]], *, stream: bool = False, **options: Any
) -> CompletionResponse | AsyncIterator[StreamChunk]:
    """The async `completion`: ``await`` it; with ``stream=True`` iterate the result."""
    gate = LLMGate()
    if stream:  # the gate's connections close when the stream ends
        chunks = await gate.acompletion(model, messages, stream=True, **options)
        assert not isinstance(chunks, CompletionResponse)
        return _aclosing(gate, chunks)
    async with gate:
        return await gate.acompletion(model, messages, **options)


def embed(
    model: str | list[str],
    input: EmbedInput,
    **options: Any,
) -> EmbeddingResponse:
    """One embeddings call with a throwaway `LLMGate`: the vectors of ``input`` (a text,
    texts, a token array or token arrays). Options: ``dimensions``, ``user``,
    ``fallback_on``, ``api_key``, ``api_base``."""
    with LLMGate() as gate:
        return gate.embed(model, input, **options)


async def aembed(
    model: str | list[str],
    input: EmbedInput,
    **options: Any,
) -> EmbeddingResponse:
    """The async `embed`."""
    async with LLMGate() as gate:
        return await gate.aembed(model, input, **options)


def batch(
    model: str | list[str],
    requests: Sequence[list[dict[str, Any]] | dict[str, Any]],
    *,
    concurrency: int = 8,
    **options: Any,
) -> list[CompletionResponse | LLMGateError]:
    """Many completions with a throwaway `LLMGate`, at most ``concurrency`` at once, each
    with its own fallbacks; results (or each request's error) in the requests' order.
    See `LLMGate.abatch`."""
    with LLMGate() as gate:
        return gate.batch(model, requests, concurrency=concurrency, **options)


async def abatch(
    model: str | list[str],
    requests: Sequence[list[dict[str, Any]] | dict[str, Any]],
    *,
    concurrency: int = 8,
    **options: Any,
) -> list[CompletionResponse | LLMGateError]:
    """The async `batch`."""
    async with LLMGate() as gate:
        return await gate.abatch(model, requests, concurrency=concurrency, **options)


async def _aclosing(
    gate: LLMGate, chunks: AsyncIterator[StreamChunk]
) -> AsyncIterator[StreamChunk]:
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        await gate.aclose()


def _closing(gate: LLMGate, chunks: Iterator[StreamChunk]) -> Iterator[StreamChunk]:
    try:
        yield from chunks
    finally:
        gate.close()
