"""``POST /v1/responses``: OpenAI's Responses API over the shared request flow."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.di import NamedDependency

from server.api._serve import Door, Serving
from server.api.responses.wire import ResponsesWire

__all__ = ["RESPONSES_HANDLERS"]

_responses = Door(ResponsesWire())


@post("/v1/responses", status_code=200)
async def create_response(
    request: Request[Any, Any, Any], serving: NamedDependency[Serving]
) -> Response[Any]:
    return await _responses.serve(request, serving)


RESPONSES_HANDLERS = [create_response]
