"""A fake Anthropic Messages API upstream: ``POST /v1/messages`` on 127.0.0.1.

The server, scripting, `Status`, `Reset` and `Hang` are `tests.fakes.openai_upstream`'s;
this fake answers in Anthropic's shapes::

    with AnthropicUpstream() as upstream:
        upstream.script("claude-x", Status(529), Stream(["Hel", "lo"]))
        ...  # POST {upstream.base_url}/v1/messages with model "claude-x"

A streamed answer is the event sequence the real API sends: ``message_start`` (input
usage), a ``content_block_start``/``_delta``/``_stop`` triple per block (optional
thinking, then text, then tool uses), ``message_delta`` (stop reason, output usage) and
``message_stop``; a ``ping`` after the first block starts.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

import msgspec

from tests.fakes.openai_upstream import (
    SSE_HEAD,
    FakeUpstream,
    Hang,
    Pacer,
    Reset,
    Status,
    _frame,
    _until_client_leaves,
)

__all__ = ["AnthropicUpstream", "End", "Hang", "Reset", "Status", "Stream"]

End = Literal["done", "cut", "stall", "no_stop", "malformed", "error_event"]


class Stream(msgspec.Struct, frozen=True):
    """A 200 ``text/event-stream`` answer.

    ``text`` pieces are one ``text_delta`` each, ``delay_s`` apart (``first_delay_s``
    before ``message_start``). After ``after`` pieces (None: all) the stream ends as
    ``end`` says:

    - ``done``: the remaining blocks, ``message_delta`` and ``message_stop``;
    - ``cut``: the TCP connection closes without the chunked body's terminator;
    - ``stall``: nothing more is sent until the client goes away;
    - ``no_stop``: everything but ``message_stop``, then the body ends cleanly;
    - ``malformed``: an event whose data is not JSON, then the connection closes;
    - ``error_event``: an ``error`` event of ``error_type``, then the body ends.

    ``tool_uses`` are ``(id, name, input_json)``, streamed after the text as
    ``input_json_delta`` pieces; ``stop_reason`` then defaults to ``tool_use``. With
    ``tool_after``, the text is sent whole and the stream ends as ``end`` says after that
    many pieces of the tool uses' input: a cut in the middle of a tool call.
    ``thinking`` adds a thinking block first (which is not answer text).
    """

    text: list[str]
    delay_s: float = 0.0
    first_delay_s: float = 0.0
    end: End = "done"
    after: int | None = None
    tool_uses: list[tuple[str, str, str]] | None = None
    stop_reason: str | None = None
    thinking: str | None = None
    input_tokens: int = 10
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    error_type: str = "overloaded_error"
    error_message: str = "Overloaded"
    tool_after: int | None = None


Behaviour = Stream | Status | Reset | Hang

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def error_body(error_type: str, message: str) -> dict[str, Any]:
    """Anthropic's error shape, for HTTP bodies and ``error`` events alike."""
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": "req_fake",
    }


def _sse(event: dict[str, Any]) -> bytes:
    data = json.dumps(event, separators=(",", ":")).encode()
    return _frame(b"event: " + event["type"].encode() + b"\ndata: " + data + b"\n\n")


class AnthropicUpstream(FakeUpstream):
    @property
    def base_url(self) -> str:
        """What ``base_url`` is configured as: the adapter adds ``/v1/messages``."""
        return f"http://127.0.0.1:{self.port}"

    def _model_of(self, target: str, body: dict[str, Any]) -> str | None:
        return str(body.get("model")) if target == "/v1/messages" else None

    def _error_body(self, code: int) -> dict[str, Any]:
        kind = _ERROR_TYPES.get(code, "api_error")
        return error_body(kind, f"fake upstream says {code}")

    async def _stream(  # type: ignore[override]
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        s: Stream,
        request: dict[str, Any],
    ) -> bool:
        out = Pacer(writer)
        await out.send(SSE_HEAD)
        usage = {
            "input_tokens": s.input_tokens,
            "cache_creation_input_tokens": s.cache_creation_input_tokens,
            "cache_read_input_tokens": s.cache_read_input_tokens,
            "output_tokens": 1,
        }
        message = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": request.get("model"),
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage,
        }
        await out.send(_sse({"type": "message_start", "message": message}), s.first_delay_s)
        index = 0
        if s.thinking is not None:
            await out.send(_block(index, {"type": "thinking", "thinking": "", "signature": ""}))
            await out.send(_delta(index, {"type": "thinking_delta", "thinking": s.thinking}))
            await out.send(_delta(index, {"type": "signature_delta", "signature": "c2ln"}))
            await out.send(_sse({"type": "content_block_stop", "index": index}))
            index += 1
        text_block = bool(s.text)
        if text_block:
            await out.send(_block(index, {"type": "text", "text": ""}))
            await out.send(_sse({"type": "ping"}))
        pieces = s.text if s.after is None or s.tool_after is not None else s.text[: s.after]
        for i, piece in enumerate(pieces):
            await out.send(
                _delta(index, {"type": "text_delta", "text": piece}), s.delay_s if i else 0
            )
        if s.tool_after is None and s.end not in ("done", "no_stop"):
            return await _end_early(reader, out, s)
        if text_block:
            await out.send(_sse({"type": "content_block_stop", "index": index}))
            index += 1
        sent = 0
        for call_id, name, arguments in s.tool_uses or []:
            await out.send(
                _block(index, {"type": "tool_use", "id": call_id, "name": name, "input": {}})
            )
            await out.send(_delta(index, {"type": "input_json_delta", "partial_json": ""}))
            step = max(len(arguments) // 3, 1)
            for i in range(0, len(arguments), step):
                if sent == s.tool_after:
                    return await _end_early(reader, out, s)
                sent += 1
                piece = arguments[i : i + step]
                await out.send(_delta(index, {"type": "input_json_delta", "partial_json": piece}))
            await out.send(_sse({"type": "content_block_stop", "index": index}))
            index += 1
        stop_reason = s.stop_reason or ("tool_use" if s.tool_uses else "end_turn")
        output_tokens = len(s.text) + len(s.tool_uses or [])
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": output_tokens},
        }
        await out.send(_sse(delta))
        if s.end != "no_stop":
            await out.send(_sse({"type": "message_stop"}))
        await out.send(b"0\r\n\r\n")
        await out.flush()
        return True


async def _end_early(reader: asyncio.StreamReader, out: Pacer, s: Stream) -> bool:
    """End a stream before ``message_delta`` as ``s.end`` says; False if the connection
    is unusable."""
    match s.end:
        case "stall":
            await out.flush()
            await _until_client_leaves(reader)
            return False
        case "malformed":
            await out.send(_frame(b"event: content_block_delta\ndata: {not json\n\n"))
            await out.flush()
            return False
        case "error_event":
            event = error_body(s.error_type, s.error_message)
            del event["request_id"]
            await out.send(_sse(event) + b"0\r\n\r\n")
            await out.flush()
            return True
    await out.flush()  # "cut"
    return False


def _block(index: int, block: dict[str, Any]) -> bytes:
    return _sse({"type": "content_block_start", "index": index, "content_block": block})


def _delta(index: int, delta: dict[str, Any]) -> bytes:
    return _sse({"type": "content_block_delta", "index": index, "delta": delta})
