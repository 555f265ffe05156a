"""A cheap closed-loop load generator for streamed chat completions.

Each of ``concurrency`` keep-alive connections sends one request, reads the whole
chunked SSE answer and sends the next, until the phase's deadline. Raw asyncio
protocols keep the client's own cost per response to tens of microseconds, so the
thing being measured is the server, not the client.

It speaks one of three dialects: OpenAI chat completions (to the gateway, or to the fake
upstream directly), Anthropic Messages (to the fake upstream directly, the reference
for the gateway's Anthropic upstream) or OpenAI Responses (to the gateway's
``/v1/responses``). Per response it records:

- TTFT: from writing the request to receiving the first event with non-empty text
  (OpenAI ``delta.content``, Anthropic ``text_delta.text``, Responses
  ``response.output_text.delta``'s ``delta``);
- total: from writing the request to receiving the end of the chunked body;
- ok: status 200, the dialect's end event last (``data: [DONE]``; ``message_stop``;
  ``response.completed``) and exactly the expected number of content chunks
  (``"content":"tok``; ``"text":"tok``; ``"delta":"tok``) on the way.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "ANTHROPIC",
    "DIALECTS",
    "EMBEDDINGS",
    "OPENAI",
    "RESPONSES",
    "Dialect",
    "Phase",
    "Sample",
    "percentile",
    "request_bytes",
    "run_phase",
]

_TERMINATOR = b"\r\n0\r\n\r\n"
_REQUEST_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Dialect:
    """What the client sends and how it checks the streamed answer."""

    name: str
    path: str
    body: bytes  # with %s for the model
    content: bytes  # precedes a text delta's value; an empty value does not count for TTFT
    token: bytes  # one content chunk of the fake's answer: counted
    end: bytes  # the last event holds this
    auth: str  # header name: value, with {key}
    end_window: int = 48  # the last bytes the end marker is looked for in
    whole: int | None = None  # a JSON answer (not a stream) holding this many `token`s


OPENAI = Dialect(
    "openai",
    "/v1/chat/completions",
    b'{"model":"%s","messages":[{"role":"user","content":"Say fifty tokens."}],'
    b'"stream":true,"stream_options":{"include_usage":true}}',
    b'"content":"',
    b'"content":"tok',
    b"data: [DONE]",
    "authorization: Bearer {key}",
)
ANTHROPIC = Dialect(
    "anthropic",
    "/v1/messages",
    b'{"model":"%s","max_tokens":1024,'
    b'"messages":[{"role":"user","content":"Say fifty tokens."}],"stream":true}',
    b'"text":"',
    b'"text":"tok',
    b'data: {"type":"message_stop"}',
    "x-api-key: {key}\r\nanthropic-version: 2023-06-01",
)
RESPONSES = Dialect(
    "responses",
    "/v1/responses",
    b'{"model":"%s","input":"Say fifty tokens.","stream":true}',
    b'"delta":"',
    b'"delta":"tok',
    b'"type":"response.completed"',
    "authorization: Bearer {key}",
    end_window=16384,  # the final event carries the whole response and its record
)
EMBEDDINGS = Dialect(
    "embeddings",
    "/v1/embeddings",
    b'{"model":"%s","input":"Embed these few words."}',
    b'"embedding":[',
    b'"object":"embedding"',
    b"",
    "authorization: Bearer {key}",
    whole=1,
)
DIALECTS = {d.name: d for d in (OPENAI, ANTHROPIC, RESPONSES, EMBEDDINGS)}


@dataclass(slots=True)
class Sample:
    ttft: float
    total: float
    ok: bool


def request_bytes(
    host: str, port: int, model: str, key: str | None = None, dialect: Dialect = OPENAI
) -> bytes:
    body = dialect.body % model.encode()
    auth = dialect.auth.format(key=key) + "\r\n" if key else ""
    head = (
        f"POST {dialect.path} HTTP/1.1\r\nhost: {host}:{port}\r\n"
        f"content-type: application/json\r\naccept: text/event-stream\r\n{auth}"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection with at most one request in flight."""

    def __init__(self, expect_chunks: int, dialect: Dialect) -> None:
        self._expect = expect_chunks
        self._dialect = dialect
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[Sample] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError(f"connection lost: {exc!r}"))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def request(self, data: bytes) -> asyncio.Future[Sample]:
        assert self._transport is not None and (self._waiter is None or self._waiter.done())
        self._waiter = asyncio.get_running_loop().create_future()
        self._head = b""
        self._body = bytearray(b"\r\n")  # so that an empty chunked body also ends in _TERMINATOR
        self._length: int | None = None
        self._status = 0
        self._scan = 0
        self._ttft = 0.0
        self._start = time.perf_counter()
        self._transport.write(data)
        return self._waiter

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            return
        if self._status == 0:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                return
            head, data = self._head[:end].lower(), self._head[end + 4 :]
            self._status = int(head[9:12])
            if b"\r\ntransfer-encoding: chunked" not in head:
                i = head.find(b"\r\ncontent-length:")
                self._length = int(head[i + 17 :].split(b"\r\n")[0]) if i >= 0 else 0
        body = self._body
        before = len(body)
        body += data
        if not self._ttft:
            self._find_first_content()
        if self._length is not None:
            if len(body) - 2 >= self._length:
                whole = self._dialect.whole
                ok = (
                    whole is not None
                    and self._status == 200
                    and body.count(self._dialect.token) == whole
                )
                self._finish(ok)
        elif body.find(_TERMINATOR, max(before - 6, 0)) >= 0:
            ok = (
                self._status == 200
                and self._dialect.end in body[-self._dialect.end_window :]
                and body.count(self._dialect.token) == self._expect
            )
            self._finish(ok)

    def _find_first_content(self) -> None:
        body = self._body
        marker = self._dialect.content
        while True:
            i = body.find(marker, self._scan)
            if i < 0 or i + len(marker) >= len(body):
                self._scan = max(len(body) - len(marker), self._scan)
                return
            # '"': an empty delta (OpenAI's role chunk, Anthropic's content_block_start)
            if body[i + len(marker)] != 0x22:
                self._ttft = time.perf_counter() - self._start
                return
            self._scan = i + 1

    def _finish(self, ok: bool) -> None:
        total = time.perf_counter() - self._start
        assert self._waiter is not None
        self._waiter.set_result(Sample(self._ttft or total, total, ok))


@dataclass
class Phase:
    """What one timed phase produced."""

    samples: list[Sample] = field(default_factory=list)
    errors: int = 0
    elapsed: float = 0.0
    first_error: str = ""


async def _connect(host: str, port: int, expect: int, dialect: Dialect) -> _Conn:
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(lambda: _Conn(expect, dialect), host, port)
    return conn


async def _worker(
    conns: list[_Conn],
    slot: int,
    host: str,
    port: int,
    data: bytes,
    expect: int,
    dialect: Dialect,
    deadline: float,
    budget: list[int],
    phase: Phase,
) -> None:
    while time.perf_counter() < deadline and budget[0] > 0:
        budget[0] -= 1
        try:
            if conns[slot].closed:
                conns[slot] = await _connect(host, port, expect, dialect)
            sample = await asyncio.wait_for(conns[slot].request(data), _REQUEST_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            phase.errors += 1
            phase.first_error = phase.first_error or repr(exc)
            conns[slot].close()
            conns[slot].closed = True
            await asyncio.sleep(0.01)
            continue
        if sample.ok:
            phase.samples.append(sample)
        else:
            phase.errors += 1
            phase.first_error = (
                phase.first_error or "bad response (status, end event or chunk count)"
            )


async def run_phase(
    host: str,
    port: int,
    data: bytes,
    *,
    expect_chunks: int,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
    max_requests: int,
    dialect: Dialect = OPENAI,
    on_measure_start: Callable[[], None] | None = None,
    on_measure_end: Callable[[], None] | None = None,
) -> Phase:
    """Warm up, call ``on_measure_start()``, measure for ``duration_s``, then call
    ``on_measure_end()`` as the last response of the phase arrives.

    Every loop is bounded twice: by the deadline and by ``max_requests``; a request
    that takes longer than 30 s counts as an error."""
    conns = [await _connect(host, port, expect_chunks, dialect) for _ in range(concurrency)]
    try:
        warm = Phase()
        budget = [max_requests]
        end = time.perf_counter() + warmup_s
        await asyncio.gather(
            *(
                _worker(conns, i, host, port, data, expect_chunks, dialect, end, budget, warm)
                for i in range(concurrency)
            )
        )
        if on_measure_start is not None:
            on_measure_start()
        phase = Phase()
        budget = [max_requests]
        start = time.perf_counter()
        end = start + duration_s
        await asyncio.gather(
            *(
                _worker(conns, i, host, port, data, expect_chunks, dialect, end, budget, phase)
                for i in range(concurrency)
            )
        )
        phase.elapsed = time.perf_counter() - start
        if on_measure_end is not None:
            on_measure_end()
        phase.errors += warm.errors
        phase.first_error = phase.first_error or warm.first_error
        return phase
    finally:
        for c in conns:
            c.close()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile of unsorted values (0 for none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(math.ceil(q * len(ordered)) - 1, 0))]
