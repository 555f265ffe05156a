"""``POST /v1/embeddings``: the shared request flow over `EmbeddingsWire`."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.di import NamedDependency

from server.api._serve import Door, Serving
from server.api.embeddings.wire import EmbeddingsWire

__all__ = ["EMBEDDINGS_HANDLERS"]

_embeddings = Door(EmbeddingsWire())


@post("/v1/embeddings", status_code=200)
async def embeddings(
    request: Request[Any, Any, Any], serving: NamedDependency[Serving]
) -> Response[Any]:
    return await _embeddings.serve(request, serving)


EMBEDDINGS_HANDLERS = [embeddings]
