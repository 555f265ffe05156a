"""``llmgate db ...``, ``llmgate config ...`` and ``llmgate revisions``.

Each returns the process exit code; errors are raised as `LLMGateError`s, which the
CLI prints and turns into exit code 2.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import msgspec
from alembic.util import CommandError
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from providers.config import ServerSettings, load_config
from router.errors import ConfigError, LLMGateError
from router.policy import Budget
from server.core.keys import ApiKey
from server.errors import DatabaseError, NotFound
from server.store.database import create_engine, display_url
from server.store.diff import diff_configs
from server.store.export import to_toml
from server.store.keys import KeyStore
from server.store.migration import check_schema, downgrade, head_revision, upgrade
from server.store.service import PolicyStore

__all__ = ["apply", "db_downgrade", "db_upgrade", "export", "keys", "plan", "revisions", "run"]

T = TypeVar("T")


def run(command: Coroutine[Any, Any, T]) -> T:
    """Run an async command; database failures become a `DatabaseError`."""
    try:
        return asyncio.run(command)
    except (SQLAlchemyError, OSError) as exc:
        raise DatabaseError(f"database error: {_detail(exc)}") from None


def db_upgrade(url: str, revision: str) -> int:
    _migrate(upgrade, url, revision)
    target = head_revision() if revision == "head" else revision
    print(f"{display_url(url)}: schema at {target}")
    return 0


def db_downgrade(url: str, revision: str) -> int:
    _migrate(downgrade, url, revision)
    print(f"{display_url(url)}: schema at {revision}")
    return 0


def _migrate(step: Callable[[str, str], None], url: str, revision: str) -> None:
    try:
        step(url, revision)
    except CommandError as exc:  # e.g. an unknown revision
        raise NotFound(f"migrations: {exc}") from None
    except (SQLAlchemyError, OSError) as exc:
        raise DatabaseError(f"database error: {_detail(exc)}") from None


def _detail(exc: Exception) -> str:
    detail = exc.orig if isinstance(exc, DBAPIError) else exc
    return f"{type(detail).__name__}: {detail}"


@asynccontextmanager
async def _store(url: str) -> AsyncIterator[PolicyStore]:
    engine = create_engine(url)
    try:
        await check_schema(engine)
        yield PolicyStore(engine)
    finally:
        await engine.dispose()


async def plan(url: str, file: str, *, prune: bool) -> int:
    """What ``config apply FILE`` would change, field by field."""
    config = load_config(file)
    async with _store(url) as store:
        revision, current = await store.load()
        await store.apply(config, prune=prune, actor="plan", dry_run=True)  # validates
    print(f"{file} against revision {revision} of {display_url(url)}:")
    for line in diff_configs(current, config).render(prune=prune):
        print(line)
    if config.server != ServerSettings():
        print(
            "note: [server] holds process settings, read by `llmgate serve --config`; "
            "they are not stored in the database"
        )
    return 0


async def apply(url: str, file: str, *, prune: bool, actor: str) -> int:
    """Apply FILE as one new revision; nothing changes when nothing differs."""
    config = load_config(file)
    async with _store(url) as store:
        result = await store.apply(config, prune=prune, actor=actor, label=f"apply {file}")
    if result.written:
        print(f"applied {file} as revision {result.revision}: {result.diff.summary()}")
    else:
        print(f"no changes: the database stays at revision {result.revision}")
    return 0


async def drift(url: str, file: str, *, apply: bool) -> int:
    """At ``serve``: what differs between ``file`` and the database's revision, said on
    standard error with the command that applies it; with ``apply``, the file applied
    (pruned: the file is the source of truth) as one revision when it differs. An
    empty database says nothing: the gateway seeds it from the file."""
    config = load_config(file)
    async with _store(url) as store:
        revision, current = await store.load()
        if revision == 0:
            return 0
        diff = diff_configs(current, config)
        if not diff:
            return 0
        if apply:
            result = await store.apply(
                config, prune=True, actor="serve --apply-config", label=f"apply {file} at start"
            )
            print(
                f"llmgate: applied {file} as revision {result.revision}: {diff.summary()}",
                file=sys.stderr,
            )
            return 0
    print(
        f"llmgate: {file} differs from revision {revision} of {display_url(url)}, which is "
        "what will be served:",
        file=sys.stderr,
    )
    for line in diff.render(prune=True):
        print(f"  {line}", file=sys.stderr)
    print(
        f"llmgate: to serve the file instead, run `llmgate config apply {file} --prune` "
        "(or start with --apply-config)",
        file=sys.stderr,
    )
    return 0


async def export(url: str, output: str | None) -> int:
    """The live configuration as TOML, to ``output`` or standard output."""
    async with _store(url) as store:
        revision, config = await store.load()
    text = to_toml(config, revision=revision)
    if output is None:
        sys.stdout.write(text)
    else:
        try:
            await asyncio.to_thread(Path(output).write_text, text)
        except OSError as exc:  # not a database error, which `run` would call it
            raise LLMGateError(f"cannot write {output}: {exc.strerror}") from None
        print(f"wrote revision {revision} to {output}", file=sys.stderr)
    return 0


async def revisions(url: str, limit: int) -> int:
    async with _store(url) as store:
        rows = await store.revisions(limit)
    if not rows:
        print("no revisions yet")
    for r in rows:
        print(f"{r.id:>6}  {r.created_at:%Y-%m-%d %H:%M:%S}Z  {r.actor}  {r.summary}")
    return 0


# --- llmgate keys ... --------------------------------------------------------------------


def _key_line(key: ApiKey) -> str:
    routes = ",".join(key.routes) if key.routes is not None else "*"
    state = "active" if key.active else f"revoked {key.revoked_at:%Y-%m-%d %H:%M}Z"
    return f"{key.id}  {key.name}  {key.prefix}…  routes={routes}  {state}"


async def keys(
    url: str,
    action: str,
    *,
    ref: str | None,
    name: str | None,
    routes: str | None,
    budget: dict[str, Any] | None = None,
) -> int:
    """``keys create|list|revoke|rotate``. A secret is printed once, on its own line
    last, so that ``$(llmgate keys create ... | tail -1)`` captures it."""
    async with _store(url) as store:
        key_store = KeyStore(store.engine)
        match action:
            case "list":
                listed = await key_store.list()
                if not listed:
                    print("no keys yet")
                for key in listed:
                    print(_key_line(key))
            case "create":
                assert name is not None
                wanted = routes.split(",") if routes else None
                limits = None
                if budget:
                    try:
                        limits = msgspec.convert(budget, Budget)
                    except msgspec.ValidationError as exc:
                        raise ConfigError(str(exc), source="key", path="budget") from None
                created = await key_store.create(name, wanted, limits)
                print(_key_line(created.key))
                print("the secret, shown only now:", file=sys.stderr)
                print(created.secret)
            case "rotate":
                assert ref is not None
                created = await key_store.rotate(ref)
                print(_key_line(created.key))
                print(
                    "the new secret, shown only now (the old one no longer works):", file=sys.stderr
                )
                print(created.secret)
            case "revoke":
                assert ref is not None
                print(_key_line(await key_store.revoke(ref)))
    return 0
