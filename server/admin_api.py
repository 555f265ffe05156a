"""The admin JSON API under ``/admin/api``: providers, routes and revisions of the
policy store, and a forced reload.

Thin handlers over `server.store.PolicyStore`. Every write is validated as a whole
configuration through the same msgspec policy types as the TOML file, and the revision
it makes is served by this process before the response is sent (`Reloader.wrote`);
other processes follow within a second (see `server.reload`).

- Auth (`server.admin_auth`): ``Authorization: Bearer <admin key>``, the key in the
  environment variable ``[server] admin_key_env`` names (``LLMGATE_ADMIN_KEY``). Client
  keys are refused; with no admin key set, every request is refused with 403.
- Writes take ``?dry_run=1`` (validate, show the changes, save nothing) and a revision
  the writer expects the configuration to be at (``If-Match: <revision>`` or
  ``?expected_revision=``): a stale one is a 409. Reads send the revision as ``ETag``.
- Errors have OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}``; an
  invalid policy is a 422 whose ``param`` is its key path (``routes.chat.max_retries``).
- Provider configurations hold the *name* of the environment variable with the key
  (``api_key_env``), never a key, so no secret is stored or returned.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response, Router, delete, get, post, put
from sqlalchemy.exc import SQLAlchemyError

from providers.config import ProviderConfig, convert
from router.errors import ConfigError, LLMGateError, RequestError
from server.admin_auth import admin_guard
from server.gateway import Gateway
from server.reload import Reloader
from server.store import NotFound, PolicyStore, WriteResult
from server.store.models import NAME_LENGTH
from server.store.schemas import canonical, snapshot

__all__ = ["ADMIN_PATH", "NoPolicyStore", "admin_router"]

ADMIN_PATH = "/admin/api"
log = logging.getLogger("llmgate.admin")
Req = Request[Any, Any, Any]


class NoPolicyStore(LLMGateError):
    """The gateway serves its configuration file, without a database to edit."""

    status = 503
    code = "no_policy_store"


class Write(msgspec.Struct, frozen=True):
    """What every write takes besides its subject."""

    actor: str
    expected_revision: int | None
    dry_run: bool


def _reloader(request: Req) -> Reloader:
    reloader: Reloader | None = request.app.state.reloader
    if reloader is None:
        raise NoPolicyStore(
            "This gateway serves its configuration file and has no policy store to edit; "
            "`llmgate serve` serves from the database."
        )
    return reloader


def _store(request: Req) -> PolicyStore:
    return _reloader(request).store


def _gateway(request: Req) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def _name(request: Req) -> str:
    name: str = request.path_params["name"]
    return name


def _write(request: Req) -> Write:
    """``?dry_run``, the expected revision (``If-Match`` or ``?expected_revision``) and
    the actor recorded with the revision (``admin``, or ``admin:<X-LLMGate-Actor>``)."""
    query, headers = request.query_params, request.headers
    expected = _number(query.get("expected_revision"), "expected_revision")
    if_match = headers.get("if-match")
    if if_match is not None and if_match.strip() != "*":
        from_header = _number(if_match.strip().removeprefix("W/").strip('"'), "If-Match")
        if expected is not None and expected != from_header:
            raise RequestError("If-Match and expected_revision disagree", param="If-Match")
        expected = from_header
    actor = (headers.get("x-llmgate-actor") or "").strip()
    who = f"admin:{actor}" if actor else "admin"
    return Write(who[:NAME_LENGTH], expected, _flag(query.get("dry_run"), "dry_run"))


def _number(value: str | None, param: str, low: int = 0, high: int = 2**63 - 1) -> int | None:
    """A revision (the ETag of a GET) or a count, from a query parameter or header."""
    if value is None:
        return None
    if not (value.isascii() and value.isdigit() and low <= int(value) <= high):
        raise RequestError(f"{param} must be a number from {low}, not {value!r}", param=param)
    return int(value)


def _flag(value: str | None, param: str) -> bool:
    if value is None:
        return False
    if value.lower() in ("", "1", "true", "yes", "on"):  # a bare ?dry_run counts
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise RequestError(f"{param} must be 1 or 0, not {value!r}", param=param)


async def _object(request: Req) -> dict[str, Any]:
    try:
        data = msgspec.json.decode(await request.body())
    except msgspec.DecodeError as exc:
        raise RequestError(f"The body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RequestError("The body must be a JSON object with the keys of the TOML table.")
    return data


def _etag(revision: int) -> dict[str, str]:
    return {"etag": f'"{revision}"'}


async def _written(
    request: Req,
    result: WriteResult,
    write: Write,
    item: tuple[str, str] | None = None,
) -> Response[Any]:
    await _reloader(request).wrote(result)
    body: dict[str, Any] = {
        "revision": result.revision,
        "written": result.written,
        "dry_run": write.dry_run,
        "summary": result.diff.summary(),
        "changes": result.diff.changes,
    }
    if item is not None:
        value = getattr(result.config, item[0]).get(item[1])
        if value is not None:
            body[item[0][:-1]] = canonical(value)  # as stored, defaults filled in
    return Response(body, headers=_etag(result.revision))


async def _one(request: Req, section: str) -> Response[Any]:
    name = _name(request)
    revision, config = await _store(request).load()
    value = getattr(config, section).get(name)
    if value is None:
        raise NotFound(f"no {section[:-1]} named {name!r}")
    return Response(canonical(value), headers=_etag(revision))


async def _all(request: Req, section: str) -> Response[Any]:
    revision, config = await _store(request).load()
    return Response(
        {"revision": revision, section: snapshot(config)[section]}, headers=_etag(revision)
    )


@get("/routes")
async def list_routes(request: Req) -> Response[Any]:
    return await _all(request, "routes")


@get("/routes/{name:str}")
async def get_route(request: Req) -> Response[Any]:
    return await _one(request, "routes")


@put("/routes/{name:str}")
async def put_route(request: Req) -> Response[Any]:
    name, data, write = _name(request), await _object(request), _write(request)
    result = await _store(request).put_route(name, data, **msgspec.structs.asdict(write))
    return await _written(request, result, write, ("routes", name))


@delete("/routes/{name:str}", status_code=200)
async def delete_route(request: Req) -> Response[Any]:
    name, write = _name(request), _write(request)
    result = await _store(request).delete_route(name, **msgspec.structs.asdict(write))
    return await _written(request, result, write)


@get("/providers")
async def list_providers(request: Req) -> Response[Any]:
    return await _all(request, "providers")


@get("/providers/{name:str}")
async def get_provider(request: Req) -> Response[Any]:
    return await _one(request, "providers")


@put("/providers/{name:str}")
async def put_provider(request: Req) -> Response[Any]:
    name, data, write = _name(request), await _object(request), _write(request)
    config = convert(data, ProviderConfig, "config", f"providers.{name}")
    _gateway(request).check_provider(name, config)
    result = await _store(request).put_provider(name, config, **msgspec.structs.asdict(write))
    return await _written(request, result, write, ("providers", name))


@delete("/providers/{name:str}", status_code=200)
async def delete_provider(request: Req) -> Response[Any]:
    name, write = _name(request), _write(request)
    result = await _store(request).delete_provider(name, **msgspec.structs.asdict(write))
    return await _written(request, result, write)


@get("/revisions")
async def list_revisions(request: Req) -> dict[str, Any]:
    limit = _number(request.query_params.get("limit"), "limit", 1, 1000)
    return {"revisions": await _store(request).revisions(50 if limit is None else limit)}


@get("/revisions/{revision:int}")
async def get_revision(request: Req) -> dict[str, Any]:
    revision: int = request.path_params["revision"]
    return {"id": revision, "config": snapshot(await _store(request).config_at(revision))}


@post("/revisions/{revision:int}/rollback", status_code=200)
async def rollback(request: Req) -> Response[Any]:
    revision: int = request.path_params["revision"]
    store, write = _store(request), _write(request)
    if write.dry_run:  # what the rollback would change: an apply of that revision's config
        result = await store.apply(
            await store.config_at(revision),
            prune=True,
            actor=write.actor,
            expected_revision=write.expected_revision,
            dry_run=True,
        )
    else:
        result = await store.rollback(
            revision, actor=write.actor, expected_revision=write.expected_revision
        )
    return await _written(request, result, write)


@post("/reload", status_code=200)
async def reload(request: Req) -> dict[str, int]:
    return {"revision": await _reloader(request).reload()}


def _invalid_policy(request: Req, exc: ConfigError) -> Response[Any]:
    """422 naming the key path: ``where`` is ``config: routes.chat.max_retries``."""
    _, sep, path = exc.where.partition(": ")
    error = {
        "message": str(exc).removeprefix("config: "),
        "type": "invalid_request_error",
        "param": path if sep else None,
        "code": "invalid_config",
    }
    return Response({"error": error}, status_code=422)


def _database_error(request: Req, exc: Exception) -> Response[Any]:
    log.warning("admin API: the policy store failed: %s: %s", type(exc).__name__, exc)
    error = {
        "message": f"The policy store is unavailable: {type(exc).__name__}; see the server log.",
        "type": "server_error",
        "param": None,
        "code": "database_error",
    }
    return Response({"error": error}, status_code=503)


def admin_router() -> Router:
    """The admin API, mounted at `ADMIN_PATH`."""
    from server.admin_keys import KEY_HANDLERS

    return Router(
        ADMIN_PATH,
        route_handlers=[
            list_routes,
            get_route,
            put_route,
            delete_route,
            list_providers,
            get_provider,
            put_provider,
            delete_provider,
            list_revisions,
            get_revision,
            rollback,
            reload,
            *KEY_HANDLERS,
        ],
        guards=[admin_guard],
        exception_handlers={
            ConfigError: _invalid_policy,
            SQLAlchemyError: _database_error,
            OSError: _database_error,
        },
    )
