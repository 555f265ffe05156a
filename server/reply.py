"""A whole answer for the doors that do not stream: `router.collect.fold`'s text, tool
calls and outcome, plus what only the doors show: reasoning and refusal."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from router.collect import Answer, fold
from router.events import Event, Failed, ReasoningDelta, RefusalDelta, Reset

__all__ = ["Reply", "collect"]


class Reply(msgspec.Struct):
    answer: Answer
    reasoning: str
    signature: str | None
    """The upstream's proof of its reasoning (Anthropic's thinking signature), if sent."""
    refusal: str


def collect(batches: Iterable[list[Event]]) -> Reply | Failed:
    """The answer the client is given, or the `Failed` event. As in `fold`, a `Reset`
    discards everything before it."""
    batches = list(batches)
    answer = fold(batches)
    if isinstance(answer, Failed):
        return answer
    reasoning: list[str] = []
    refusal: list[str] = []
    signature: str | None = None
    for batch in batches:
        for event in batch:
            match event:
                case ReasoningDelta(text=text, signature=proof):
                    reasoning.append(text)
                    signature = proof or signature
                case RefusalDelta(text=text):
                    refusal.append(text)
                case Reset():
                    reasoning.clear()
                    refusal.clear()
                    signature = None
    return Reply(answer, "".join(reasoning), signature, "".join(refusal))
