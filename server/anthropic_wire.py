"""Engine events in Anthropic's Messages wire format: SSE events, one JSON, error bodies.

A stream is ``message_start``, then content blocks (``content_block_start``, deltas,
``content_block_stop``; text as ``text_delta``, tool calls as ``tool_use`` blocks with
``input_json_delta``), then ``message_delta`` (stop reason, usage) and ``message_stop``.

Extra information travels in a top-level ``llmgate`` field that Anthropic's SDKs keep as
an extra attribute:

- on the first event after a stream switch: ``{"switch": {...}}``;
- on a ``restart`` after content was already sent: the current block is closed and a
  **new** text block starts whose ``content_block_start`` carries
  ``{"reset": true, "switch": {...}}``. The client must discard every block before it;
  the new answer follows from its beginning;
- on ``message_delta``: the request record.

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
    RequestRecord,
    Reset,
    StreamSwitch,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from server.openai_wire import describe_failure

__all__ = ["EventEncoder", "collect_message", "error_body", "error_status", "failure_body"]

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


def error_body(status: int, message: str, record: RequestRecord | None = None) -> dict[str, Any]:
    """Anthropic's error object for an HTTP status, plus the request record when there is one."""
    kind = _TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")
    body: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
    if record is not None:
        body["llmgate"] = _record(record)
    return body


def failure_body(event: Failed) -> tuple[int, dict[str, Any]]:
    """Status and error body for a request that could not be completed."""
    error, message = describe_failure(event)
    status = error_status(error)
    return status, error_body(status, message, event.record)


def _record(record: RequestRecord) -> dict[str, Any]:
    return msgspec.to_builtins(record)  # type: ignore[no-any-return]


def _usage(usage: Usage) -> dict[str, int]:
    # OpenAI's prompt tokens include cache reads; Anthropic's input tokens do not.
    return {
        "input_tokens": max(usage.prompt_tokens - usage.cached_tokens, 0),
        "output_tokens": usage.completion_tokens,
        "cache_read_input_tokens": usage.cached_tokens,
    }


def _stop_reason(finish_reason: str) -> str:
    return _STOP_REASONS.get(finish_reason, "end_turn")


def _sse(name: bytes, data: dict[str, Any]) -> bytes:
    return b"event: " + name + b"\ndata: " + _encode(data) + b"\n\n"


class EventEncoder:
    """Turns one request's event batches into Anthropic SSE bytes, one write per batch."""

    __slots__ = (
        "_answering",
        "_id",
        "_index",
        "_open",
        "_pending",
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
        """The OpenAI index of the open tool call; -1 while a text block is open."""
        self._tools: dict[int, int] = {}
        """Block index of each tool call (by its OpenAI index) since the last reset."""
        self._pending: dict[str, Any] | None = None
        self._text_head = b""

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
                case AttemptStarted(target=target):
                    self._answering = target
                case StreamSwitch(switch=switch):
                    self._pending = {"switch": switch}
                case Reset(switch=switch):
                    # A new text block, so that the one the client must discard stays whole.
                    self._begin(out)
                    self._pending = {"reset": True, "switch": switch}
                    self._tools.clear()
                    self._close(out)
                    self._start(out, {"type": "text", "text": ""}, -1)
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
            "model": self._answering,
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

    def _text(self, out: list[bytes], text: str) -> None:
        if self._open != -1:
            self._close(out)
            self._start(out, {"type": "text", "text": ""}, -1)
        tail = b"}}\n\n"
        if self._pending is not None:
            tail = b'},"llmgate":' + _encode(self._pending) + b"}\n\n"
            self._pending = None
        out.append(self._text_head + _encode(text) + tail)

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
            delta = {"type": "input_json_delta", "partial_json": event.arguments}
            data = {"type": "content_block_delta", "index": index, "delta": delta}
            out.append(_sse(b"content_block_delta", self._with_extra(data)))

    def _done(self, out: list[bytes], event: Done) -> None:
        self._close(out)
        record = _record(event.record)
        if self._pending is not None:  # a switch with nothing left to say
            record.update(self._pending)
            self._pending = None
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": _stop_reason(event.finish_reason), "stop_sequence": None},
            "usage": _usage(event.usage),
            "llmgate": record,
        }
        out.append(_sse(b"message_delta", delta))
        out.append(_sse(b"message_stop", {"type": "message_stop"}))


class _ToolCall:
    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []


def collect_message(
    message_id: str, batches: list[list[Event]]
) -> tuple[int, dict[str, Any], RequestRecord]:
    """Fold a whole event stream into one Anthropic ``Message`` (or error) body."""
    text: list[str] = []
    calls: dict[int, _ToolCall] = {}
    for batch in batches:
        for event in batch:
            match event:
                case TextDelta(text=piece):
                    text.append(piece)
                case ToolCallDelta():
                    call = calls.setdefault(event.index, _ToolCall())
                    call.id = event.id or call.id
                    call.name = event.name or call.name
                    call.arguments.append(event.arguments)
                case Reset():
                    text.clear()
                    calls.clear()
                case Failed():
                    status, body = failure_body(event)
                    return status, body, event.record
                case Done():
                    return 200, _message(message_id, event, "".join(text), calls), event.record
    raise RuntimeError("event stream ended without Done or Failed")


def _message(message_id: str, done: Done, text: str, calls: dict[int, _ToolCall]) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    for index, call in sorted(calls.items()):
        content.append(_tool_use(index, call))
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": done.model,
        "content": content,
        "stop_reason": _stop_reason(done.finish_reason),
        "stop_sequence": None,
        "usage": _usage(done.usage),
        "llmgate": _record(done.record),
    }


def _tool_use(index: int, call: _ToolCall) -> dict[str, Any]:
    arguments = "".join(call.arguments)
    block: dict[str, Any] = {
        "type": "tool_use",
        "id": call.id or f"toolu_{index}",
        "name": call.name,
        "input": {},
    }
    try:
        decoded = msgspec.json.decode(arguments or "{}")
    except msgspec.DecodeError:
        decoded = None
    if isinstance(decoded, dict):
        block["input"] = decoded
    else:  # Anthropic's input is always an object: keep what the model sent, visibly
        block["llmgate"] = {"invalid_input_json": arguments}
    return block
