"""Virtual API keys: client keys created, listed, rotated and revoked at run time.

A secret (``sk-lg-`` and 43 random URL-safe characters) is shown once, when it is
created or rotated; the database keeps its SHA-256 (the secret has 256 bits of entropy,
so a plain hash is as good as a slow one) and its first characters to tell keys apart.

Every change bumps ``config_state.keys_version`` in the same transaction (serialised on
that row, like configuration writes) and, on PostgreSQL, sends ``NOTIFY llmgate_keys``.
Each gateway process holds the active keys in memory (`KeyRing`): checking a key is a
dictionary lookup, never a database round trip, and a revoked key stops working on every
process as soon as it hears of the change: at once through NOTIFY, within
``reload_poll_s`` through the poll (see `server.core.reload`).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from sqlalchemy import Row, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from router.errors import ConfigError
from router.policy import Budget
from server.core.keys import ApiKey, KeyRing, hash_secret
from server.errors import KeyNameTaken, NotFound
from server.store.database import WRITE
from server.store.models import NAME_LENGTH, ApiKeyRow, ConfigState, RouteRow

__all__ = [
    "KEYS_CHANNEL",
    "ApiKey",
    "CreatedKey",
    "KeyRing",
    "KeyStore",
    "hash_secret",
]

KEYS_CHANNEL = "llmgate_keys"
SECRET_PREFIX = "sk-lg-"


class CreatedKey(msgspec.Struct, frozen=True):
    key: ApiKey
    secret: str
    """Shown once; the database cannot tell it again."""


class KeyStore:
    """The ``api_keys`` table. Stateless over its engine, like `PolicyStore`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def version(self) -> int:
        async with self.engine.connect() as conn:
            return await _version(conn)

    async def ring(self) -> KeyRing:
        """The active keys, with the version they are at (one snapshot)."""
        async with self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                version = await _version(conn)
                rows = await conn.execute(select(ApiKeyRow).where(ApiKeyRow.revoked_at.is_(None)))
                return KeyRing(version, {r.secret_hash: _key(r) for r in rows.all()})

    async def list(self, *, include_revoked: bool = True) -> list[ApiKey]:
        query = select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id)
        if not include_revoked:
            query = query.where(ApiKeyRow.revoked_at.is_(None))
        async with self.engine.connect() as conn:
            return [_key(r) for r in (await conn.execute(query)).all()]

    async def get(self, ref: str) -> ApiKey:
        """A key by id, or by the name of an active key."""
        async with self.engine.connect() as conn:
            return _key(await _find(conn, ref))

    async def create(
        self, name: str, routes: Iterable[str] | None = None, budget: Budget | None = None
    ) -> CreatedKey:
        name = _check_name(name)
        _check_budget(budget)
        allowed = await self._check_routes(routes)
        secret = _new_secret()
        now = datetime.now(UTC)
        row = ApiKeyRow(
            id="key_" + secrets.token_hex(6),
            name=name,
            secret_hash=hash_secret(secret),
            prefix=secret[:12],
            routes=list(allowed) if allowed is not None else None,
            budget=msgspec.to_builtins(budget) if budget is not None else None,
            created_at=now,
        )
        async with self._writing() as conn:
            taken = await conn.execute(
                select(ApiKeyRow.id).where(ApiKeyRow.name == name, ApiKeyRow.revoked_at.is_(None))
            )
            if taken.first() is not None:
                raise KeyNameTaken(f"an active key is already named {name!r}")
            await conn.execute(insert(ApiKeyRow).values(**_columns(row)))
        return CreatedKey(_key(row), secret)

    async def revoke(self, ref: str) -> ApiKey:
        async with self._writing() as conn:
            row = await _find(conn, ref)
            if row.revoked_at is not None:
                return _key(row)
            now = datetime.now(UTC)
            await conn.execute(
                update(ApiKeyRow).where(ApiKeyRow.id == row.id).values(revoked_at=now)
            )
            return msgspec.structs.replace(_key(row), revoked_at=now)

    async def rotate(self, ref: str) -> CreatedKey:
        """A new secret for the same key (its name, routes and history); the old secret
        stops working with this change."""
        secret = _new_secret()
        async with self._writing() as conn:
            row = await _find(conn, ref)
            if row.revoked_at is not None:
                raise NotFound(f"key {row.id} ({row.name}) is revoked; create a new one")
            now = datetime.now(UTC)
            await conn.execute(
                update(ApiKeyRow)
                .where(ApiKeyRow.id == row.id)
                .values(secret_hash=hash_secret(secret), prefix=secret[:12], rotated_at=now)
            )
            key = msgspec.structs.replace(_key(row), prefix=secret[:12], rotated_at=now)
        return CreatedKey(key, secret)

    async def _check_routes(self, routes: Iterable[str] | None) -> tuple[str, ...] | None:
        if routes is None:
            return None
        wanted = tuple(dict.fromkeys(r.strip() for r in routes if r.strip()))
        if not wanted:
            raise ConfigError(
                "name at least one route, or none for every route", source="key", path="routes"
            )
        async with self.engine.connect() as conn:
            known = set((await conn.execute(select(RouteRow.name))).scalars())
        unknown = [r for r in wanted if r not in known]
        if unknown:
            raise ConfigError(
                f"no route named {', '.join(map(repr, unknown))} "
                f"(routes: {', '.join(sorted(known)) or 'none'})",
                source="key",
                path="routes",
            )
        return wanted

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncConnection]:
        """One key change: serialised on the state row, bumps the version, notifies."""
        try:
            async with self.engine.connect() as conn:
                conn = await conn.execution_options(**WRITE)
                async with conn.begin():
                    locked = await conn.execute(
                        select(ConfigState.keys_version)
                        .where(ConfigState.id == 1)
                        .with_for_update()
                    )
                    if locked.scalar_one_or_none() is None:
                        raise NotFound(
                            "the database holds no configuration yet: "
                            "run `llmgate serve` or `llmgate config apply` first"
                        )
                    yield conn
                    bumped = await conn.execute(
                        update(ConfigState)
                        .where(ConfigState.id == 1)
                        .values(keys_version=ConfigState.keys_version + 1)
                        .returning(ConfigState.keys_version)
                    )
                    if conn.dialect.name == "postgresql":
                        await conn.execute(
                            text("SELECT pg_notify(:channel, :payload)"),
                            {"channel": KEYS_CHANNEL, "payload": str(bumped.scalar_one())},
                        )
        except IntegrityError:  # two creators of one name raced past the check
            raise KeyNameTaken("an active key already has that name") from None


async def _version(conn: AsyncConnection) -> int:
    value = (
        await conn.execute(select(ConfigState.keys_version).where(ConfigState.id == 1))
    ).scalar_one_or_none()
    return int(value or 0)


async def _find(conn: AsyncConnection, ref: str) -> Row[Any]:
    by_id = (await conn.execute(select(ApiKeyRow).where(ApiKeyRow.id == ref))).one_or_none()
    if by_id is not None:
        return by_id
    by_name = (
        await conn.execute(
            select(ApiKeyRow).where(ApiKeyRow.name == ref, ApiKeyRow.revoked_at.is_(None))
        )
    ).one_or_none()
    if by_name is None:
        raise NotFound(f"no key with the id or active name {ref!r}")
    return by_name


def _check_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= NAME_LENGTH or not name.isprintable():
        raise ConfigError(
            f"a key name is 1 to {NAME_LENGTH} printable characters", source="key", path="name"
        )
    return name


def _check_budget(budget: Budget | None) -> None:
    if budget is None:
        return
    if budget.downgrade_to is not None:
        raise ConfigError(
            "a key's budget cannot downgrade; a route's can",
            source="key",
            path="budget.downgrade_to",
        )
    if not budget.limits():
        raise ConfigError("a budget needs at least one limit", source="key", path="budget")
    try:
        ZoneInfo(budget.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"unknown time zone {budget.timezone!r}", source="key", path="budget.timezone"
        ) from None


def _new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _key(row: ApiKeyRow | Row[Any]) -> ApiKey:
    """From an ``api_keys`` row (Core rows have the columns as attributes too)."""
    return ApiKey(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        routes=tuple(row.routes) if row.routes is not None else None,
        budget=msgspec.convert(row.budget, Budget) if row.budget else None,
        created_at=_aware(row.created_at) or datetime.now(UTC),
        rotated_at=_aware(row.rotated_at),
        revoked_at=_aware(row.revoked_at),
    )


def _columns(row: ApiKeyRow) -> dict[str, object]:
    return {c.name: getattr(row, c.key) for c in ApiKeyRow.__table__.columns}
