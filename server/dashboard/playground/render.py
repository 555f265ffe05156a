"""A run's events as the page shows them: SSE messages of HTML rendered by the macros of
``_playground_event.html`` (autoescaped by jinja), one macro per piece of the page.

Each message names the part of the page it goes to: ``answer`` (the text, tool calls and
switch markers), ``log`` (the event list), ``outcome`` (the badge at the top), and
``refused`` for a token that cannot run. The page swaps each in place (htmx's SSE
extension) and closes the connection on `END`.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2.environment import TemplateModule
from litestar.response import ServerSentEventMessage

from router.events import (
    AttemptFailed,
    AttemptStarted,
    Done,
    Event,
    Failed,
    Hedged,
    Reset,
    StreamSwitch,
    TextDelta,
    ToolCallDelta,
)
from server.dashboard.common import View
from server.dashboard.playground.tokens import RunSpec

__all__ = ["END", "EventView", "Renderer", "Run", "event_pieces"]

END = ServerSentEventMessage(data="end", event="end")
"""The last message of every stream: the page closes on it (``sse-close``), so that the
browser never reconnects and runs the prompt again."""

# The macro that shows an event in each part of the page; other events are not shown.
_ANSWER: dict[type[Event], str] = {
    ToolCallDelta: "tool_call",
    StreamSwitch: "switch_marker",
    Reset: "reset_marker",
}
_LOG: dict[type[Event], str] = {
    AttemptStarted: "attempt_started",
    Hedged: "hedged",
    AttemptFailed: "attempt_failed",
    StreamSwitch: "stream_switch",
    Reset: "reset",
    Done: "done",
    Failed: "failed",
}
_OUTCOME: dict[type[Event], str] = {Done: "outcome_done", Failed: "outcome_failed"}


def event_pieces(view: View) -> TemplateModule:
    """The macros of ``_playground_event.html``: a stream renders HTML while it runs,
    not as its response."""
    template = view.template("_playground_event.html")
    assert isinstance(template, jinja2.Template)  # the app's engine is jinja's
    return template.module


@dataclass(frozen=True, slots=True)
class Run:
    """One run as its stream shows it."""

    spec: RunSpec
    request_id: str
    log_url: str | None
    """The run's page in the request log; None for a simulated run, which is not logged."""

    @classmethod
    def new(cls, spec: RunSpec, view: View) -> Run:
        if spec.simulated:
            return cls(spec, "playground-sim-" + os.urandom(10).hex(), None)
        request_id = "playground-" + os.urandom(10).hex()
        return cls(spec, request_id, view.url("requests.detail", request_id=request_id))

    @property
    def simulated(self) -> bool:
        return self.spec.simulated


@dataclass(frozen=True, slots=True)
class EventView:
    """An engine event as the page shows it, ``at_ms`` after the run started."""

    ev: Event
    at_ms: float

    @property
    def continuation(self) -> str:
        """How an attempt carries on the answer (``prefill continuation``), or ""."""
        if not isinstance(self.ev, AttemptStarted) or self.ev.shape == "original":
            return ""
        return f"{self.ev.shape.replace('_', ' ')} continuation"

    @property
    def retry_in_ms(self) -> float | None:
        retry = self.ev.retry_in_s if isinstance(self.ev, AttemptFailed) else None
        return None if retry is None else retry * 1000

    @property
    def error_type(self) -> str:
        return type(self.ev.error).__name__ if isinstance(self.ev, Failed) else ""

    @property
    def target_errors(self) -> list[tuple[str, BaseException]]:
        """Each target's error, when more than one target failed (else the error says it)."""
        errors = self.ev.errors if isinstance(self.ev, Failed) else []
        return errors if len(errors) > 1 else []

    @property
    def badge(self) -> str:
        if isinstance(self.ev, Failed):
            return "partial" if self.ev.partial else "failed"
        return "ok"

    @property
    def hedge(self) -> str:
        """How a hedge ended (``the hedge answered first``), or ""."""
        hedges = self.ev.record.hedges if isinstance(self.ev, Done) else []
        if not hedges or hedges[-1].won is None:
            return ""
        return "the hedge answered first" if hedges[-1].won else "the hedged attempt answered first"

    @property
    def switches(self) -> str:
        """How many times the answer switched target (``2 switches``), or ""."""
        n = len(self.ev.record.switches) if isinstance(self.ev, Done) else 0
        return "" if n == 0 else f"{n} switch" if n == 1 else f"{n} switches"


class Renderer:
    """Turns a run's event batches into SSE messages."""

    def __init__(self, pieces: TemplateModule, run: Run | None = None) -> None:
        self._pieces = pieces
        self._t0 = asyncio.get_running_loop().time()
        self.run = run

    def _at(self) -> float:
        return (asyncio.get_running_loop().time() - self._t0) * 1000

    def piece(self, macro: str, *args: Any) -> str:
        return str(getattr(self._pieces, macro)(*args)).strip()

    def begin(self, timeout_s: float) -> ServerSentEventMessage:
        return ServerSentEventMessage(
            data=self.piece("begin", self.run, timeout_s, self._at()), event="log"
        )

    def batch(self, batch: list[Event]) -> list[ServerSentEventMessage]:
        answer: list[str] = []
        lines: list[str] = []
        outcome = ""
        text: list[str] = []

        def flush_text() -> None:  # a run of text deltas is one piece
            if text:
                answer.append(self.piece("text", "".join(text)))
                text.clear()

        for event in batch:
            if isinstance(event, TextDelta):
                text.append(event.text)
                continue
            flush_text()
            kind, shown = type(event), EventView(event, self._at())
            if kind in _ANSWER:
                answer.append(self.piece(_ANSWER[kind], shown))
            if kind in _LOG:
                lines.append(self.piece(_LOG[kind], shown))
            if kind in _OUTCOME:
                outcome = self.piece(_OUTCOME[kind], shown, self.run)
        flush_text()
        parts = (("answer", "".join(answer)), ("log", "".join(lines)), ("outcome", outcome))
        return [ServerSentEventMessage(data=data, event=part) for part, data in parts if data]

    def failure(self, message: str) -> list[ServerSentEventMessage]:
        """A run that ended without the engine's final event."""
        return [
            ServerSentEventMessage(data=self.piece("error", message, self._at()), event="log"),
            ServerSentEventMessage(data=self.piece("outcome_error", message), event="outcome"),
        ]

    def refused(self, reason: str) -> list[ServerSentEventMessage]:
        """A token that starts no run."""
        return [
            ServerSentEventMessage(data=self.piece("refused", reason), event="refused"),
            ServerSentEventMessage(data=self.piece("outcome_error", reason), event="outcome"),
            END,
        ]
