"""Engine events in OpenAI's wire format: SSE chunks for streams, one JSON for the rest.

Extra information travels in a top-level ``llmgate`` field that OpenAI clients ignore:

- on the first chunk after a stream switch: ``{"switch": {...}}``;
- on a ``restart`` after text was already sent, for a client that asked for it
  (``x-llmgate-accept-reset: 1``): ``{"reset": true, "switch": {...}}``. The client
  must discard the text it has shown so far; the new answer follows from its beginning;
- on the last chunk before ``[DONE]``: ``{"request_id", "attempts", "switches", ...}``.

Reasoning travels as ``delta.reasoning_content`` (``message.reasoning_content``), as
DeepSeek and vLLM send it, and a refusal as ``delta.refusal`` (``message.refusal``).
Chunks and completions name the model that answered (``healthy`` for ``up/healthy``).

A stream that cannot be completed ends with an ``{"error": ...}`` event and no
``[DONE]``; the official OpenAI SDKs raise on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec
from litestar.datastructures import Headers

from router.collect import Answer
from router.errors import LLMGateError
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
from server.api.openai.request import ChatCall, parse_chat_request

__all__ = ["INTERNAL_ERROR", "ChatWire", "ChunkEncoder", "error_body"]

INTERNAL_ERROR: dict[str, Any] = {
    "error": {
        "message": "Internal error in llmgate; see the server log.",
        "type": "server_error",
        "param": None,
        "code": None,
    }
}
"""What a client sees of a bug: the details go to the server log."""

_encode = msgspec.json.Encoder().encode


def error_body(
    exc: LLMGateError, record: RequestRecord | None = None, message: str | None = None
) -> dict[str, Any]:
    """OpenAI's error object, plus the request record when there is one."""
    error: dict[str, Any] = {
        "message": message or str(exc),
        "type": exc.type,
        "param": getattr(exc, "param", None),
        "code": exc.code,
    }
    body: dict[str, Any] = {"error": error}
    if record is not None:
        body["llmgate"] = record
    return body


class ChunkEncoder:
    """Turns one request's event batches into SSE bytes, one write per batch."""

    __slots__ = (
        "_answering",
        "_created",
        "_head",
        "_id",
        "_include_usage",
        "_model",
        "_pending",
        "_role_sent",
    )

    def __init__(self, request_id: str, model: str, include_usage: bool) -> None:
        self._id = request_id
        self._created = int(time.time())
        self._include_usage = include_usage
        self._role_sent = False
        self._pending: dict[str, Any] | None = None
        self._answering = model
        self._set_model(model)

    def _set_model(self, model: str) -> None:
        self._model = model
        self._head = (
            b'data: {"id":'
            + _encode(self._id)
            + b',"object":"chat.completion.chunk","created":'
            + str(self._created).encode()
            + b',"model":'
            + _encode(model)
            + b',"system_fingerprint":null,"choices":[{"index":0,"delta":'
        )

    def _chunk(
        self, delta: bytes, finish: bytes = b"null", extra: dict[str, Any] | None = None
    ) -> bytes:
        tail = b',"logprobs":null,"finish_reason":' + finish + b"}]"
        if extra is not None:
            tail += b',"llmgate":' + _encode(extra)
        return self._head + delta + tail + b"}\n\n"

    def encode(self, batch: list[Event]) -> bytes:
        out: list[bytes] = []
        for event in batch:
            kind = type(event)
            if kind is TextDelta:
                delta = b'{"content":' + _encode(event.text) + b"}"  # type: ignore[union-attr]
                out.append(self._content(delta))
            elif kind is ToolCallDelta:
                out.append(self._content(self._tool_delta(event)))  # type: ignore[arg-type]
            elif kind is ReasoningDelta:
                delta = b'{"reasoning_content":' + _encode(event.text) + b"}"  # type: ignore[union-attr]
                out.append(self._content(delta))
            elif kind is RefusalDelta:
                delta = b'{"refusal":' + _encode(event.text) + b"}"  # type: ignore[union-attr]
                out.append(self._content(delta))
            elif kind is AttemptStarted:
                self._answering = answered_model(event.target)  # type: ignore[union-attr]
            elif kind is StreamSwitch:
                self._pending = {"switch": event.switch}  # type: ignore[union-attr]
            elif kind is Reset:
                self._pending = {"reset": True, "switch": event.switch}  # type: ignore[union-attr]
                out.append(self._content(b'{"content":""}'))
            elif kind is Done:
                out.append(self._done(event))  # type: ignore[arg-type]
            elif kind is Failed:
                out.append(self._failed(event))  # type: ignore[arg-type]
        return b"".join(out)

    def _content(self, delta: bytes) -> bytes:
        if self._answering is not self._model:  # chunks name the model answering now
            self._set_model(self._answering)
        if not self._role_sent:
            self._role_sent = True
            delta = b'{"role":"assistant",' + delta[1:]
        extra, self._pending = self._pending, None
        return self._chunk(delta, extra=extra)

    @staticmethod
    def _tool_delta(event: ToolCallDelta) -> bytes:
        call: dict[str, Any] = {"index": event.index}
        if event.id is not None:
            call["id"] = event.id
            call["type"] = "function"
        function: dict[str, Any] = {"arguments": event.arguments}
        if event.name is not None:
            function["name"] = event.name
        call["function"] = function
        return b'{"tool_calls":' + _encode([call]) + b"}"

    def _done(self, event: Done) -> bytes:
        model = answered_model(event.model)
        if self._model != model:
            self._set_model(model)
        finish = _encode(event.finish_reason)
        if not self._include_usage:
            return self._chunk(b"{}", finish, extra=_record(event.record)) + b"data: [DONE]\n\n"
        last = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "system_fingerprint": None,
            "choices": [],
            "usage": _usage(event.usage),
            "llmgate": _record(event.record),
        }
        return self._chunk(b"{}", finish) + b"data: " + _encode(last) + b"\n\ndata: [DONE]\n\n"

    def _failed(self, event: Failed) -> bytes:
        error, message = describe_failure(event)
        return b"data: " + _encode(error_body(error, event.record, message)) + b"\n\n"


def _record(record: RequestRecord) -> dict[str, Any]:
    return msgspec.to_builtins(record)  # type: ignore[no-any-return]


def _usage(usage: Usage) -> dict[str, Any]:
    body: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
    }
    if usage.cached_tokens:
        body["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    return body


def _completion(request_id: str, answer: Answer) -> dict[str, Any]:
    done = answer.done
    message: dict[str, Any] = {
        "role": "assistant",
        "content": answer.text or None,
        "refusal": answer.refusal or None,
    }
    if answer.reasoning:
        message["reasoning_content"] = answer.reasoning
    if answer.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in answer.tool_calls
        ]
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": answered_model(done.model),
        "system_fingerprint": None,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": done.finish_reason}
        ],
        "usage": _usage(done.usage),
        "llmgate": _record(done.record),
    }


class ChatWire:
    """``/v1/chat/completions`` as a `server.api._serve.Wire`."""

    door = "chat.completions"
    id_prefix = "chatcmpl-"
    id_header: str | None = None

    @staticmethod
    def credentials(headers: Headers) -> str | None:
        return headers.get("authorization")

    @staticmethod
    def parse(body: bytes) -> ChatCall:
        return parse_chat_request(body)

    @staticmethod
    def encoder(call: ChatCall, request_id: str) -> Callable[[list[Event]], bytes]:
        return ChunkEncoder(request_id, call.model, call.include_usage).encode

    @staticmethod
    def collect(call: ChatCall, request_id: str, answer: Answer) -> dict[str, Any]:
        return _completion(request_id, answer)

    @staticmethod
    def failure(failed: Failed) -> tuple[int, dict[str, Any]]:
        error, message = describe_failure(failed)
        return error.status, error_body(error, failed.record, message)

    @staticmethod
    def stream_error() -> bytes:
        return b"data: " + _encode(INTERNAL_ERROR) + b"\n\n"
