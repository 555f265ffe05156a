"""What a client was shown, in order, with every stream switch where it happened.

A `Transcript` folds one request's event batches into segments, stored with its
request-log row (``request_log.transcript``) for the dashboard's request detail:

- ``{"target": "provider/model", "text": "..."}``: text as delivered, by the target that
  produced it (consecutive deltas of one target are one segment);
- ``{"tool_call": {"index", "id", "name", "arguments"}}``: a tool call, its argument
  deltas joined (they count against ``max_chars`` like text);
- ``{"switch": {...}}``: a `SwitchRecord` (from, to, mode, reason, characters delivered
  before it, overlap trimmed, and ``reset`` when the client was told to discard its text);
- ``{"omitted_chars": N}``, last: text beyond ``max_chars`` that was not kept. Nothing is
  cut silently.

With ``keep_text=False`` text segments and tool calls carry only ``chars`` (a count)
instead of their text or arguments, for deployments that must not store answers.
"""

from __future__ import annotations

from typing import Any

import msgspec

from router.events import AttemptStarted, Event, Reset, StreamSwitch, TextDelta, ToolCallDelta

__all__ = ["MAX_TRANSCRIPT_CHARS", "Transcript"]

MAX_TRANSCRIPT_CHARS = 64_000


class _Text:
    __slots__ = ("chars", "parts", "target")

    def __init__(self, target: str) -> None:
        self.target = target
        self.parts: list[str] = []
        self.chars = 0


class Transcript:
    __slots__ = ("_items", "_keep_text", "_max_chars", "_omitted", "_target", "_tools", "chars")

    def __init__(self, *, keep_text: bool = True, max_chars: int = MAX_TRANSCRIPT_CHARS) -> None:
        self._items: list[_Text | dict[str, Any]] = []
        self._tools: dict[int, dict[str, Any]] = {}
        self._target = ""
        self._keep_text = keep_text
        self._max_chars = max_chars
        self._omitted = 0
        self.chars = 0
        """Characters of text kept so far."""

    def add(self, batch: list[Event]) -> None:
        for event in batch:
            kind = type(event)
            if kind is TextDelta:
                self._text(event.text)  # type: ignore[union-attr]
            elif kind is AttemptStarted:
                self._target = event.target  # type: ignore[union-attr]
            elif kind is StreamSwitch or kind is Reset:
                self._items.append({"switch": msgspec.to_builtins(event.switch)})  # type: ignore[union-attr]
                self._tools = {}
            elif kind is ToolCallDelta:
                self._tool(event)  # type: ignore[arg-type]

    def _text(self, text: str) -> None:
        room = self._max_chars - self.chars
        if len(text) > room:
            self._omitted += len(text) - max(room, 0)
            text = text[: max(room, 0)]
            if not text:
                return
        last = self._items[-1] if self._items else None
        if not isinstance(last, _Text) or last.target != self._target:
            last = _Text(self._target)
            self._items.append(last)
        if self._keep_text:
            last.parts.append(text)
        last.chars += len(text)
        self.chars += len(text)

    def _tool(self, delta: ToolCallDelta) -> None:
        call = self._tools.get(delta.index)
        if call is None:
            call = self._tools[delta.index] = {
                "index": delta.index,
                "id": delta.id,
                "name": delta.name,
            }
            call["arguments" if self._keep_text else "chars"] = "" if self._keep_text else 0
            self._items.append({"tool_call": call})
        call["id"] = call["id"] or delta.id
        call["name"] = call["name"] or delta.name
        arguments = delta.arguments
        room = self._max_chars - self.chars  # arguments count against the cap like text
        if len(arguments) > room:
            self._omitted += len(arguments) - max(room, 0)
            arguments = arguments[: max(room, 0)]
        self.chars += len(arguments)
        if self._keep_text:
            call["arguments"] += arguments
        else:
            call["chars"] += len(arguments)

    def segments(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for item in self._items:
            if isinstance(item, _Text):
                if self._keep_text:
                    out.append({"target": item.target, "text": "".join(item.parts)})
                else:
                    out.append({"target": item.target, "chars": item.chars})
            else:
                out.append(item)
        if self._omitted:
            out.append({"omitted_chars": self._omitted})
        return out
