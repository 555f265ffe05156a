"""What the library returns: `StreamChunk` for streams, `CompletionResponse` otherwise,
`EmbeddingResponse` for embeddings."""

from __future__ import annotations

from typing import Any

import msgspec

from router.collect import ToolCall
from router.events import RequestRecord, ToolCallDelta, Usage

__all__ = [
    "Call",
    "CompletionResponse",
    "EmbedInput",
    "EmbeddingResponse",
    "StreamChunk",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
]


class StreamChunk(msgspec.Struct, kw_only=True):
    """One piece of a streamed answer.

    ``delta`` is the new text. The last chunk has ``finish_reason`` and ``usage``
    (summed over every attempt). After a fallback, the first chunk lists the targets
    that failed before in ``fallback_attempts``; a continuation (``prefill`` or
    ``user_turn``) marks its first chunk ``resumed_from_partial``; a ``restart`` after
    text was shown marks its first chunk ``reset``: discard what was shown so far.
    ``reasoning`` and ``refusal`` carry the model's reasoning and its refusal to answer,
    which are never part of ``delta``.
    """

    delta: str = ""
    reasoning: str = ""
    refusal: str = ""
    model: str | None = None
    provider: str | None = None
    finish_reason: str | None = None
    usage: Usage | None = None
    tool_calls: list[ToolCallDelta] = msgspec.field(default_factory=list)
    fallback_attempts: list[str] = msgspec.field(default_factory=list)
    resumed_from_partial: bool = False
    reset: bool = False


class CompletionResponse(msgspec.Struct, kw_only=True):
    """A whole answer. ``parsed`` holds the ``response_format`` object, if one was asked;
    ``reasoning`` the model's reasoning and ``refusal`` its refusal, apart from the text."""

    text: str
    model: str
    provider: str
    finish_reason: str
    usage: Usage
    tool_calls: list[ToolCall] = msgspec.field(default_factory=list)
    fallback_attempts: list[str] = msgspec.field(default_factory=list)
    record: RequestRecord | None = None
    parsed: Any = None
    reasoning: str = ""
    refusal: str = ""

    @property
    def content(self) -> str:
        return self.text


EmbedInput = str | list[str] | list[int] | list[list[int]]
"""What `embed` takes: a text, texts, a token array or token arrays."""


class EmbeddingResponse(msgspec.Struct, kw_only=True):
    """The vectors of an `embed` call, one per input in the inputs' order, and who made
    them: ``model`` and ``provider`` of the target that answered, ``usage`` (its
    ``prompt_tokens`` and ``total_tokens``), the targets that failed before it, and the
    request's ``record``."""

    embeddings: list[list[float]]
    model: str
    provider: str
    usage: Usage
    fallback_attempts: list[str] = msgspec.field(default_factory=list)
    record: RequestRecord | None = None


class Call(msgspec.Struct, kw_only=True):
    """One library call as middleware sees it (and may change)."""

    model: str | list[str]
    messages: list[dict[str, Any]]
    stream: bool = False
    params: dict[str, Any] = msgspec.field(default_factory=dict)
    stream_fallback_mode: str | None = None
    stream_resume_prompt: str | None = None
    fallback_on: Any = None
    api_key: str | None = None
    api_base: str | None = None
    response_format: Any = None
