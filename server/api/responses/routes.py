"""OpenAI's Responses API over the shared request flow: ``POST /v1/responses``, and the
stored responses (``GET`` and ``DELETE /v1/responses/{id}``, ``GET
/v1/responses/{id}/input_items``), each visible only to the key that made it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, Parameter

from router.errors import RequestError
from server.api._serve import Door, Serving, id_headers
from server.api.responses.request import prepare
from server.api.responses.wire import ResponsesWire
from server.store.responses import Kept

__all__ = ["RESPONSES_HANDLERS"]

_encode = msgspec.json.Encoder().encode
_responses = Door(ResponsesWire(), prepare)


class ResponseNotFound(RequestError):
    status = 404


@post("/v1/responses", status_code=200)
async def create_response(
    request: Request[Any, Any, Any], serving: NamedDependency[Serving]
) -> Response[Any]:
    return await _responses.serve(request, serving)


async def _kept(request: Request[Any, Any, Any], serving: Serving, response_id: str) -> Kept:
    key = serving.admission.authorize(request.headers.get("authorization"))
    kept = await serving.responses.get(response_id, key.id if key else None)
    if kept is None:
        raise ResponseNotFound(f"Response with id '{response_id}' not found.", param="response_id")
    return kept


def _json(request: Request[Any, Any, Any], body: Any) -> Response[bytes]:
    return Response(_encode(body), media_type="application/json", headers=id_headers(request))


@get("/v1/responses/{response_id:str}")
async def retrieve_response(
    request: Request[Any, Any, Any],
    serving: NamedDependency[Serving],
    response_id: FromPath[str],
) -> Response[bytes]:
    return _json(request, (await _kept(request, serving, response_id)).response)


@delete("/v1/responses/{response_id:str}", status_code=200)
async def delete_response(
    request: Request[Any, Any, Any],
    serving: NamedDependency[Serving],
    response_id: FromPath[str],
) -> Response[bytes]:
    key = serving.admission.authorize(request.headers.get("authorization"))
    if not await serving.responses.delete(response_id, key.id if key else None):
        raise ResponseNotFound(f"Response with id '{response_id}' not found.", param="response_id")
    return _json(request, {"id": response_id, "object": "response", "deleted": True})


@get("/v1/responses/{response_id:str}/input_items")
async def list_input_items(
    request: Request[Any, Any, Any],
    serving: NamedDependency[Serving],
    response_id: FromPath[str],
    order: FromQuery[Literal["asc", "desc"]] = "desc",
    limit: FromQuery[Annotated[int, Parameter(ge=1, le=100)]] = 20,
    after: FromQuery[str | None] = None,
) -> Response[bytes]:
    """A page of the input items, newest first unless ``order=asc``, as OpenAI lists them."""
    items = list((await _kept(request, serving, response_id)).input_items)
    if order == "desc":
        items.reverse()
    if after is not None:
        at = next((i for i, item in enumerate(items) if item.get("id") == after), None)
        items = items[at + 1 :] if at is not None else []
    page = items[:limit]
    body = {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }
    return _json(request, body)


RESPONSES_HANDLERS = [create_response, retrieve_response, delete_response, list_input_items]
