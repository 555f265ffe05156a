"""A fast fake streaming upstream for the gateway benchmark: OpenAI and Anthropic.

Raw asyncio (uvloop when installed), HTTP/1.1 keep-alive, chunked transfer encoding.
A ``POST`` to a path ending in ``/messages`` answers an Anthropic Messages SSE stream
(``message_start``, ``content_block_start``, N ``content_block_delta`` text deltas,
``content_block_stop``, ``message_delta`` with the stop reason and usage,
``message_stop``, each as ``event:`` and ``data:`` lines); any other ``POST`` answers
an OpenAI ``chat.completion.chunk`` stream (role, N content chunks, finish, usage,
``[DONE]``). The request's ``model`` names the shape:

- ``burst-N``: the whole answer in one write (the response bytes are built once per N
  and protocol, and reused);
- ``paced-N``: the same events with 1 ms between content chunks. One timer drives
  every open paced stream, so 64 concurrent streams cost one wake-up per millisecond,
  not 64;
A ``POST`` to a path ending in ``/embeddings`` answers one 256-float embedding (the
same bytes every time), for any model.

- ``skewed-N``: the burst answer after a delay: 10 ms, or for one request in twenty
  (drawn from a seeded generator) 300 ms. A deployment with a slow tail, for the
  hedging rows (``run.py --hedge``).

Any ``GET`` answers ``200 ok`` (a readiness probe). Only for benchmarks: it reads
nothing of the request but the path and the model name.

    python benchmarks/upstream.py --port 8001
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import signal
import time

__all__ = ["Upstream", "anthropic_events", "main", "stream_events"]

_HEAD = (
    b"HTTP/1.1 200 OK\r\n"
    b"content-type: text/event-stream\r\n"
    b"cache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n"
    b"\r\n"
)
_OK = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"
_MODEL = re.compile(rb'"model"\s*:\s*"(burst|paced|skewed)-(\d+)"')
_TICK_S = 0.001
_VECTOR = [round((i % 17) / 17 - 0.5, 6) for i in range(256)]
_EMBEDDING_BODY = json.dumps(
    {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": _VECTOR}],
        "model": "embed",
        "usage": {"prompt_tokens": 4, "total_tokens": 4},
    },
    separators=(",", ":"),
).encode()
_EMBEDDING = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
    % len(_EMBEDDING_BODY)
    + _EMBEDDING_BODY
)
SKEW_FAST_S = 0.010
SKEW_SLOW_S = 0.300
SKEW_SLOW_SHARE = 0.05


def _frame(data: bytes) -> bytes:
    """One HTTP chunk."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def stream_events(n: int, model: str = "fake") -> list[bytes]:
    """The SSE events of one answer: role, ``n`` content chunks, finish, usage, [DONE].

    The role chunk travels with the first content chunk, as one event each."""
    head = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": model}

    def chunk(delta: dict[str, str], finish: str | None = None) -> bytes:
        body = {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"

    usage = {
        **head,
        "choices": [],
        "usage": {"prompt_tokens": 8, "completion_tokens": n, "total_tokens": 8 + n},
    }
    events = [chunk({"role": "assistant", "content": ""}) + chunk({"content": "tok0 "})]
    events += [chunk({"content": f"tok{i} "}) for i in range(1, n)]
    events.append(chunk({}, "stop"))
    events.append(b"data: " + json.dumps(usage, separators=(",", ":")).encode() + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def anthropic_events(n: int, model: str = "fake") -> list[bytes]:
    """The SSE events of one Anthropic Messages answer, grouped like `stream_events`:
    message_start, content_block_start and the first text delta; ``n - 1`` more text
    deltas; content_block_stop, message_delta and message_stop (so ``n + 1`` items,
    the first and last of which hold several events)."""

    def event(body: dict[str, object]) -> bytes:
        data = json.dumps(body, separators=(",", ":")).encode()
        return b"event: %s\ndata: %s\n\n" % (str(body["type"]).encode(), data)

    def delta(i: int) -> bytes:
        text = {"type": "text_delta", "text": f"tok{i} "}
        return event({"type": "content_block_delta", "index": 0, "delta": text})

    message: dict[str, object] = {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 8, "output_tokens": 1},
    }
    start = event({"type": "message_start", "message": message})
    start += event(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    )
    end = event({"type": "content_block_stop", "index": 0})
    end += event(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": n},
        }
    )
    end += event({"type": "message_stop"})
    return [start + delta(0), *(delta(i) for i in range(1, n)), end]


class _Stream:
    __slots__ = ("frames", "next", "proto")

    def __init__(self, proto: _Conn, frames: list[bytes]) -> None:
        self.proto = proto
        self.frames = frames
        self.next = 0


class Upstream:
    """Shared state: cached responses and the one pacing timer."""

    def __init__(self) -> None:
        self._burst: dict[tuple[bool, int], bytes] = {}
        self._paced: dict[tuple[bool, int], list[bytes]] = {}
        self._streams: list[_Stream] = []
        self._timer: asyncio.TimerHandle | None = None
        self._next_tick = 0.0
        self._skew = random.Random(1)

    def skew(self) -> float:
        """The delay of the next ``skewed`` answer."""
        return SKEW_SLOW_S if self._skew.random() < SKEW_SLOW_SHARE else SKEW_FAST_S

    @staticmethod
    def _events(anthropic: bool, n: int) -> list[bytes]:
        return anthropic_events(n) if anthropic else stream_events(n)

    def burst(self, n: int, anthropic: bool = False) -> bytes:
        data = self._burst.get((anthropic, n))
        if data is None:
            events = self._events(anthropic, n)
            data = _HEAD + b"".join(map(_frame, events)) + b"0\r\n\r\n"
            self._burst[anthropic, n] = data
        return data

    def start_paced(self, proto: _Conn, n: int, anthropic: bool = False) -> None:
        frames = self._paced.get((anthropic, n))
        if frames is None:
            events = self._events(anthropic, n)
            # What follows the last content chunk (OpenAI: finish, usage and [DONE];
            # Anthropic: content_block_stop, message_delta, message_stop) goes
            # together, 1 ms after it.
            frames = [_frame(e) for e in events[:n]] + [b"".join(map(_frame, events[n:]))]
            frames[0] = _HEAD + frames[0]
            frames[-1] += b"0\r\n\r\n"
            self._paced[anthropic, n] = frames
        proto.write(frames[0])
        stream = _Stream(proto, frames)
        stream.next = 1
        self._streams.append(stream)
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._next_tick = loop.time() + _TICK_S
            self._timer = loop.call_at(self._next_tick, self._tick)

    def _tick(self) -> None:
        alive: list[_Stream] = []
        for s in self._streams:
            if s.proto.closed:
                continue
            s.proto.write(s.frames[s.next])
            s.next += 1
            if s.next < len(s.frames):
                alive.append(s)
            else:
                s.proto.finished()
        self._streams = alive
        if not alive:
            self._timer = None
            return
        loop = asyncio.get_running_loop()
        # A fixed 1 ms grid; if the loop fell behind, tick again at once rather than
        # letting the error pile up.
        self._next_tick = max(self._next_tick + _TICK_S, loop.time())
        self._timer = loop.call_at(self._next_tick, self._tick)


class _Conn(asyncio.Protocol):
    """One keep-alive connection; requests are answered one after another."""

    def __init__(self, upstream: Upstream) -> None:
        self._up = upstream
        self._buf = b""
        self._busy = False
        self.closed = False
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True

    def write(self, data: bytes) -> None:
        if self._transport is not None and not self.closed:
            self._transport.write(data)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if not self._busy:
            self._serve()

    def _late(self, data: bytes) -> None:
        self.write(data)
        self.finished()

    def finished(self) -> None:
        self._busy = False
        if self._buf:
            self._serve()

    def _serve(self) -> None:
        while self._buf and not self._busy:
            request = self._take_request()
            if request is None:
                return
            method, path, body = request
            if method != b"POST":
                self.write(_OK)
                continue
            if path.endswith(b"/embeddings"):
                self.write(_EMBEDDING)
                continue
            m = _MODEL.search(body)
            if m is None:
                self.write(
                    b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
                    b"content-length: 62\r\n\r\n"
                    b'{"error":{"message":"model must be burst-N or paced-N","x":1}}'
                )
                continue
            n = max(int(m.group(2)), 1)
            anthropic = path.endswith(b"/messages")
            if m.group(1) == b"burst":
                self.write(self._up.burst(n, anthropic))
            elif m.group(1) == b"skewed":
                self._busy = True
                data = self._up.burst(n, anthropic)
                asyncio.get_running_loop().call_later(self._up.skew(), self._late, data)
            else:
                self._busy = True
                self._up.start_paced(self, n, anthropic)

    def _take_request(self) -> tuple[bytes, bytes, bytes] | None:
        """Split one complete request off the buffer: (method, path, body)."""
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = self._buf[:end].lower()
        method, path = self._buf[: self._buf.find(b"\r\n")].split(b" ", 2)[:2]
        path = path.split(b"?", 1)[0]
        start = end + 4
        m = re.search(rb"\r\ncontent-length:\s*(\d+)", head)
        if m is not None:
            stop = start + int(m.group(1))
            if len(self._buf) < stop:
                return None
            body, self._buf = self._buf[start:stop], self._buf[stop:]
            return method, path, body
        if b"\r\ntransfer-encoding: chunked" in head:
            return self._take_chunked(method, path, start)
        self._buf = self._buf[start:]
        return method, path, b""

    def _take_chunked(
        self, method: bytes, path: bytes, pos: int
    ) -> tuple[bytes, bytes, bytes] | None:
        parts: list[bytes] = []
        buf = self._buf
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(buf[pos:eol].split(b";")[0], 16)
            if size == 0:
                trailer_end = buf.find(b"\r\n\r\n", eol)
                if trailer_end < 0:
                    return None
                self._buf = buf[trailer_end + 4 :]
                return method, path, b"".join(parts)
            if len(buf) < eol + 2 + size + 2:
                return None
            parts.append(buf[eol + 2 : eol + 2 + size])
            pos = eol + 2 + size + 2


async def serve(host: str, port: int) -> None:
    upstream = Upstream()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Conn(upstream), host, port, backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"upstream: listening on http://{host}:{port}/v1 at {time.time():.0f}", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.host, args.port))
    else:
        uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
