"""The one request flow behind every door: authenticate, parse, check the route is
allowed, admit (budgets), run, hold back, then relay the stream or collect the answer.

A door is a `Wire`: how its requests are parsed and its answers and errors are spelled
(OpenAI chat completions and embeddings, Anthropic Messages). Everything a client can rely on whatever
door it uses is written here once:

- ``x-llmgate-request-id`` and ``x-request-id`` on every response (`id_headers`);
- ``x-llmgate-downgraded-to`` when a spent budget sent the request to a cheaper route;
- ``x-llmgate-attempts``, the attempt summary, once the outcome is known;
- a failure before any content is an HTTP error, never a stream;
- a final failure tells the client not to retry what llmgate already retried
  (`final_headers`);
- the reset marker only for a client that asked for it (``x-llmgate-accept-reset``);
- a client that retries on the status alone gets a final failure replayed rather than
  the route run again (`server.core.retry_guard`).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

import msgspec
from litestar import Request, Response
from litestar.datastructures import Headers
from litestar.response import Stream

from router.collect import Answer, fold
from router.errors import LLMGateError, ProviderError
from router.events import (
    Event,
    Failed,
    RequestRecord,
)
from router.provider import EmbedRequest, ProviderRequest
from server.api._stream import SSE_HEADERS, hold_back, relay
from server.core.admission import Admission
from server.core.gateway import Gateway
from server.core.retry_guard import REPLAYED, Remembered, RetryGuard
from server.store.responses import ResponseKeeper

__all__ = [
    "Call",
    "Door",
    "Serving",
    "Wire",
    "accepts_reset",
    "answered_model",
    "describe_failure",
    "final_headers",
    "id_headers",
    "record_summary",
    "session_of",
]

log = logging.getLogger("llmgate")
_encode = msgspec.json.Encoder().encode
ACCEPT_RESET = "x-llmgate-accept-reset"


class Call(Protocol):
    """A parsed request, whatever door it came through."""

    @property
    def model(self) -> str: ...
    @property
    def request(self) -> ProviderRequest | EmbedRequest: ...
    @property
    def stream(self) -> bool: ...
    @property
    def session(self) -> str | None:
        """The session the body names (OpenAI's ``user``, Anthropic's
        ``metadata.user_id``), for affinity."""


C = TypeVar("C", bound=Call)


class Wire(Protocol[C]):
    """One door's wire format."""

    door: str
    """The endpoint's name in records, logs and metrics (``chat.completions``)."""
    id_prefix: str
    """Of the request id, which is also the response's ``id`` (``chatcmpl-``, ``msg_``)."""
    id_header: str | None
    """The door's own name for the request id header, if not ``x-request-id``."""

    def credentials(self, headers: Headers) -> str | None:
        """The client key as an ``Authorization`` value (``Bearer <key>``)."""

    def parse(self, body: bytes) -> C:
        """The request; raises `router.errors.RequestError` naming the bad field."""

    def encoder(self, call: C, request_id: str) -> Callable[[list[Event]], bytes]:
        """Turns one request's event batches into the bytes of its stream."""

    def collect(self, call: C, request_id: str, answer: Answer) -> dict[str, Any]:
        """The body of a whole answer (its text, tool calls, reasoning and `Done`)."""

    def failure(self, failed: Failed) -> tuple[int, dict[str, Any]]:
        """Status and error body for a request that could not be completed."""

    def stream_error(self) -> bytes:
        """The in-band error that ends a stream broken by a bug of llmgate's."""


def accepts_reset(headers: Headers) -> bool:
    """Whether the client discards what it showed on llmgate's reset marker."""
    return headers.get(ACCEPT_RESET, "").strip().lower() in ("1", "true", "yes")


def id_headers(request: Request[Any, Any, Any], also: str | None = None) -> dict[str, str]:
    """The request id headers of any response to ``request``: the id the flow gave it,
    or a new one for a request refused before it got that far; ``also`` names one more
    header to carry it."""
    request_id = request.state.get("llmgate_request_id")
    if request_id is None:
        request_id = request.state["llmgate_request_id"] = "req_" + os.urandom(12).hex()
    headers = {"x-llmgate-request-id": request_id, "x-request-id": request_id}
    if also is not None:
        headers[also] = request_id
    return headers


SESSION_HEADERS = ("x-llmgate-session", "x-claude-code-session-id", "session_id")
"""Where a session's name may come from besides the body, in order of precedence after
llmgate's own header: the body's ``user`` (OpenAI) or ``metadata.user_id`` (Anthropic),
then the headers coding agents send on every request of a session (Claude Code's
``x-claude-code-session-id``, Codex's ``session_id``)."""


def session_of(headers: Headers, call: Call, client: str) -> str | None:
    """The session a request belongs to, scoped to the client's key (two clients'
    sessions of the same name are not one), or None."""
    name = headers.get(SESSION_HEADERS[0]) or call.session
    for header in SESSION_HEADERS[1:]:
        name = name or headers.get(header)
    return f"{client}\0{name}" if name else None


def answered_model(target: str) -> str:
    """The model a target names (``up/healthy`` -> ``healthy``): what responses report."""
    return target.partition("/")[2] or target


@dataclass(frozen=True, slots=True)
class Serving:
    """What a door serves with, provided to its handlers as one dependency (``serving``):
    litestar resolves several dependencies of one handler as concurrent tasks, which
    cost about 250 µs a request for three, against 35 µs for one."""

    gateway: Gateway
    admission: Admission
    retry_guard: RetryGuard
    responses: ResponseKeeper


Prepare = Callable[[C, Serving, str | None], Awaitable[C]]
"""A door's own step between parsing a request and running it, given the client's key
id: the Responses door rebuilds a follow-up's conversation from its stored one."""


class Door(Generic[C]):
    """The flow over one `Wire`: ``await door.serve(request, serving)`` is a whole handler."""

    __slots__ = ("prepare", "wire")

    def __init__(self, wire: Wire[C], prepare: Prepare[C] | None = None) -> None:
        self.wire = wire
        self.prepare = prepare

    async def serve(
        self,
        request: Request[Any, Any, Any],
        serving: Serving,
    ) -> Response[Any]:
        gateway, admission, guard = serving.gateway, serving.admission, serving.retry_guard
        wire = self.wire
        request_id = wire.id_prefix + os.urandom(12).hex()
        request.state["llmgate_request_id"] = request_id  # errors raised below name it too
        key = admission.authorize(wire.credentials(request.headers))
        body = await request.body()
        retry_of = guard.fingerprint(
            request.headers.get("user-agent"), key.id if key else "", request.url.path, body
        )
        if retry_of is not None and (replay := guard.recall(retry_of)) is not None:
            return _replay(replay)
        call = wire.parse(body)
        if self.prepare is not None:
            call = await self.prepare(call, serving, key.id if key else None)
        table = gateway.table
        if isinstance(call.request, EmbedRequest):  # refused before a budget counts it
            table.resolve_embeddings(call.model)
        admission.allowed(key, table, call.model)
        model = await admission.admit(key, table, call.model, request_id)
        events = gateway.run(
            model,
            call.request,
            request_id,
            key.id if key else None,
            # A whole answer is folded with any draft a reset discards already gone.
            accept_reset=not call.stream or accepts_reset(request.headers),
            session=session_of(request.headers, call, key.id if key else ""),
            door=wire.door,
        )
        headers = id_headers(request, wire.id_header)
        if model != call.model:  # the route's budget is spent: a cheaper route answers
            headers["x-llmgate-downgraded-to"] = model
        if not call.stream:
            answer = fold([batch async for batch in events])
            if isinstance(answer, Failed):
                return self._failure(answer, headers, guard, retry_of)
            headers["x-llmgate-attempts"] = record_summary(answer.done.record)
            return _json(wire.collect(call, request_id, answer), 200, headers)
        held, failed = await hold_back(events)
        if failed is not None:
            return self._failure(failed, headers, guard, retry_of)
        return Stream(
            relay(wire.encoder(call, request_id), held, events, wire.stream_error),
            media_type="text/event-stream",
            headers={**SSE_HEADERS, **headers},
        )

    def _failure(
        self,
        failed: Failed,
        headers: dict[str, str],
        guard: RetryGuard,
        retry_of: bytes | None,
    ) -> Response[bytes]:
        status, body = self.wire.failure(failed)
        headers["x-llmgate-attempts"] = record_summary(failed.record)
        headers.update(final_headers(failed))
        content = _encode(body)
        if retry_of is not None:
            guard.remember(retry_of, status, content, headers, failed.retry_after)
        return Response(content, status_code=status, media_type="application/json", headers=headers)


def _replay(remembered: Remembered) -> Response[bytes]:
    """A final failure again, for a client's own retry of the request (`server.core.retry_guard`)."""
    return Response(
        remembered.body,
        status_code=remembered.status,
        media_type="application/json",
        headers={**remembered.headers, REPLAYED: "replayed"},
    )


def final_headers(failed: Failed) -> dict[str, str]:
    """What makes a client's SDK stop: llmgate already made every attempt its policy
    allows, so retrying the request would only run the whole route again. The openai and
    anthropic SDKs obey ``x-should-retry``; ``retry-after`` (whole seconds, rounded up)
    and ``retry-after-ms`` pass on when the deciding failure said to come back."""
    headers = {"x-should-retry": "false"}
    wait = failed.retry_after
    if wait is not None and math.isfinite(wait) and wait > 0:
        headers["retry-after"] = str(math.ceil(wait))
        headers["retry-after-ms"] = str(math.ceil(wait * 1000))
    return headers


def describe_failure(event: Failed) -> tuple[LLMGateError, str]:
    """The client-facing error (the engine's choice) and a message naming every failure."""
    error = event.error
    if not isinstance(error, LLMGateError):
        error = ProviderError(repr(error))
    message = str(error)
    if len(event.errors) > 1:
        tried = "; ".join(f"[{target}] {err}" for target, err in event.errors)
        message = f"{message} (every attempt failed: {tried})"
    if event.partial:
        message = f"The answer was cut off and could not be completed: {message}"
    return error, message


def record_summary(record: RequestRecord) -> str:
    """Compact attempt summary for a response header: ``target:outcome[:reason],...``."""
    parts = []
    for a in record.attempts:
        parts.append(f"{a.target}:{a.outcome}" + (f":{a.error_type}" if a.error_type else ""))
    # Targets may name client-chosen models; a header must stay ASCII.
    return ",".join(parts).encode("ascii", "backslashreplace").decode()


def _json(body: Any, status: int, headers: dict[str, str]) -> Response[bytes]:
    return Response(
        _encode(body), status_code=status, media_type="application/json", headers=headers
    )
