"""The Anthropic-compatible API: ``POST /v1/messages``, over the same engine and routes.

Clients authenticate with ``x-api-key: <key>`` (what Anthropic's SDKs send) or
``Authorization: Bearer <key>``. Every error on this path, including the ones litestar
raises itself, answers in Anthropic's shape, so the SDK raises its usual exceptions: the
handler's own errors through its exception handlers, routing errors under the path
(404, 405) through the app's.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.datastructures import Headers
from litestar.exceptions import HTTPException
from litestar.response import Stream

from router.errors import LLMGateError
from server.anthropic_schemas import parse_messages_request
from server.anthropic_wire import (
    EventEncoder,
    collect_message,
    error_body,
    error_status,
    failure_body,
)
from server.gateway import ACCEPT_RESET, Gateway, accepts_reset, hold_back, relay
from server.openai_wire import record_summary

__all__ = ["MESSAGES_PATH", "create_message", "http_error"]

log = logging.getLogger("llmgate")
_encode = msgspec.json.Encoder().encode
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
MESSAGES_PATH = "/v1/messages"


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(
        _encode(body), status_code=status, media_type="application/json", headers=headers
    )


def _credentials(headers: Headers) -> str | None:
    """The client key as a bearer credential, whichever header carried it."""
    key = headers.get("x-api-key")
    return f"Bearer {key}" if key is not None else headers.get("authorization")


def _llmgate_error(request: Request[Any, Any, Any], exc: LLMGateError) -> Response[bytes]:
    status = error_status(exc)
    return _json(error_body(status, exc.message), status, getattr(exc, "headers", None))


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    """Anthropic's shape for litestar's own errors (413, and 404/405 under this path)."""
    return _json(error_body(exc.status_code, exc.detail), exc.status_code, exc.headers)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error serving %s", request.url.path, exc_info=exc)
    return _json(error_body(500, "Internal error in llmgate; see the server log."), 500)


@post(
    MESSAGES_PATH,
    status_code=200,
    exception_handlers={
        LLMGateError: _llmgate_error,
        HTTPException: http_error,
        Exception: _unexpected,
    },
)
async def create_message(request: Request[Any, Any, Any]) -> Response[Any]:
    gateway: Gateway = request.app.state.gateway
    key = gateway.authorize(_credentials(request.headers))
    call = parse_messages_request(await request.body())
    gateway.allowed(key, call.model)
    message_id = "msg_" + os.urandom(12).hex()
    model = await gateway.admit(key, call.model, message_id)
    events = gateway.run(
        model,
        call.request,
        message_id,
        key.id if key else None,
        # Nothing was shown of an answer that comes back whole: a restart may reset freely.
        accept_reset=not call.stream or accepts_reset(request.headers.get(ACCEPT_RESET)),
    )
    headers = {"x-llmgate-request-id": message_id}
    if not call.stream:
        status, body, record = collect_message(message_id, [batch async for batch in events])
        headers["x-llmgate-attempts"] = record_summary(record)
        return _json(body, status, headers)
    held, failed = await hold_back(events)
    if failed is not None:
        status, body = failure_body(failed)
        headers["x-llmgate-attempts"] = record_summary(failed.record)
        return _json(body, status, headers)
    return Stream(
        relay(EventEncoder(message_id, call.model).encode, held, events, _stream_error),
        media_type="text/event-stream",
        headers={**_SSE_HEADERS, **headers},
    )


def _stream_error() -> bytes:
    body = error_body(500, "Internal error in llmgate; see the server log.")
    return b"event: error\ndata: " + _encode(body) + b"\n\n"
