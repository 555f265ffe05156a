"""One request's story, as its detail page tells it: the attempts in order with the
stream switches and skipped targets between them (`timeline`), and what the client was
shown with each switch where it happened (`transcript_view`).

A stored record is read leniently: what a record written by an older version lacks takes
the defaults of `AttemptItem` and `SwitchItem` (which mirror `router.events`' records).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import msgspec

from server.dashboard.filters import ms
from server.dashboard.request_views import SwitchItem
from server.store.request_log import LogEntry

__all__ = ["AttemptItem", "Detail", "timeline", "transcript_view"]


class AttemptItem(msgspec.Struct, frozen=True, kw_only=True):
    kind: ClassVar[str] = "attempt"
    attempt: int = 0
    target: str = ""
    shape: str = "original"
    outcome: str = "running"
    error_type: str | None = None
    error: str | None = None
    status: int | None = None
    start_ms: float | None = None
    ttft_ms: float | None = None
    duration_ms: float | None = None
    chars: int = 0
    usage: dict[str, Any] | None = None

    @classmethod
    def of(cls, attempt: Mapping[str, Any]) -> AttemptItem:
        return msgspec.convert(attempt, cls)

    @property
    def reshaped(self) -> bool:
        """Whether the request was shaped to continue (prefill, continuation...)."""
        return self.shape not in ("", "original")

    @property
    def facts(self) -> str:
        said = (
            f"at +{ms(self.start_ms)} · first token {ms(self.ttft_ms)}"
            f" · took {ms(self.duration_ms)} · {self.chars} chars"
        )
        if self.usage:
            prompt, completion = (
                self.usage.get("prompt_tokens"),
                self.usage.get("completion_tokens"),
            )
            said += f" · {prompt} prompt / {completion} completion tokens"
        return said

    @property
    def error_label(self) -> str:
        return self.error_type or ("cancelled" if self.outcome == "cancelled" else "error")

    def switched_to_by(self, switch: SwitchItem) -> bool:
        """Whether this is the attempt ``switch`` moved the answer to: a later attempt
        of its target that delivered text."""
        return (
            self.target == switch.to_target
            and bool(self.chars or self.outcome == "ok")
            and self.attempt > 1
        )


@dataclass(frozen=True, slots=True)
class SkippedItem:
    kind: ClassVar[str] = "skipped"
    target: str


@dataclass(frozen=True, slots=True)
class PoolItem:
    """How a pool ranked its members for the request."""

    kind: ClassVar[str] = "pool"
    balance: str
    order: list[str]

    @classmethod
    def of(cls, choice: Mapping[str, Any]) -> PoolItem:
        return cls(str(choice.get("balance", "")), [str(t) for t in choice.get("order") or []])

    @property
    def text(self) -> str:
        return " → ".join(self.order)


class HedgeItem(msgspec.Struct, frozen=True, kw_only=True):
    """A hedge (`router.events.HedgeRecord`): shown just before the attempt it started."""

    kind: ClassVar[str] = "hedge"
    attempt: int = 0
    hedge: int = 0
    target: str = ""
    after_s: float = 0.0
    won: bool | None = None

    @property
    def text(self) -> str:
        return (
            f"#{self.attempt} sent no content within {ms(self.after_s * 1000)}: "
            f"#{self.hedge} asked {self.target} in parallel"
        )

    @property
    def result(self) -> str:
        if self.won is None:
            return "neither answered"
        return "the hedge answered first" if self.won else f"#{self.attempt} answered first"


TimelineItem = PoolItem | SkippedItem | SwitchItem | HedgeItem | AttemptItem


def timeline(record: Mapping[str, Any]) -> list[TimelineItem]:
    """The attempts in order, each stream switch or hedge just before the attempt it
    started; first how each pool ranked its members, and the targets skipped."""
    items: list[TimelineItem] = [PoolItem.of(c) for c in record.get("pools") or []]
    items += [SkippedItem(t) for t in record.get("skipped") or []]
    switches = [SwitchItem.of(s) for s in record.get("switches") or []]
    hedges = {
        h.hedge: h for h in (msgspec.convert(h, HedgeItem) for h in record.get("hedges") or [])
    }
    for attempt in (AttemptItem.of(a) for a in record.get("attempts") or []):
        if switches and attempt.switched_to_by(switches[0]):
            items.append(switches.pop(0))
        if attempt.attempt in hedges:
            items.append(hedges[attempt.attempt])
        items.append(attempt)
    items.extend(switches)
    return items


# --- the transcript --------------------------------------------------------------------


@dataclass(slots=True)
class TextPiece:
    kind: ClassVar[str] = "text"
    target: str
    text: str | None
    """None when the log keeps no text: only ``chars`` is known."""
    chars: int
    discarded: bool = False

    @property
    def title(self) -> str:
        return f"from {self.target}" + (" (discarded)" if self.discarded else "")


@dataclass(slots=True)
class ToolPiece:
    kind: ClassVar[str] = "tool"
    name: str | None
    arguments: str
    discarded: bool = False

    @property
    def label(self) -> str:
        return f"tool call {self.name or '?'}({self.arguments})"


@dataclass(frozen=True, slots=True)
class OmittedPiece:
    kind: ClassVar[str] = "omitted"
    chars: int


Piece = TextPiece | ToolPiece | SwitchItem | OmittedPiece


def transcript_view(segments: list[dict[str, Any]] | None) -> list[Piece]:
    """The transcript's pieces; text shown before a ``reset`` switch is marked
    ``discarded``: the client was told to throw it away."""
    pieces: list[Piece] = []
    since_reset: list[TextPiece | ToolPiece] = []
    for seg in segments or []:
        piece: Piece
        if "switch" in seg:
            piece = SwitchItem.of(seg["switch"])
            if piece.reset:
                for shown in since_reset:
                    shown.discarded = True
                since_reset = []
        elif "omitted_chars" in seg:
            piece = OmittedPiece(seg["omitted_chars"])
        else:
            if "tool_call" in seg:
                call = seg["tool_call"]
                piece = ToolPiece(call.get("name"), str(call.get("arguments", "")))
            else:
                text = seg.get("text")
                chars = len(text) if text is not None else seg.get("chars", 0)
                piece = TextPiece(seg.get("target", ""), text, chars)
            since_reset.append(piece)
        pieces.append(piece)
    return pieces


@dataclass(frozen=True, slots=True)
class Detail:
    """A logged request: its facts, its attempts and switches, what the client saw."""

    entry: LogEntry
    timeline: list[TimelineItem]
    transcript: list[Piece]

    @classmethod
    def of(cls, entry: LogEntry) -> Detail:
        return cls(entry, timeline(entry.record), transcript_view(entry.transcript))

    @property
    def has_transcript(self) -> bool:
        return self.entry.transcript is not None

    @property
    def target_text(self) -> str:
        return self.entry.target or "—"

    @property
    def attempts_text(self) -> str:
        """``2``, or ``2 · 1 stream switch``."""
        attempts = sum(1 for item in self.timeline if isinstance(item, AttemptItem))
        switches = len(self.entry.record.get("switches") or [])
        if not switches:
            return str(attempts)
        return f"{attempts} · {switches} stream switch{'es' if switches > 1 else ''}"
