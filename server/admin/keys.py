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
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath

from router.errors import RequestError
from router.policy import Budget
from server.core.keys import ApiKey
from server.core.reload import Reloader
from server.store.keys import CreatedKey, KeyStore

__all__ = ["KEY_HANDLERS", "key_json"]

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


async def _new_key(request: Req) -> NewKey:
    try:
        return msgspec.json.decode(await request.body(), type=NewKey)
    except msgspec.ValidationError as exc:
        raise RequestError(f"Invalid key: {exc}") from None
    except msgspec.DecodeError as exc:
        raise RequestError(f"The body is not JSON: {exc}") from None


@get("/keys")
async def list_keys(keys: NamedDependency[KeyStore]) -> dict[str, Any]:
    return {"keys": [key_json(k) for k in await keys.list()]}


@post("/keys", status_code=201, dependencies={"new": Provide(_new_key)})
async def create_key(
    reloader: NamedDependency[Reloader], new: NamedDependency[NewKey]
) -> Response[Any]:
    created = await reloader.keys.create(new.name, new.routes, new.budget)
    await reloader.reload_keys()
    return Response(_created(created), status_code=201)


@get("/keys/{ref:str}")
async def get_key(keys: NamedDependency[KeyStore], ref: FromPath[str]) -> dict[str, Any]:
    return key_json(await keys.get(ref))


@post("/keys/{ref:str}/rotate", status_code=200)
async def rotate_key(reloader: NamedDependency[Reloader], ref: FromPath[str]) -> dict[str, Any]:
    created = await reloader.keys.rotate(ref)
    await reloader.reload_keys()
    return _created(created)


@post("/keys/{ref:str}/revoke", status_code=200)
async def revoke_key(reloader: NamedDependency[Reloader], ref: FromPath[str]) -> dict[str, Any]:
    key = await reloader.keys.revoke(ref)
    await reloader.reload_keys()
    return key_json(key)


KEY_HANDLERS = [list_keys, create_key, get_key, rotate_key, revoke_key]
