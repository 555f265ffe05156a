"""Engine events in Anthropic's Messages wire format: SSE events, one JSON, error bodies.

A stream is ``message_start``, then content blocks (``content_block_start``, deltas,
``content_block_stop``; text as ``text_delta``, tool calls as ``tool_use`` blocks with
``input_json_delta``), then ``message_delta`` (stop reason, usage) and ``message_stop``.

Extra information travels in a top-level ``llmgate`` field that Anthropic's SDKs keep as
an extra attribute:

- on the first event after a stream switch: ``{"switch": {...}}``;
- on a ``restart`` after content was already sent, for a client that asked for it
  (``x-llmgate-accept-reset: 1``): the current block is closed and a **new** text block
  starts whose ``content_block_start`` carries ``{"reset": true, "switch": {...}}``. The
  client must discard every block before it; the new answer follows from its beginning;
- on ``message_delta``: the request record.

Reasoning becomes a ``thinking`` block (``thinking_delta``, and a ``signature_delta``
when the upstream signed it); a refusal is text, and the message then stops with
``stop_reason: "refusal"``. Messages name the model that answered (``healthy`` for the
target ``up/healthy``).

A stream that cannot be completed ends with an ``error`` event and no ``message_stop``;
the official Anthropic SDKs raise on it.
"""

from __future__ import annotations

from typing import Any

import msgspec

from router.errors import LLMGateError, UpstreamUnavailable
from router.events import (
    AttemptStarted,
    Done,
    Event,
    Failed,
    ReasoningDelta,
    RefusalDelta,
    RequestRecord,
    Reset,
    StreamSwitch,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from server.api._serve import answered_model, describe_failure

__all__ = [
    "EventEncoder",
    "error_body",
    "error_status",
    "failure_body",
    "record_json",
    "stop_reason",
    "usage_json",
]

_encode = msgspec.json.Encoder().encode

# Anthropic's error type for each HTTP status; other 4xx are invalid requests, other 5xx
# api errors.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def error_status(exc: LLMGateError) -> int:
    """The HTTP status a client sees: llmgate's, except an upstream saying it is overloaded."""
    if isinstance(exc, UpstreamUnavailable) and exc.upstream_status == 529:
        return 529
    return exc.status


def error_body(
    status: int,
    message: str,
    record: RequestRecord | None = None,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Anthropic's error object for an HTTP status, plus the request record when there is
    one. ``details`` (``error.details``) tells an SDK what it can do about the error."""
    kind = _TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
    error: dict[str, Any] = {"type": kind, "message": message}
    if details is not None:
        error["details"] = details
    body: dict[str, Any] = {"type": "error", "error": error}
    if record is not None:
        body["llmgate"] = record_json(record)
    return body


def failure_body(event: Failed) -> tuple[int, dict[str, Any]]:
    """Status and error body for a request that could not be completed."""
    error, message = describe_failure(event)
    status = error_status(error)
    return status, error_body(status, message, event.record)


def record_json(record: RequestRecord) -> dict[str, Any]:
    """The request record as JSON-ready builtins."""
    return msgspec.to_builtins(record)  # type: ignore[no-any-return]


def usage_json(usage: Usage) -> dict[str, int]:
    """Anthropic's usage object."""
    # OpenAI's prompt tokens include cache reads; Anthropic's input tokens do not.
    return {
        "input_tokens": max(usage.prompt_tokens - usage.cached_tokens, 0),
        "output_tokens": usage.completion_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
    }


def stop_reason(finish_reason: str, refused: bool = False) -> str:
    """Anthropic's ``stop_reason`` for the engine's finish reason; ``refusal`` whenever
    the answer was a refusal."""
    return "refusal" if refused else _STOP_REASONS.get(finish_reason, "end_turn")


def _sse(name: bytes, data: dict[str, Any]) -> bytes:
    return b"event: " + name + b"\ndata: " + _encode(data) + b"\n\n"


# What `EventEncoder._open` holds besides the OpenAI index of an open tool call.
_TEXT = -1
_THINKING = -2


class EventEncoder:
    """Turns one request's event batches into Anthropic SSE bytes, one write per batch."""

    __slots__ = (
        "_answering",
        "_id",
        "_index",
        "_open",
        "_pending",
        "_refused",
        "_started",
        "_text_head",
        "_tools",
    )

    def __init__(self, message_id: str, model: str) -> None:
        self._id = message_id
        self._answering = model
        self._started = False
        self._index = -1
        """The index of the last block started."""
        self._open: int | None = None
        """The open block: ``_TEXT``, ``_THINKING`` or a tool call's OpenAI index."""
        self._tools: dict[int, int] = {}
        """Block index of each tool call (by its OpenAI index) since the last reset."""
        self._pending: dict[str, Any] | None = None
        self._text_head = b""
        self._refused = False

    def encode(self, batch: list[Event]) -> bytes:
        out: list[bytes] = []
        for event in batch:
            match event:
                case TextDelta(text=text):
                    self._begin(out)
                    self._text(out, text)
                case ToolCallDelta():
                    self._begin(out)
                    self._tool(out, event)
                case ReasoningDelta():
                    self._begin(out)
                    self._thinking(out, event)
                case RefusalDelta(text=text):
                    self._begin(out)
                    self._refused = True
                    self._text(out, text)
                case AttemptStarted(target=target):
                    self._answering = target
                    if self._open == _THINKING:
                        # Another attempt's reasoning is a block of its own: a thinking
                        # block's signature covers the reasoning of one answer only.
                        self._close(out)
                case StreamSwitch(switch=switch):
                    self._pending = {"switch": switch}
                case Reset(switch=switch):
                    # A new text block, so that the one the client must discard stays whole.
                    self._begin(out)
                    self._pending = {"reset": True, "switch": switch}
                    self._tools.clear()
                    self._refused = False
                    self._close(out)
                    self._start(out, {"type": "text", "text": ""}, _TEXT)
                case Done():
                    self._begin(out)
                    self._done(out, event)
                case Failed():
                    _, body = failure_body(event)
                    out.append(_sse(b"error", body))
        return b"".join(out)

    def _begin(self, out: list[bytes]) -> None:
        if self._started:
            return
        self._started = True
        message: dict[str, Any] = {
            "id": self._id,
            "type": "message",
            "role": "assistant",
            "model": answered_model(self._answering),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        out.append(_sse(b"message_start", {"type": "message_start", "message": message}))

    def _with_extra(self, data: dict[str, Any]) -> dict[str, Any]:
        if self._pending is not None:
            data["llmgate"], self._pending = self._pending, None
        return data

    def _start(self, out: list[bytes], block: dict[str, Any], open_: int) -> None:
        self._index += 1
        self._open = open_
        event = {"type": "content_block_start", "index": self._index, "content_block": block}
        out.append(_sse(b"content_block_start", self._with_extra(event)))
        self._text_head = (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
            + str(self._index).encode()
            + b',"delta":{"type":"text_delta","text":'
        )

    def _close(self, out: list[bytes]) -> None:
        if self._open is not None:
            stop = {"type": "content_block_stop", "index": self._index}
            out.append(_sse(b"content_block_stop", stop))
            self._open = None

    def _delta(self, out: list[bytes], index: int, delta: dict[str, Any]) -> None:
        data = {"type": "content_block_delta", "index": index, "delta": delta}
        out.append(_sse(b"content_block_delta", self._with_extra(data)))

    def _text(self, out: list[bytes], text: str) -> None:
        if self._open != _TEXT:
            self._close(out)
            self._start(out, {"type": "text", "text": ""}, _TEXT)
        tail = b"}}\n\n"
        if self._pending is not None:
            tail = b'},"llmgate":' + _encode(self._pending) + b"}\n\n"
            self._pending = None
        out.append(self._text_head + _encode(text) + tail)

    def _thinking(self, out: list[bytes], event: ReasoningDelta) -> None:
        if self._open != _THINKING:
            self._close(out)
            self._start(out, {"type": "thinking", "thinking": "", "signature": ""}, _THINKING)
        if event.text:
            self._delta(out, self._index, {"type": "thinking_delta", "thinking": event.text})
        if event.signature:
            delta = {"type": "signature_delta", "signature": event.signature}
            self._delta(out, self._index, delta)

    def _tool(self, out: list[bytes], event: ToolCallDelta) -> None:
        index = self._tools.get(event.index)
        if index is None:
            self._close(out)
            block = {
                "type": "tool_use",
                "id": event.id or f"toolu_{event.index}",
                "name": event.name or "",
                "input": {},
            }
            self._start(out, block, event.index)
            index = self._tools[event.index] = self._index
        if event.arguments:
            self._delta(out, index, {"type": "input_json_delta", "partial_json": event.arguments})

    def _done(self, out: list[bytes], event: Done) -> None:
        self._close(out)
        record = record_json(event.record)
        if self._pending is not None:  # a switch with nothing left to say
            record.update(self._pending)
            self._pending = None
        delta = {
            "type": "message_delta",
            "delta": {
                "stop_reason": stop_reason(event.finish_reason, self._refused),
                "stop_sequence": None,
            },
            "usage": usage_json(event.usage),
            "llmgate": record,
        }
        out.append(_sse(b"message_delta", delta))
        out.append(_sse(b"message_stop", {"type": "message_stop"}))
