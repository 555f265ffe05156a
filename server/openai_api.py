"""The OpenAI-compatible API: ``/v1/chat/completions``, ``/v1/models``, ``/healthz``."""

from __future__ import annotations

import os
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.response import Stream

from router.provider import ProviderRequest
from server.gateway import ACCEPT_RESET, Gateway, accepts_reset, hold_back, relay
from server.openai_wire import (
    INTERNAL_ERROR,
    ChunkEncoder,
    collect_response,
    describe_failure,
    error_body,
    record_summary,
)
from server.schemas import parse_chat_request

__all__ = ["chat_completions", "healthz", "list_models", "metrics"]

_encode = msgspec.json.Encoder().encode
_SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


def _gateway(request: Request[Any, Any, Any]) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(
        _encode(body), status_code=status, media_type="application/json", headers=headers
    )


@post("/v1/chat/completions", status_code=200)
async def chat_completions(request: Request[Any, Any, Any]) -> Response[Any]:
    gateway = _gateway(request)
    key = gateway.authorize(request.headers.get("authorization"))
    call = parse_chat_request(await request.body())
    gateway.allowed(key, call.model)
    request_id = "chatcmpl-" + os.urandom(12).hex()
    model = await gateway.admit(key, call.model, request_id)
    events = gateway.run(
        model,
        ProviderRequest(call.messages, call.params),
        request_id,
        key.id if key else None,
        # Nothing was shown of an answer that comes back whole: a restart may reset freely.
        accept_reset=not call.stream or accepts_reset(request.headers.get(ACCEPT_RESET)),
    )
    headers = {"x-llmgate-request-id": request_id}
    if model != call.model:  # the route's budget is spent: a cheaper route answers
        headers["x-llmgate-downgraded-to"] = model
    if not call.stream:
        status, body, record = collect_response(request_id, [batch async for batch in events])
        headers["x-llmgate-attempts"] = record_summary(record)
        return _json(body, status, headers)
    held, failed = await hold_back(events)
    if failed is not None:
        error, message = describe_failure(failed)
        headers["x-llmgate-attempts"] = record_summary(failed.record)
        return _json(error_body(error, failed.record, message), error.status, headers)
    encoder = ChunkEncoder(request_id, call.model, call.include_usage)
    return Stream(
        relay(encoder.encode, held, events, _stream_error),
        media_type="text/event-stream",
        headers={**_SSE_HEADERS, **headers},
    )


def _stream_error() -> bytes:
    return b"data: " + _encode(INTERNAL_ERROR) + b"\n\n"


@get("/v1/models")
async def list_models(request: Request[Any, Any, Any]) -> Response[bytes]:
    gateway = _gateway(request)
    key = gateway.authorize(request.headers.get("authorization"))
    table = gateway.table
    ids = table.model_ids()
    if key is not None and key.routes is not None:  # only what this key may use
        ids = [model_id for model_id in ids if model_id in key.routes]
    data = [
        {
            "id": model_id,
            "object": "model",
            "created": 0,
            "owned_by": "llmgate" if model_id in table.routes else model_id.partition("/")[0],
        }
        for model_id in ids
    ]
    return _json({"object": "list", "data": data})


@get("/metrics")
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Prometheus text format: requests, attempts, fallbacks, switches, latencies."""
    body, content_type = request.app.state.metrics.render()
    return Response(body, media_type=content_type)


@get("/healthz")
async def healthz(request: Request[Any, Any, Any]) -> Response[bytes]:
    gateway = _gateway(request)
    return _json(
        {
            "status": "ok",
            "revision": gateway.table.revision,
            "breakers": gateway.engine.breaker_states(),
        }
    )
