"""A fake OpenAI-compatible upstream: a real HTTP/1.1 server on 127.0.0.1.

Written on raw asyncio streams rather than a web framework so that it can misbehave at
the byte level: cut a chunked body mid-stream, stall, reset the TCP connection, send
garbage. It runs its own event loop in a daemon thread, so async tests (an adapter
over a real client) and sync tests (the ``openai`` SDK against a gateway) share it::

    with FakeUpstream() as upstream:
        upstream.script("gpt-x", Status(429), Stream(["Hel", "lo"]))
        ...  # POST {upstream.base_url}/chat/completions with model "gpt-x"
        assert upstream.requests_for("gpt-x")[0]["stream"] is True

Each request for a model pops the next scripted behaviour; the last one repeats
forever. A model that was never scripted answers 404 ``model_not_found``. A model can
instead be answered by a function of the request (`FakeUpstream.respond`), as a model
answers what it is asked: a continuation for a prefill, the whole answer for a retry.

The other providers' fakes subclass it: where the model is named (`_model_of`), the
error body (`_error_body`) and the streamed answer (`_stream`) are theirs.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import struct
import threading
from collections.abc import Callable
from http import HTTPStatus
from types import TracebackType
from typing import Any, Literal

import msgspec

__all__ = [
    "Behaviour",
    "Embeddings",
    "End",
    "FakeUpstream",
    "Hang",
    "Reset",
    "Status",
    "Stream",
    "fake_vector",
]


End = Literal["done", "cut", "stall", "no_done", "malformed", "error_event"]


class Stream(msgspec.Struct, frozen=True):
    """A 200 ``text/event-stream`` of ``chat.completion.chunk`` events.

    ``text`` pieces are one event each, ``delay_s`` apart; ``first_delay_s`` passes
    between the response headers and the first event. After ``after`` pieces (None:
    all of them) the stream ends as ``end`` says:

    - ``done``: finish_reason chunk, usage chunk (if the request asked), ``[DONE]``;
    - ``cut``: the TCP connection closes without the chunked body's terminator;
    - ``stall``: nothing more is sent until the client goes away;
    - ``no_done``: the body ends cleanly with neither finish_reason nor ``[DONE]``;
    - ``malformed``: ``data: {not json`` then the connection closes;
    - ``error_event``: an in-band ``{"error": ...}`` event, then the body ends.

    ``tool_calls`` are ``(id, name, arguments_json)``, streamed after the text as
    OpenAI's incremental deltas (a start with the id and name, then the arguments in
    three pieces); ``finish_reason`` then defaults to ``tool_calls``. With
    ``tool_after``, the text is sent whole and the stream ends as ``end`` says after that
    many pieces of the tool calls' arguments: a cut in the middle of a tool call.
    ``whole_tool_calls`` sends each call as one delta with its id, name and complete
    arguments instead (as llmgate relays a call once it is complete).

    ``reasoning`` pieces come first, one ``delta.reasoning_content`` each (DeepSeek's
    field; ``reasoning_field`` names another, such as vLLM's ``reasoning``). ``refusal``
    pieces come after the text, one ``delta.refusal`` each, as OpenAI sends a refusal.
    ``headers`` are sent with the response's head.
    """

    text: list[str]
    delay_s: float = 0.0
    first_delay_s: float = 0.0
    end: End = "done"
    after: int | None = None
    usage: bool = True
    tool_calls: list[tuple[str, str, str]] | None = None
    finish_reason: str | None = None
    tool_after: int | None = None
    whole_tool_calls: bool = False
    reasoning: list[str] | None = None
    reasoning_field: str = "reasoning_content"
    refusal: list[str] | None = None
    headers: dict[str, str] | None = None
    """More response headers (a rate-limit quota, say)."""


class Status(msgspec.Struct, frozen=True):
    """A JSON error response; ``body`` defaults to OpenAI's ``{"error": {...}}`` shape."""

    code: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] | None = None


class Reset(msgspec.Struct, frozen=True):
    """Read the request, then reset the connection (TCP RST) without any response."""


class Hang(msgspec.Struct, frozen=True):
    """Read the request and never answer."""


class Embeddings(msgspec.Struct, frozen=True):
    """A 200 embeddings answer (``POST /embeddings``): `fake_vector` of each input,
    ``dimensions`` long if the request says, else ``dims``; ``data`` in reverse order
    (each item names its ``index``), as nothing promises it in order."""

    dims: int = 4
    prompt_tokens: int = 7


def fake_vector(value: Any, dims: int) -> list[float]:
    """The fake's embedding of one input: its text's character codes (or its tokens),
    cycled, so a test can tell which vector belongs to which input."""
    codes = [ord(c) for c in value] if isinstance(value, str) else list(value)
    return [float(codes[i % len(codes)] + i) for i in range(dims)]


Behaviour = Stream | Status | Reset | Hang | Embeddings

Responder = Callable[[dict[str, Any]], Any]
"""Chooses the behaviour for one request from its decoded JSON body."""

_ERROR_KINDS = {
    400: ("invalid_request_error", "invalid_request"),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "permission_denied"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


def _reason(code: int) -> str:
    try:
        return HTTPStatus(code).phrase
    except ValueError:  # 529 and other vendor codes
        return "Error"


def _frame(data: bytes) -> bytes:
    """One chunk of a ``transfer-encoding: chunked`` body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def _event(obj: Any) -> bytes:
    return _frame(b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n")


SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
    b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n"
)
"""The head of a streamed response; the body follows in chunked frames."""


class ClientLeft(ConnectionError):
    """The client closed the connection before the response was complete."""


class Pacer:
    """Writes a response. Bytes with no delay between them go out in one write, as a
    bursty upstream's do: a client then reads several events at once, deterministically.

    Given the connection's ``reader``, a delay ends early when the client closes the
    connection, with `ClientLeft`.
    """

    def __init__(
        self, writer: asyncio.StreamWriter, reader: asyncio.StreamReader | None = None
    ) -> None:
        self._writer = writer
        self._reader = reader
        self._pending = bytearray()

    async def send(self, data: bytes, delay: float = 0.0) -> None:
        if delay:
            await self.flush()
            if self._reader is None:
                await asyncio.sleep(delay)
            else:
                try:
                    await asyncio.wait_for(_until_client_leaves(self._reader), delay)
                except TimeoutError:
                    pass
                else:
                    raise ClientLeft
        self._pending.extend(data)

    async def flush(self) -> None:
        self._writer.write(bytes(self._pending))
        self._pending.clear()
        await self._writer.drain()


class FakeUpstream:
    """The server. ``start()``/``stop()``, or use it as a context manager."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        """Decoded JSON request bodies, in arrival order."""
        self.headers: list[dict[str, str]] = []
        """Request headers (lower-cased names), parallel to ``requests``."""
        self.paths: list[str] = []
        """Request targets (path and query), parallel to ``requests``."""
        self._models: list[str] = []
        self.connections = 0
        """TCP connections accepted so far (keep-alive reuse keeps this low)."""
        self._active: dict[str, int] = {}
        self._peak: dict[str, int] = {}
        self.left: list[str] = []
        """The model of each request whose client closed the connection while it waited
        for an answer (a `Hang`, or a `Stream`'s delay)."""
        self.port = 0
        self._scripts: dict[str, list[Behaviour]] = {}
        self._responders: dict[str, Responder] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, model: str, *behaviours: Behaviour) -> None:
        """Answer the next requests for ``model`` with these, the last one forever."""
        if not behaviours:
            raise ValueError("script() needs at least one behaviour")
        with self._lock:
            self._scripts[model] = list(behaviours)

    def respond(self, model: str, responder: Responder) -> None:
        """Answer every request for ``model`` with ``responder(request_body)``."""
        with self._lock:
            self._responders[model] = responder

    def max_concurrent(self, model: str) -> int:
        """The most requests for ``model`` this fake was answering at once."""
        with self._lock:
            return self._peak.get(model, 0)

    def requests_for(self, model: str) -> list[dict[str, Any]]:
        with self._lock:
            return [r for r, m in zip(self.requests, self._models, strict=True) if m == model]

    def headers_for(self, model: str) -> list[dict[str, str]]:
        with self._lock:
            return [h for h, m in zip(self.headers, self._models, strict=True) if m == model]

    # -- what differs between providers -----------------------------------------------

    def _model_of(self, target: str, body: dict[str, Any]) -> str | None:
        """The model a request names; None answers 404."""
        return str(body.get("model"))

    def _error_body(self, code: int) -> dict[str, Any]:
        kind, err_code = _ERROR_KINDS.get(code, ("server_error", None))
        message = f"fake upstream says {code}"
        return {"error": {"message": message, "type": kind, "code": err_code}}

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> FakeUpstream:
        self._thread = threading.Thread(target=self._run, name="fake-upstream", daemon=True)
        self._thread.start()
        self._ready.wait()
        if not self.port:
            raise RuntimeError("the fake upstream failed to start; see the thread's traceback")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(
        self, exc: type[BaseException] | None, val: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve())
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
            self._ready.set()  # never leave start() waiting

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._connection, "127.0.0.1", 0, backlog=512)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stopping.wait()
        server.close()
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await server.wait_closed()

    # -- one connection -------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections += 1
        try:
            # Keep-alive: serve requests one after another until one says to close.
            while await self._request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client went away, or the server is stopping
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; False once the connection must close."""
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, _, rest = request_line.partition(" ")
        target = rest.partition(" ")[0]
        headers = {}
        for line in lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        try:
            data = json.loads(body) if method == "POST" else None
        except ValueError:
            data = None
        if not isinstance(data, dict):
            await self._status(writer, Status(400 if method == "POST" else 404))
            return True
        model = self._model_of(target, data)
        with self._lock:
            self.requests.append(data)
            self.headers.append(headers)
            self.paths.append(target)
            self._models.append(model or "")
            script = self._scripts.get(model) if model is not None else None
            responder = self._responders.get(model) if model is not None else None
            behaviour: Behaviour = (
                (script.pop(0) if len(script) > 1 else script[0]) if script else Status(404)
            )
        if responder is not None:
            behaviour = responder(data)
        key = model or ""
        with self._lock:
            self._active[key] = active = self._active.get(key, 0) + 1
            self._peak[key] = max(self._peak.get(key, 0), active)
        try:
            return await self._answer(reader, writer, behaviour, data, headers, key)
        finally:
            with self._lock:
                self._active[key] -= 1

    async def _answer(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        behaviour: Behaviour,
        data: dict[str, Any],
        headers: dict[str, str],
        model: str,
    ) -> bool:
        keep_alive = headers.get("connection", "").lower() != "close"
        match behaviour:
            case Status():
                await self._status(writer, behaviour)
                return keep_alive
            case Reset():
                # SO_LINGER with a zero timeout turns close() into a TCP RST.
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return False
            case Hang():
                await _until_client_leaves(reader)
                self.left.append(model)
                return False
            case Embeddings():
                await self._json(writer, self._embeddings(behaviour, data))
                return keep_alive
            case _:  # this fake's (or a subclass's) Stream
                try:
                    return await self._stream(reader, writer, behaviour, data) and keep_alive
                except ClientLeft:
                    self.left.append(model)
                    return False

    async def _status(self, writer: asyncio.StreamWriter, status: Status) -> None:
        body = status.body or self._error_body(status.code)
        payload = json.dumps(body).encode()
        extra = "".join(f"{k}: {v}\r\n" for k, v in (status.headers or {}).items())
        writer.write(
            f"HTTP/1.1 {status.code} {_reason(status.code)}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(payload)}\r\n"
            f"{extra}\r\n".encode()
            + payload
        )
        await writer.drain()

    def _embeddings(self, e: Embeddings, request: dict[str, Any]) -> dict[str, Any]:
        """OpenAI's embeddings answer; floats, or base64 when the request asks."""
        inputs = request.get("input")
        items = inputs if isinstance(inputs, list) and not isinstance(inputs[0], int) else [inputs]
        dims = request.get("dimensions") or e.dims
        data = []
        for i, value in enumerate(items):
            vector: Any = fake_vector(value, dims)
            if request.get("encoding_format") == "base64":
                vector = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": vector})
        usage = {"prompt_tokens": e.prompt_tokens, "total_tokens": e.prompt_tokens}
        return {"object": "list", "data": data[::-1], "model": request.get("model"), "usage": usage}

    async def _json(self, writer: asyncio.StreamWriter, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(payload), payload)
        )
        await writer.drain()

    async def _stream(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        s: Stream,
        request: dict[str, Any],
    ) -> bool:
        """Send a streamed answer; False if the connection was left unusable."""
        model = request.get("model")
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
        }

        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            return _event(
                {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            )

        out = Pacer(writer, reader)
        send, flush = out.send, out.flush
        extra = "".join(f"{k}: {v}\r\n" for k, v in (s.headers or {}).items())
        await send(SSE_HEAD[:-2] + extra.encode() + b"\r\n")
        await send(chunk({"role": "assistant", "content": ""}), s.first_delay_s)
        for piece in s.reasoning or []:
            await send(chunk({"content": None, s.reasoning_field: piece}))
        pieces = s.text if s.after is None or s.tool_after is not None else s.text[: s.after]
        for i, piece in enumerate(pieces):
            await send(chunk({"content": piece}), s.delay_s if i else 0.0)
        if s.tool_after is None and s.end != "done":
            return await _end_early(reader, out, s.end)
        for piece in s.refusal or []:
            await send(chunk({"refusal": piece}))
        sent = 0
        for index, (call_id, name, arguments) in enumerate(s.tool_calls or []):
            start = {
                "index": index,
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": arguments if s.whole_tool_calls else ""},
            }
            await send(chunk({"tool_calls": [start]}))
            if s.whole_tool_calls:
                continue
            step = max(len(arguments) // 3, 1)
            for i in range(0, len(arguments), step):
                if sent == s.tool_after:
                    return await _end_early(reader, out, s.end)
                part = {"index": index, "function": {"arguments": arguments[i : i + step]}}
                await send(chunk({"tool_calls": [part]}))
                sent += 1
        finish = s.finish_reason or ("tool_calls" if s.tool_calls else "stop")
        tail = chunk({}, finish)
        options = request.get("stream_options") or {}
        if s.usage and options.get("include_usage"):
            completion = len(s.text) + len(s.tool_calls or [])
            usage = {
                "prompt_tokens": 10,
                "completion_tokens": completion,
                "total_tokens": 10 + completion,
            }
            tail += _event({**base, "choices": [], "usage": usage})
        await send(tail + _frame(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        await flush()
        return True


async def _end_early(reader: asyncio.StreamReader, out: Pacer, end: End) -> bool:
    """End a stream before its finish as ``end`` says; False if the connection is unusable."""
    match end:
        case "stall":
            await out.flush()
            await _until_client_leaves(reader)
            return False
        case "malformed":
            await out.send(_frame(b"data: {not json\n\n"))
            await out.flush()
            return False
        case "no_done":
            await out.send(b"0\r\n\r\n")
            await out.flush()
            return True
        case "error_event":
            error = {
                "message": "The server had an error while processing your request.",
                "type": "server_error",
            }
            await out.send(_event({"error": error}) + b"0\r\n\r\n")
            await out.flush()
            return True
    await out.flush()  # "cut"
    return False


async def _until_client_leaves(reader: asyncio.StreamReader) -> None:
    while await reader.read(65536):
        pass
