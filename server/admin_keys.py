"""Virtual API keys in the admin API: ``/admin/api/keys``.

| request | does |
|---|---|
| ``GET /admin/api/keys`` | every key (never a secret), revoked ones included |
| ``POST /admin/api/keys`` ``{"name", "routes"?}`` | create one; the answer holds its ``secret``, once |
| ``GET /admin/api/keys/{id or name}`` | one key |
| ``POST /admin/api/keys/{id or name}/rotate`` | a new secret (shown once); the old one stops working |
| ``POST /admin/api/keys/{id or name}/revoke`` | revoke it |

Each change is served by this process before the answer is sent, and by every other
process as soon as it hears of it (see `server.store.keys`).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, post

from router.errors import RequestError
from router.policy import Budget
from server.auth import ApiKey
from server.gateway import Gateway
from server.reload import Reloader
from server.store.keys import CreatedKey

__all__ = ["KEY_HANDLERS", "budget_report", "key_json"]

Req = Request[Any, Any, Any]


class NewKey(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    routes: list[str] | None = None
    budget: Budget | None = None


def key_json(key: ApiKey) -> dict[str, Any]:
    body: dict[str, Any] = msgspec.to_builtins(key)
    body["active"] = key.active
    return body


def _created(created: CreatedKey) -> dict[str, Any]:
    return {**key_json(created.key), "secret": created.secret}


def _reloader(request: Req) -> Reloader:
    from server.admin_api import _reloader as reloader  # one message for "no store"

    return reloader(request)


@get("/keys")
async def list_keys(request: Req) -> dict[str, Any]:
    keys = await _reloader(request).keys.list()
    return {"keys": [key_json(k) for k in keys]}


@post("/keys", status_code=201)
async def create_key(request: Req) -> Response[Any]:
    try:
        new = msgspec.json.decode(await request.body(), type=NewKey)
    except msgspec.ValidationError as exc:
        raise RequestError(f"Invalid key: {exc}") from None
    except msgspec.DecodeError as exc:
        raise RequestError(f"The body is not JSON: {exc}") from None
    reloader = _reloader(request)
    created = await reloader.keys.create(new.name, new.routes, new.budget)
    await reloader.reload_keys()
    return Response(_created(created), status_code=201)


@get("/keys/{ref:str}")
async def get_key(request: Req) -> dict[str, Any]:
    return key_json(await _reloader(request).keys.get(request.path_params["ref"]))


@post("/keys/{ref:str}/rotate", status_code=200)
async def rotate_key(request: Req) -> dict[str, Any]:
    reloader = _reloader(request)
    created = await reloader.keys.rotate(request.path_params["ref"])
    await reloader.reload_keys()
    return _created(created)


@post("/keys/{ref:str}/revoke", status_code=200)
async def revoke_key(request: Req) -> dict[str, Any]:
    reloader = _reloader(request)
    key = await reloader.keys.revoke(request.path_params["ref"])
    await reloader.reload_keys()
    return key_json(key)


@get("/budgets")
async def budgets(request: Req) -> dict[str, Any]:
    """Every budget of a route or a key, each limit with its use in its current window."""
    return {"budgets": await budget_report(request.app.state.gateway, _reloader(request))}


async def budget_report(gateway: Gateway, reloader: Reloader) -> list[dict[str, Any]]:
    """What `GET /admin/api/budgets` answers, for the dashboard too."""
    gate = gateway.budgets
    if gate is None:
        return []
    scopes = [
        (f"route:{name}", f"route {name!r}", route.policy.budget)
        for name, route in gateway.table.routes.items()
        if route.policy.budget is not None
    ]
    scopes += [
        (f"key:{key.id}", f"key {key.name!r}", key.budget)
        for key in await reloader.keys.list(include_revoked=False)
        if key.budget is not None
    ]
    return await gate.report(scopes)


KEY_HANDLERS = [list_keys, create_key, get_key, rotate_key, revoke_key, budgets]
