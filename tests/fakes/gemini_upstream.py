"""A fake Gemini API upstream: ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse``,
and ``:batchEmbedContents`` for embeddings (`Embeddings`).

The server, scripting, `Status`, `Reset` and `Hang` are `tests.fakes.openai_upstream`'s;
this fake answers in Gemini's shapes::

    with GeminiUpstream() as upstream:
        upstream.script("gemini-x", Status(429), Stream(["Hel", "lo"]))
        ...  # POST {upstream.base_url}/v1beta/models/gemini-x:streamGenerateContent?alt=sse

A streamed answer is a sequence of ``GenerateContentResponse`` objects, one per
``data:`` event with CRLF line ends as Google sends them; the last carries a
``finishReason`` and the full ``usageMetadata``. There is no end marker.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

import msgspec

from tests.fakes.openai_upstream import (
    SSE_HEAD,
    Embeddings,
    FakeUpstream,
    Hang,
    Pacer,
    Reset,
    Status,
    _frame,
    _until_client_leaves,
    fake_vector,
)

__all__ = ["Embeddings", "End", "GeminiUpstream", "Hang", "Reset", "Status", "Stream"]

End = Literal[
    "done", "cut", "stall", "no_finish", "malformed", "safety", "blocked_prompt", "error_event"
]


class Stream(msgspec.Struct, frozen=True):
    """A 200 ``text/event-stream`` answer.

    ``text`` pieces are one response each, ``delay_s`` apart (``first_delay_s`` before
    the first). After ``after`` pieces (None: all) the stream ends as ``end`` says:

    - ``done``: function calls (if any), then a response with ``finish_reason``;
    - ``cut``: the TCP connection closes without the chunked body's terminator;
    - ``stall``: nothing more is sent until the client goes away;
    - ``no_finish``: the body ends cleanly with no ``finishReason`` sent;
    - ``malformed``: an event whose data is not JSON, then the connection closes;
    - ``safety``: a response with ``finishReason: SAFETY``, then the body ends;
    - ``blocked_prompt``: only ``promptFeedback.blockReason: SAFETY``, no candidates;
    - ``error_event``: an ``{"error": ...}`` object (503 UNAVAILABLE), then the body ends.

    ``function_calls`` are ``(name, args)``, sent together in one response as Gemini
    does. ``thought`` adds a thought-summary part first (which is not answer text).
    """

    text: list[str]
    delay_s: float = 0.0
    first_delay_s: float = 0.0
    end: End = "done"
    after: int | None = None
    function_calls: list[tuple[str, dict[str, Any]]] | None = None
    finish_reason: str = "STOP"
    thought: str | None = None
    prompt_tokens: int = 10
    cached_tokens: int = 0


Behaviour = Stream | Status | Reset | Hang | Embeddings

_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_PREFIX = "/v1beta/models/"
_METHOD = ":streamGenerateContent"
_EMBED = ":batchEmbedContents"


def error_body(code: int, message: str, status: str, **extra: Any) -> dict[str, Any]:
    """Google's error shape (``google.rpc.Status``)."""
    return {"error": {"code": code, "message": message, "status": status, **extra}}


def _sse(obj: dict[str, Any]) -> bytes:
    return _frame(b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\r\n\r\n")


class GeminiUpstream(FakeUpstream):
    @property
    def base_url(self) -> str:
        """What ``base_url`` is configured as: the adapter adds the version and path."""
        return f"http://127.0.0.1:{self.port}"

    def _model_of(self, target: str, body: dict[str, Any]) -> str | None:
        path, _, query = target.partition("?")
        if path.startswith(_PREFIX) and path.endswith(_EMBED) and not query:
            return path[len(_PREFIX) : -len(_EMBED)]
        if not (path.startswith(_PREFIX) and path.endswith(_METHOD) and "alt=sse" in query):
            return None
        return path[len(_PREFIX) : -len(_METHOD)]

    def _embeddings(self, e: Embeddings, request: dict[str, Any]) -> dict[str, Any]:
        """``BatchEmbedContentsResponse``: one ``ContentEmbedding`` per request, in order,
        and no usage."""
        out = []
        for one in request["requests"]:
            text = "".join(part["text"] for part in one["content"]["parts"])
            out.append({"values": fake_vector(text, one.get("outputDimensionality") or e.dims)})
        return {"embeddings": out}

    def _error_body(self, code: int) -> dict[str, Any]:
        return error_body(code, f"fake upstream says {code}", _STATUSES.get(code, "UNKNOWN"))

    async def _stream(  # type: ignore[override]
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        s: Stream,
        request: dict[str, Any],
    ) -> bool:
        out = Pacer(writer)
        await out.send(SSE_HEAD)
        meta = {"modelVersion": "gemini-fake-001", "responseId": "fake-id"}
        prompt = {"promptTokenCount": s.prompt_tokens, "totalTokenCount": s.prompt_tokens}

        def response(parts: list[dict[str, Any]], **candidate: Any) -> bytes:
            content = {"parts": parts, "role": "model"}
            return _sse(
                {
                    "candidates": [{"content": content, **candidate, "index": 0}],
                    "usageMetadata": prompt,
                    **meta,
                }
            )

        if s.end == "blocked_prompt":
            feedback = {
                "blockReason": "SAFETY",
                "safetyRatings": [
                    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}
                ],
            }
            blocked = {"promptFeedback": feedback, "usageMetadata": prompt, **meta}
            await out.send(_sse(blocked) + b"0\r\n\r\n", s.first_delay_s)
            await out.flush()
            return True
        first = s.first_delay_s
        if s.thought is not None:
            await out.send(response([{"text": s.thought, "thought": True}]), first)
            first = 0.0
        pieces = s.text if s.after is None else s.text[: s.after]
        for i, piece in enumerate(pieces):
            await out.send(response([{"text": piece}]), s.delay_s if i else first)
        match s.end:
            case "cut":
                await out.flush()
                return False
            case "stall":
                await out.flush()
                await _until_client_leaves(reader)
                return False
            case "malformed":
                await out.send(_frame(b"data: {not json\r\n\r\n"))
                await out.flush()
                return False
            case "no_finish":
                await out.send(b"0\r\n\r\n")
                await out.flush()
                return True
            case "error_event":
                overloaded = error_body(503, "The model is overloaded.", "UNAVAILABLE")
                await out.send(_sse(overloaded) + b"0\r\n\r\n")
                await out.flush()
                return True
            case "safety":
                rating = {
                    "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                    "probability": "HIGH",
                    "blocked": True,
                }
                await out.send(
                    response([{"text": ""}], finishReason="SAFETY", safetyRatings=[rating])
                    + b"0\r\n\r\n"
                )
                await out.flush()
                return True
        if s.function_calls:
            calls = [{"functionCall": {"name": n, "args": a}} for n, a in s.function_calls]
            await out.send(response(calls))
        completion = len(s.text) + len(s.function_calls or [])
        usage: dict[str, Any] = {
            "promptTokenCount": s.prompt_tokens,
            "candidatesTokenCount": completion,
            "totalTokenCount": s.prompt_tokens + completion,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": s.prompt_tokens}],
        }
        if s.cached_tokens:
            usage["cachedContentTokenCount"] = s.cached_tokens
        last = {
            "candidates": [
                {
                    "content": {"parts": [{"text": ""}], "role": "model"},
                    "finishReason": s.finish_reason,
                    "index": 0,
                }
            ],
            "usageMetadata": usage,
            **meta,
        }
        await out.send(_sse(last) + b"0\r\n\r\n")
        await out.flush()
        return True
