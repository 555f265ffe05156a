"""Folding a whole event stream into one answer, for non-streaming consumers."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from router.events import (
    Done,
    Embeddings,
    Event,
    Failed,
    ReasoningDelta,
    RefusalDelta,
    Reset,
    TextDelta,
    ToolCallDelta,
)

__all__ = ["Answer", "ToolCall", "fold"]


class ToolCall(msgspec.Struct):
    id: str
    name: str
    arguments: str


class Answer(msgspec.Struct):
    """What a complete stream said: its text and tool calls, and how it ended; the
    model's reasoning and refusal apart from the text."""

    text: str
    tool_calls: list[ToolCall]
    done: Done
    reasoning: str = ""
    reasoning_signature: str | None = None
    refusal: str = ""
    vectors: list[list[float]] | None = None
    """An embeddings request's answer (`router.engine.Engine.embed`)."""


def fold(batches: Iterable[list[Event]]) -> Answer | Failed:
    """The final answer, or the `Failed` event. A `Reset` discards what came before it."""
    text: list[str] = []
    reasoning: list[str] = []
    refusal: list[str] = []
    signature: str | None = None
    calls: dict[int, list[str]] = {}
    heads: dict[int, tuple[str, str]] = {}
    vectors: list[list[float]] | None = None
    for batch in batches:
        for event in batch:
            if isinstance(event, TextDelta):
                text.append(event.text)
            elif isinstance(event, ReasoningDelta):
                reasoning.append(event.text)
                signature = event.signature or signature
            elif isinstance(event, RefusalDelta):
                refusal.append(event.text)
            elif isinstance(event, ToolCallDelta):
                id_, name = heads.get(event.index, ("", ""))
                heads[event.index] = (event.id or id_, event.name or name)
                calls.setdefault(event.index, []).append(event.arguments)
            elif isinstance(event, Embeddings):
                vectors = event.vectors
            elif isinstance(event, Reset):
                text.clear()
                reasoning.clear()
                signature = None
                refusal.clear()
                calls.clear()
                heads.clear()
            elif isinstance(event, Failed):
                return event
            elif isinstance(event, Done):
                tool_calls = [
                    ToolCall(heads[i][0], heads[i][1], "".join(parts))
                    for i, parts in sorted(calls.items())
                ]
                return Answer(
                    "".join(text),
                    tool_calls,
                    event,
                    "".join(reasoning),
                    signature,
                    "".join(refusal),
                    vectors,
                )
    raise RuntimeError("event stream ended without Done or Failed")
