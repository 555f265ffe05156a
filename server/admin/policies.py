"""The admin API's policies: providers, routes and revisions of the policy store, and
a forced reload.

Thin handlers over `server.store.PolicyStore`. Every write is validated as a whole
configuration through the same msgspec policy types as the TOML file, and the revision
it makes is served by this process before the response is sent (`Reloader.wrote`);
other processes follow within a second (see `server.core.reload`).

- Auth (`server.admin.guard`): ``Authorization: Bearer <admin key>``, the key in the
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
from litestar import Request, Response, delete, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery

from providers.config import ProviderConfig, convert
from router.errors import ConfigError, RequestError
from server.core.gateway import Gateway
from server.core.reload import Reloader
from server.errors import NotFound
from server.store import PolicyStore, WriteResult
from server.store.models import NAME_LENGTH
from server.store.schemas import canonical, snapshot

__all__ = ["POLICY_DEPENDENCIES", "POLICY_HANDLERS", "database_error", "invalid_policy"]

log = logging.getLogger("llmgate.admin")
Req = Request[Any, Any, Any]


class Write(msgspec.Struct, frozen=True):
    """What every write takes besides its subject."""

    actor: str
    expected_revision: int | None
    dry_run: bool


def _write(request: Req) -> Write:
    """``?dry_run``, the expected revision (``If-Match`` or ``?expected_revision``) and
    the actor recorded with the revision: the admin key (the only identity the admin API
    knows), and what an ``X-LLMGate-Actor`` header claims, as a claim."""
    query, headers = request.query_params, request.headers
    expected = _number(query.get("expected_revision"), "expected_revision")
    if_match = headers.get("if-match")
    if if_match is not None and if_match.strip() != "*":
        from_header = _number(if_match.strip().removeprefix("W/").strip('"'), "If-Match")
        if expected is not None and expected != from_header:
            raise RequestError("If-Match and expected_revision disagree", param="If-Match")
        expected = from_header
    actor = (headers.get("x-llmgate-actor") or "").strip()
    who = f"admin key (claims {actor})" if actor else "admin key"
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


def _etag(revision: FromPath[int]) -> dict[str, str]:
    return {"etag": f'"{revision}"'}


async def _written(
    reloader: Reloader, result: WriteResult, write: Write, item: tuple[str, str] | None = None
) -> Response[Any]:
    await reloader.wrote(result)
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


async def _one(store: PolicyStore, section: str, name: FromPath[str]) -> Response[Any]:
    revision, config = await store.load()
    value = getattr(config, section).get(name)
    if value is None:
        raise NotFound(f"no {section[:-1]} named {name!r}")
    return Response(canonical(value), headers=_etag(revision))


async def _all(store: PolicyStore, section: str) -> Response[Any]:
    revision, config = await store.load()
    return Response(
        {"revision": revision, section: snapshot(config)[section]}, headers=_etag(revision)
    )


Body = dict[str, Any]


@get("/routes")
async def list_routes(store: NamedDependency[PolicyStore]) -> Response[Any]:
    return await _all(store, "routes")


@get("/routes/{name:str}")
async def get_route(store: NamedDependency[PolicyStore], name: FromPath[str]) -> Response[Any]:
    return await _one(store, "routes", name)


@put("/routes/{name:str}")
async def put_route(
    reloader: NamedDependency[Reloader],
    name: FromPath[str],
    payload: NamedDependency[Body],
    write: NamedDependency[Write],
) -> Response[Any]:
    result = await reloader.store.put_route(name, payload, **msgspec.structs.asdict(write))
    return await _written(reloader, result, write, ("routes", name))


@delete("/routes/{name:str}", status_code=200)
async def delete_route(
    reloader: NamedDependency[Reloader], name: FromPath[str], write: NamedDependency[Write]
) -> Response[Any]:
    result = await reloader.store.delete_route(name, **msgspec.structs.asdict(write))
    return await _written(reloader, result, write)


@get("/providers")
async def list_providers(store: NamedDependency[PolicyStore]) -> Response[Any]:
    return await _all(store, "providers")


@get("/providers/{name:str}")
async def get_provider(store: NamedDependency[PolicyStore], name: FromPath[str]) -> Response[Any]:
    return await _one(store, "providers", name)


@put("/providers/{name:str}")
async def put_provider(
    reloader: NamedDependency[Reloader],
    gateway: NamedDependency[Gateway],
    name: FromPath[str],
    payload: NamedDependency[Body],
    write: NamedDependency[Write],
) -> Response[Any]:
    config = convert(payload, ProviderConfig, "config", f"providers.{name}")
    gateway.check_provider(name, config)
    result = await reloader.store.put_provider(name, config, **msgspec.structs.asdict(write))
    return await _written(reloader, result, write, ("providers", name))


@delete("/providers/{name:str}", status_code=200)
async def delete_provider(
    reloader: NamedDependency[Reloader], name: FromPath[str], write: NamedDependency[Write]
) -> Response[Any]:
    result = await reloader.store.delete_provider(name, **msgspec.structs.asdict(write))
    return await _written(reloader, result, write)


@get("/revisions")
async def list_revisions(
    store: NamedDependency[PolicyStore], limit: FromQuery[str | None] = None
) -> dict[str, Any]:
    count = _number(limit, "limit", 1, 1000)
    return {"revisions": await store.revisions(50 if count is None else count)}


@get("/revisions/{revision:int}")
async def get_revision(
    store: NamedDependency[PolicyStore], revision: FromPath[int]
) -> dict[str, Any]:
    return {"id": revision, "config": snapshot(await store.config_at(revision))}


@post("/revisions/{revision:int}/rollback", status_code=200)
async def rollback(
    reloader: NamedDependency[Reloader], revision: FromPath[int], write: NamedDependency[Write]
) -> Response[Any]:
    store = reloader.store
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
    return await _written(reloader, result, write)


@post("/reload", status_code=200)
async def reload(reloader: NamedDependency[Reloader]) -> dict[str, int]:
    return {"revision": await reloader.reload()}


def invalid_policy(request: Req, exc: ConfigError) -> Response[Any]:
    """422 naming the key path (``routes.chat.max_retries``) as the ``param``."""
    error = {
        "message": str(exc).removeprefix("config: "),
        "type": exc.type,
        "param": exc.path or None,
        "code": exc.code,
    }
    return Response({"error": error}, status_code=422)


def database_error(request: Req, exc: Exception) -> Response[Any]:
    log.warning("admin API: the policy store failed: %s: %s", type(exc).__name__, exc)
    error = {
        "message": f"The policy store is unavailable: {type(exc).__name__}; see the server log.",
        "type": "server_error",
        "param": None,
        "code": "database_error",
    }
    return Response({"error": error}, status_code=503)


POLICY_HANDLERS = [
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
]
POLICY_DEPENDENCIES = {
    "write": Provide(_write, sync_to_thread=False),
    "payload": Provide(_object),
}
