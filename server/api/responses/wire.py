"""Engine events as the Responses API's event stream, or one ``Response`` object.

A stream goes as OpenAI sends one: ``response.created`` and ``response.in_progress``;
for the answer text a ``message`` item (``response.output_item.added``,
``response.content_part.added``, ``response.output_text.delta`` …,
``response.output_text.done``, ``response.content_part.done``,
``response.output_item.done``); reasoning as a ``reasoning`` item with a summary
(``response.reasoning_summary_text.delta``), which is what the SDKs show; each tool call
as a ``function_call`` item with its arguments (``response.function_call_arguments.delta``
and ``.done``), whole, since the engine passes calls on only once the attempt that made
them ended cleanly; then ``response.completed`` with the usage, or
``response.incomplete`` when the answer stopped at ``max_output_tokens`` or a content
filter.

A stream that cannot be completed closes its open item as ``incomplete`` and ends with
``response.failed`` (its ``error`` says why) and an ``error`` event, never with
``response.completed``. Every event carries a ``sequence_number``; llmgate's own
information rides in a ``llmgate`` field that clients ignore: the stream switch (or
reset) on the first delta after it, the request record on the final event.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

from router.collect import Answer
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
from server.api.openai.wire import ChatWire
from server.api.responses.request import ResponsesCall, parse_responses_request
from server.store.responses import Kept

__all__ = ["ResponsesEncoder", "ResponsesWire", "keep", "response_object"]

_encode = msgspec.json.Encoder().encode

_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
"""Finish reasons that make a response ``incomplete``, with OpenAI's reason for it."""


def _usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
    }


def _record(record: RequestRecord) -> dict[str, Any]:
    return msgspec.to_builtins(record)  # type: ignore[no-any-return]


def response_object(
    call: ResponsesCall,
    response_id: str,
    created: int,
    model: str,
    output: list[dict[str, Any]],
    status: str,
    **fields: Any,
) -> dict[str, Any]:
    """The ``Response`` object, echoing the request's settings as OpenAI does; ``fields``
    sets ``usage``, ``error``, ``incomplete_details`` and ``llmgate``."""
    req = call.req
    fmt = req.text.format if req.text is not None else None
    reasoning = req.reasoning
    body: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": req.instructions,
        "max_output_tokens": req.max_output_tokens,
        "metadata": req.metadata or {},
        "model": model,
        "output": output,
        "parallel_tool_calls": True if req.parallel_tool_calls is None else req.parallel_tool_calls,
        "previous_response_id": req.previous_response_id,
        "reasoning": {
            "effort": reasoning.effort if reasoning else None,
            "summary": reasoning.summary if reasoning else None,
        },
        "store": req.store,
        "temperature": 1.0 if req.temperature is None else req.temperature,
        "text": {"format": msgspec.to_builtins(fmt) if fmt is not None else {"type": "text"}},
        "tool_choice": msgspec.to_builtins(req.tool_choice or "auto"),
        "tools": msgspec.to_builtins(req.tools or []),
        "top_p": 1.0 if req.top_p is None else req.top_p,
        "truncation": req.truncation or "disabled",
        "usage": None,
        "user": req.user,
    }
    body.update(fields)
    return body


def _status(finish: str) -> tuple[str, dict[str, str] | None]:
    reason = _INCOMPLETE.get(finish)
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


class _Item:
    """One output item as it is built: its dict (what ``output`` shows) and its open
    content part's pieces."""

    __slots__ = ("body", "index", "part", "pieces")

    def __init__(self, index: int, body: dict[str, Any]) -> None:
        self.index = index
        self.body = body
        self.part: dict[str, Any] | None = None
        self.pieces: list[str] = []

    @property
    def id(self) -> str:
        return str(self.body["id"])


class ResponsesEncoder:
    """Turns one request's event batches into the Responses event stream."""

    __slots__ = (
        "_call",
        "_created",
        "_delta_head",
        "_id",
        "_item",
        "_model",
        "_output",
        "_pending",
        "_seq",
        "_started",
        "_stem",
    )

    def __init__(self, call: ResponsesCall, request_id: str) -> None:
        self._call = call
        self._id = request_id
        self._stem = request_id.removeprefix("resp_")
        self._created = int(time.time())
        self._model = call.model
        self._seq = 0
        self._output: list[_Item] = []
        self._item: _Item | None = None
        self._pending: dict[str, Any] | None = None
        self._started = False
        self._delta_head = b""

    # -- events ----------------------------------------------------------------------

    def _event(self, kind: str, body: dict[str, Any]) -> bytes:
        data = {"type": kind, "sequence_number": self._seq, **body}
        self._seq += 1
        if self._pending is not None and kind.endswith(".delta"):
            data["llmgate"], self._pending = self._pending, None
        return b"event: " + kind.encode() + b"\ndata: " + _encode(data) + b"\n\n"

    def _response(self, status: str, **fields: Any) -> dict[str, Any]:
        output = [item.body for item in self._output]
        return response_object(
            self._call, self._id, self._created, self._model, output, status, **fields
        )

    def encode(self, batch: list[Event]) -> bytes:
        out: list[bytes] = []
        if not self._started:
            self._started = True
            for event in batch:  # the model that answers first, if this batch says
                if type(event) is AttemptStarted:
                    self._model = answered_model(event.target)
                    break
            snapshot = self._response("in_progress")
            out.append(self._event("response.created", {"response": snapshot}))
            out.append(self._event("response.in_progress", {"response": snapshot}))
        for event in batch:
            kind = type(event)
            if kind is TextDelta:
                out.append(self._text(event.text))  # type: ignore[union-attr]
            elif kind is ToolCallDelta:
                out += self._tool_call(event)  # type: ignore[arg-type]
            elif kind is ReasoningDelta:
                out += self._reasoning(event.text)  # type: ignore[union-attr]
            elif kind is RefusalDelta:
                out += self._refusal(event.text)  # type: ignore[union-attr]
            elif kind is AttemptStarted:
                self._model = answered_model(event.target)  # type: ignore[union-attr]
            elif kind is StreamSwitch:
                self._pending = {"switch": event.switch}  # type: ignore[union-attr]
            elif kind is Reset:
                self._pending = {"reset": True, "switch": event.switch}  # type: ignore[union-attr]
                if self._item is not None and self._item.body["type"] == "message":
                    self._item.pieces.clear()  # the final text is the new answer's alone
            elif kind is Done:
                out += self._done(event)  # type: ignore[arg-type]
            elif kind is Failed:
                out += self._failed(event)  # type: ignore[arg-type]
        return b"".join(out)

    # -- items -----------------------------------------------------------------------

    def _open(self, kind: str, prefix: str, **fields: Any) -> list[bytes]:
        out = self._close()
        index = len(self._output)
        body: dict[str, Any] = {"id": f"{prefix}_{self._stem}_{index}", "type": kind, **fields}
        self._item = item = _Item(index, body)
        self._output.append(item)
        out.append(self._event("response.output_item.added", {"output_index": index, "item": body}))
        return out

    def _message(self) -> _Item:
        item = self._item
        if item is None or item.body["type"] != "message":
            raise AssertionError("no message is open")
        return item

    def _part(self, kind: str, empty: dict[str, Any]) -> list[bytes]:
        """Opens the message's content part of ``kind`` unless it is the open one."""
        out: list[bytes] = []
        item = self._item
        if item is None or item.body["type"] != "message":
            out += self._open("message", "msg", status="in_progress", content=[], role="assistant")
            item = self._message()
        if item.part is not None and item.part["type"] == kind:
            return out
        out += self._close_part(item)
        item.part = {"type": kind, **empty}
        index = len(item.body["content"])
        item.body["content"].append(item.part)
        fields = {"item_id": item.id, "output_index": item.index, "content_index": index}
        out.append(self._event("response.content_part.added", {**fields, "part": dict(item.part)}))
        # The text delta is the hot path: its bytes around the text, built once per part.
        self._delta_head = (
            b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
            b'"item_id":' + _encode(item.id) + b',"output_index":' + str(item.index).encode()
            + b',"content_index":' + str(index).encode() + b',"logprobs":[],"delta":'
        )  # fmt: skip
        return out

    def _text(self, text: str) -> bytes:
        item = self._item
        head: list[bytes] = []
        if item is None or item.part is None or item.part["type"] != "output_text":
            head = self._part("output_text", {"annotations": [], "logprobs": [], "text": ""})
            item = self._message()
        item.pieces.append(text)
        seq = self._seq
        self._seq += 1
        tail = b',"sequence_number":' + str(seq).encode()
        if self._pending is not None:
            tail += b',"llmgate":' + _encode(self._pending)
            self._pending = None
        return b"".join(head) + self._delta_head + _encode(text) + tail + b"}\n\n"

    def _refusal(self, text: str) -> list[bytes]:
        out = self._part("refusal", {"refusal": ""})
        item = self._message()
        item.pieces.append(text)
        fields = {"item_id": item.id, "output_index": item.index}
        fields["content_index"] = len(item.body["content"]) - 1
        out.append(self._event("response.refusal.delta", {**fields, "delta": text}))
        return out

    def _reasoning(self, text: str) -> list[bytes]:
        out: list[bytes] = []
        item = self._item
        if item is None or item.body["type"] != "reasoning":
            out += self._open("reasoning", "rs", summary=[], encrypted_content=None)
            item = self._item
            assert item is not None
            fields = {"item_id": item.id, "output_index": item.index, "summary_index": 0}
            part = {"type": "summary_text", "text": ""}
            out.append(
                self._event("response.reasoning_summary_part.added", {**fields, "part": part})
            )
        item.pieces.append(text)
        fields = {"item_id": item.id, "output_index": item.index, "summary_index": 0}
        out.append(self._event("response.reasoning_summary_text.delta", {**fields, "delta": text}))
        return out

    def _tool_call(self, call: ToolCallDelta) -> list[bytes]:
        fields = {"call_id": call.id or "", "name": call.name or "", "arguments": ""}
        out = self._open("function_call", "fc", status="in_progress", **fields)
        item = self._item
        assert item is not None
        ids = {"item_id": item.id, "output_index": item.index}
        out.append(
            self._event("response.function_call_arguments.delta", {**ids, "delta": call.arguments})
        )
        out.append(
            self._event(
                "response.function_call_arguments.done",
                {**ids, "name": call.name or "", "arguments": call.arguments},
            )
        )
        item.body["arguments"] = call.arguments
        out += self._close()
        return out

    def _close_part(self, item: _Item) -> list[bytes]:
        part = item.part
        if part is None:
            return []
        item.part = None
        text = "".join(item.pieces)
        item.pieces.clear()
        fields = {
            "item_id": item.id,
            "output_index": item.index,
            "content_index": len(item.body["content"]) - 1,
        }
        out: list[bytes] = []
        if part["type"] == "output_text":
            part["text"] = text
            out.append(
                self._event("response.output_text.done", {**fields, "text": text, "logprobs": []})
            )
        else:
            part["refusal"] = text
            out.append(self._event("response.refusal.done", {**fields, "refusal": text}))
        out.append(self._event("response.content_part.done", {**fields, "part": part}))
        return out

    def _close(self, status: str = "completed") -> list[bytes]:
        """Ends the open item, if any."""
        item = self._item
        if item is None:
            return []
        self._item = None
        out: list[bytes] = []
        body = item.body
        if body["type"] == "message":
            out += self._close_part(item)
        elif body["type"] == "reasoning":
            text = "".join(item.pieces)
            part = {"type": "summary_text", "text": text}
            body["summary"] = [part]
            fields = {"item_id": item.id, "output_index": item.index, "summary_index": 0}
            out.append(
                self._event("response.reasoning_summary_text.done", {**fields, "text": text})
            )
            out.append(
                self._event("response.reasoning_summary_part.done", {**fields, "part": part})
            )
        if "status" in body or body["type"] != "reasoning":
            body["status"] = status
        out.append(
            self._event("response.output_item.done", {"output_index": item.index, "item": body})
        )
        return out

    # -- the end ---------------------------------------------------------------------

    def _done(self, done: Done) -> list[bytes]:
        self._model = answered_model(done.model)
        status, incomplete = _status(done.finish_reason)
        out = self._close("incomplete" if incomplete else "completed")
        final = self._response(
            status,
            incomplete_details=incomplete,
            usage=_usage(done.usage),
            llmgate=_record(done.record),
        )
        out.append(self._event(f"response.{status}", {"response": final}))
        keep(self._call, self._id, final)
        return out

    def _failed(self, failed: Failed) -> list[bytes]:
        error, message = describe_failure(failed)
        out = self._close("incomplete")
        code = error.code or error.type
        final = self._response(
            "failed",
            error={"code": code, "message": message},
            usage=_usage(failed.usage),
            llmgate=_record(failed.record),
        )
        out.append(self._event("response.failed", {"response": final}))
        out.append(
            self._event(
                "error", {"code": code, "message": message, "param": getattr(error, "param", None)}
            )
        )
        return out


def _collected(call: ResponsesCall, request_id: str, answer: Answer) -> dict[str, Any]:
    done = answer.done
    stem = request_id.removeprefix("resp_")
    status, incomplete = _status(done.finish_reason)
    item_status = "incomplete" if incomplete else "completed"
    output: list[dict[str, Any]] = []
    if answer.reasoning:
        summary = [{"type": "summary_text", "text": answer.reasoning}]
        output.append(
            {
                "id": f"rs_{stem}_0",
                "type": "reasoning",
                "summary": summary,
                "encrypted_content": None,
            }
        )
    content: list[dict[str, Any]] = []
    if answer.text:
        content.append(
            {"type": "output_text", "annotations": [], "logprobs": [], "text": answer.text}
        )
    if answer.refusal:
        content.append({"type": "refusal", "refusal": answer.refusal})
    if content or not answer.tool_calls:
        output.append(
            {
                "id": f"msg_{stem}_{len(output)}",
                "type": "message",
                "status": item_status,
                "content": content,
                "role": "assistant",
            }
        )
    for tool in answer.tool_calls:
        output.append(
            {
                "id": f"fc_{stem}_{len(output)}",
                "type": "function_call",
                "status": "completed",
                "call_id": tool.id,
                "name": tool.name,
                "arguments": tool.arguments,
            }
        )
    body = response_object(
        call,
        request_id,
        int(time.time()),
        answered_model(done.model),
        output,
        status,
        incomplete_details=incomplete,
        usage=_usage(done.usage),
        llmgate=_record(done.record),
    )
    keep(call, request_id, body)
    return body


_ITEM_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}


def keep(call: ResponsesCall, response_id: str, body: dict[str, Any]) -> None:
    """Store a completed response (``store``, the default) for ``GET`` and follow-ups:
    its conversation so far, its output included."""
    keeper = call.keeper
    if keeper is None or not call.req.store or not keeper.enabled:
        return
    keeper.save_soon(
        Kept(
            id=response_id,
            api_key_id=call.client,
            created_at=datetime.now(UTC),
            session=call.session,
            conversation=[*call.prior, *call.turn, *_assistant(body["output"])],
            input_items=_input_items(call, response_id.removeprefix("resp_")),
            response=body,
        )
    )


def _assistant(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A response's output as the engine's assistant message."""
    text = "".join(
        part["text"]
        for item in output
        if item["type"] == "message"
        for part in item["content"]
        if part["type"] == "output_text"
    )
    calls = [
        {
            "id": item["call_id"],
            "type": "function",
            "function": {"name": item["name"], "arguments": item["arguments"]},
        }
        for item in output
        if item["type"] == "function_call"
    ]
    if not text and not calls:
        return []
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return [message]


def _input_items(call: ResponsesCall, stem: str) -> list[dict[str, Any]]:
    """The request's input as items, each with an id, as ``input_items`` lists them."""
    raw = call.req.input
    items = [{"role": "user", "content": raw}] if isinstance(raw, str) else raw or []
    out: list[dict[str, Any]] = []
    for i, given in enumerate(items):
        item = {"type": "message", **given}
        kind = item["type"]
        item.setdefault("id", f"{_ITEM_PREFIX.get(kind, 'item')}_{stem}_in{i}")
        if kind == "message" and isinstance(item.get("content"), str):
            part = "output_text" if item.get("role") == "assistant" else "input_text"
            item["content"] = [{"type": part, "text": item["content"]}]
        out.append(item)
    return out


class ResponsesWire:
    """``/v1/responses`` as a `server.api._serve.Wire`."""

    door = "responses"
    id_prefix = "resp_"
    id_header: str | None = None

    credentials = staticmethod(ChatWire.credentials)
    failure = staticmethod(ChatWire.failure)

    @staticmethod
    def parse(body: bytes) -> ResponsesCall:
        return parse_responses_request(body)

    @staticmethod
    def encoder(call: ResponsesCall, request_id: str) -> Callable[[list[Event]], bytes]:
        return ResponsesEncoder(call, request_id).encode

    @staticmethod
    def collect(call: ResponsesCall, request_id: str, answer: Answer) -> dict[str, Any]:
        return _collected(call, request_id, answer)

    @staticmethod
    def stream_error() -> bytes:
        body = {
            "type": "error",
            "code": "server_error",
            "message": "Internal error in llmgate; see the server log.",
            "param": None,
            "sequence_number": 0,
        }
        return b"event: error\ndata: " + _encode(body) + b"\n\n"
