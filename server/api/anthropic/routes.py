"""The Anthropic-compatible API: ``POST /v1/messages``, over the same engine and routes.

Clients authenticate with ``x-api-key: <key>`` (what Anthropic's SDKs send) or
``Authorization: Bearer <key>``. Every error on this path, including the ones litestar
raises itself, answers in Anthropic's shape, so the SDK raises its usual exceptions: the
handler's own errors through its exception handlers, routing errors under the path
(404, 405) through the app's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.datastructures import Headers
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException

from router.collect import Answer
from router.errors import LLMGateError
from router.events import Event, Failed
from server.api._serve import Door, Serving, id_headers
from server.api.anthropic.message import message_body
from server.api.anthropic.request import decode_messages_request
from server.api.anthropic.tokens import estimate_input_tokens
from server.api.anthropic.translate import MessagesCall, parse_messages_request, provider_request
from server.api.anthropic.wire import EventEncoder, error_body, error_status, failure_body
from server.errors import retry_after_of

__all__ = ["MESSAGES_PATH", "MessagesWire", "count_tokens", "create_message", "http_error"]

log = logging.getLogger("llmgate")
_encode = msgspec.json.Encoder().encode
MESSAGES_PATH = "/v1/messages"
_INTERNAL = "Internal error in llmgate; see the server log."
REQUEST_ID = "request-id"
"""Anthropic's name for the request id header, which its SDKs read."""


class MessagesWire:
    """``/v1/messages`` as a `server.api._serve.Wire`."""

    door = "messages"
    id_prefix = "msg_"
    id_header: str | None = REQUEST_ID

    @staticmethod
    def credentials(headers: Headers) -> str | None:
        """The client key as a bearer credential, whichever header carried it."""
        key = headers.get("x-api-key")
        return f"Bearer {key}" if key is not None else headers.get("authorization")

    @staticmethod
    def parse(body: bytes) -> MessagesCall:
        return parse_messages_request(body)

    @staticmethod
    def encoder(call: MessagesCall, request_id: str) -> Callable[[list[Event]], bytes]:
        return EventEncoder(request_id, call.model).encode

    @staticmethod
    def collect(call: MessagesCall, request_id: str, answer: Answer) -> dict[str, Any]:
        return message_body(request_id, answer)

    @staticmethod
    def failure(failed: Failed) -> tuple[int, dict[str, Any]]:
        return failure_body(failed)

    @staticmethod
    def stream_error() -> bytes:
        return b"event: error\ndata: " + _encode(error_body(500, _INTERNAL)) + b"\n\n"


_messages = Door(MessagesWire())


def _json(
    request: Request[Any, Any, Any], body: Any, status: int, headers: Any = None
) -> Response[bytes]:
    return Response(
        _encode(body),
        status_code=status,
        media_type="application/json",
        headers={**(headers or {}), **id_headers(request, REQUEST_ID)},
    )


def _llmgate_error(request: Request[Any, Any, Any], exc: LLMGateError) -> Response[bytes]:
    status = error_status(exc)
    details = getattr(exc, "details", None)
    body = error_body(status, exc.message, details=details)
    return _json(request, body, status, retry_after_of(exc))


def http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    """Anthropic's shape for litestar's own errors (413, and 404/405 under this path)."""
    return _json(request, error_body(exc.status_code, exc.detail), exc.status_code, exc.headers)


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error serving %s", request.url.path, exc_info=exc)
    return _json(request, error_body(500, _INTERNAL), 500)


_HANDLERS = {LLMGateError: _llmgate_error, HTTPException: http_error, Exception: _unexpected}


@post(MESSAGES_PATH, status_code=200, exception_handlers=_HANDLERS)  # type: ignore[arg-type]
async def create_message(
    request: Request[Any, Any, Any], serving: NamedDependency[Serving]
) -> Response[Any]:
    return await _messages.serve(request, serving)


@post(f"{MESSAGES_PATH}/count_tokens", status_code=200, exception_handlers=_HANDLERS)  # type: ignore[arg-type]
async def count_tokens(
    request: Request[Any, Any, Any], serving: NamedDependency[Serving]
) -> Response[bytes]:
    """``{"input_tokens": N}``, estimated (see `server.api.anthropic.tokens`) for a model the
    key may use."""
    gateway, admission = serving.gateway, serving.admission
    key = admission.authorize(MessagesWire.credentials(request.headers))
    req = decode_messages_request(await request.body())
    # also: an unknown model is a 404, as for a message
    admission.allowed(key, gateway.table, req.model)
    gateway.table.resolve(req.model)
    tokens = estimate_input_tokens(provider_request(req))
    return _json(request, {"input_tokens": tokens}, 200)


ANTHROPIC_HANDLERS = [create_message, count_tokens]
