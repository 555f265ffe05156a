"""The OpenAI-compatible API: ``/v1/chat/completions`` and ``/v1/models``."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from router.errors import NoSuchModel
from router.table import RoutingTable
from server.api._serve import Door, Serving, id_headers
from server.api.openai.wire import ChatWire

__all__ = ["OPENAI_HANDLERS"]

_encode = msgspec.json.Encoder().encode
_chat = Door(ChatWire())


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response[bytes]:
    return Response(
        _encode(body), status_code=status, media_type="application/json", headers=headers
    )


@post("/v1/chat/completions", status_code=200)
async def chat_completions(
    request: Request[Any, Any, Any], serving: NamedDependency[Serving]
) -> Response[Any]:
    return await _chat.serve(request, serving)


@get("/v1/models")
async def list_models(
    request: Request[Any, Any, Any], serving: NamedDependency[Serving]
) -> Response[bytes]:
    key = serving.admission.authorize(request.headers.get("authorization"))
    table = serving.gateway.table
    ids = table.model_ids()
    if key is not None and key.routes is not None:  # only what this key may use
        ids = [model_id for model_id in ids if model_id in key.routes]
    data = [_model(table, model_id) for model_id in ids]
    return _json({"object": "list", "data": data}, headers=id_headers(request))


@get("/v1/models/{model_id:path}")
async def retrieve_model(
    request: Request[Any, Any, Any], serving: NamedDependency[Serving], model_id: FromPath[str]
) -> Response[bytes]:
    """One model any request may name: a route, or a target (its id holds a ``/``)."""
    key = serving.admission.authorize(request.headers.get("authorization"))
    model_id = model_id.lstrip("/")
    table = serving.gateway.table
    unknown = NoSuchModel(f"The model {model_id!r} does not exist.", param="model")
    try:
        route = table.resolve(model_id).name
    except NoSuchModel:
        raise unknown from None
    if key is not None and not key.allows(route):  # as in the list: not there for this key
        raise unknown
    return _json(_model(table, model_id), headers=id_headers(request))


def _model(table: RoutingTable, model_id: str) -> dict[str, Any]:
    """OpenAI's model object: a route is llmgate's, a target its provider's; its
    ``llmgate.doors`` say which endpoints serve it."""
    route = table.routes.get(model_id)
    owner = "llmgate" if route else table.resolve(model_id).targets[0].provider
    return {
        "id": model_id,
        "object": "model",
        "created": 0,
        "owned_by": owner,
        "llmgate": {"doors": table.doors(model_id)},
    }


OPENAI_HANDLERS = [chat_completions, list_models, retrieve_model]
