"""`PolicyStore`: providers and routes in the database, every write one revision.

A write runs in one transaction: lock the state row, check the expected revision,
read the current configuration, apply the change, validate the *whole* result through
the same msgspec Structs as the TOML loader, write the rows and the revision with its
snapshot, bump the state row and (on PostgreSQL) ``NOTIFY llmgate_revision``, which
is delivered when the transaction commits. An invalid change raises before anything
is written; a write that changes nothing writes no revision.

Writers are serialised by ``SELECT ... FOR UPDATE`` on the state row (PostgreSQL) or
``BEGIN IMMEDIATE`` (SQLite, see `server.store.database`), so two writers that read the
same revision cannot both commit: the second sees the first's revision and, when it
named an ``expected_revision``, gets a `ConflictError`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from providers.config import GatewayConfig, ProviderConfig, decode_config
from router.errors import ConfigError
from router.policy import RoutePolicy
from server.errors import ConflictError, NotFound
from server.store.database import WRITE
from server.store.diff import ConfigDiff, diff_configs
from server.store.models import NAME_LENGTH, ConfigState, ProviderRow, RevisionRow, RouteRow
from server.store.schemas import RevisionInfo, WriteResult, canonical, snapshot

__all__ = ["NOTIFY_CHANNEL", "PolicyStore"]

NOTIFY_CHANNEL = "llmgate_revision"
"""PostgreSQL channel; the payload is the new revision id."""

Snapshot = dict[str, Any]
Mutation = Callable[[Snapshot], Snapshot]


class PolicyStore:
    """The configuration in the database. Stateless over its engine: any number of
    stores, in any number of processes, may share one database."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def current_revision(self) -> int:
        async with self.engine.connect() as conn:
            revision: int = (await conn.execute(_STATE)).scalar_one()
            return revision

    async def load(self) -> tuple[int, GatewayConfig]:
        """The current revision and its configuration, validated as a file would be.

        ``server`` is left at its defaults: process settings do not live in the database.
        """
        async with self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":  # one snapshot for the state and the rows
                conn = await conn.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                revision: int = (await conn.execute(_STATE)).scalar_one()
                return revision, decode_config(await _read(conn), "database")

    async def instance_secret(self) -> bytes:
        """A random 32-byte secret, made once and then shared by every process."""
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(**WRITE)
            async with conn.begin():
                query = select(ConfigState.secret).where(ConfigState.id == 1).with_for_update()
                stored = (await conn.execute(query)).scalar_one_or_none()
                if stored is None:
                    stored = secrets.token_hex(32)
                    await conn.execute(
                        update(ConfigState).where(ConfigState.id == 1).values(secret=stored)
                    )
        return bytes.fromhex(stored)

    async def config_at(self, revision: int) -> GatewayConfig:
        """The configuration a past revision recorded."""
        return decode_config(await self._snapshot_of(revision), f"revision {revision}")

    async def revisions(self, limit: int = 50) -> list[RevisionInfo]:
        """The newest revisions first."""
        query = (
            select(RevisionRow.id, RevisionRow.created_at, RevisionRow.actor, RevisionRow.summary)
            .order_by(RevisionRow.id.desc())
            .limit(max(limit, 0))
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [RevisionInfo(r.id, _aware(r.created_at), r.actor, r.summary) for r in rows]

    async def put_route(
        self,
        name: str,
        data: RoutePolicy | Mapping[str, Any],
        *,
        actor: str,
        expected_revision: int | None = None,
        dry_run: bool = False,
    ) -> WriteResult:
        """Create or replace one route; ``data`` has the fields of its TOML table."""
        value = canonical(data) if isinstance(data, RoutePolicy) else data
        return await self._write(
            f"put route {name}",
            lambda snap: _put(snap, "routes", name, value),
            actor=actor,
            expected_revision=expected_revision,
            dry_run=dry_run,
        )

    async def delete_route(
        self, name: str, *, actor: str, expected_revision: int | None = None, dry_run: bool = False
    ) -> WriteResult:
        return await self._write(
            f"delete route {name}",
            lambda snap: _delete(snap, "routes", name),
            actor=actor,
            expected_revision=expected_revision,
            dry_run=dry_run,
        )

    async def put_provider(
        self,
        name: str,
        data: ProviderConfig | Mapping[str, Any],
        *,
        actor: str,
        expected_revision: int | None = None,
        dry_run: bool = False,
    ) -> WriteResult:
        """Create or replace one provider; ``data`` has the fields of its TOML table."""
        value = data if isinstance(data, Mapping) else canonical(data)
        return await self._write(
            f"put provider {name}",
            lambda snap: _put(snap, "providers", name, value),
            actor=actor,
            expected_revision=expected_revision,
            dry_run=dry_run,
        )

    async def delete_provider(
        self, name: str, *, actor: str, expected_revision: int | None = None, dry_run: bool = False
    ) -> WriteResult:
        """Refused while a route still names the provider in its targets."""
        return await self._write(
            f"delete provider {name}",
            lambda snap: _delete(_unused(snap, name), "providers", name),
            actor=actor,
            expected_revision=expected_revision,
            dry_run=dry_run,
        )

    async def apply(
        self,
        config: GatewayConfig,
        *,
        prune: bool,
        actor: str,
        expected_revision: int | None = None,
        dry_run: bool = False,
        label: str = "apply",
    ) -> WriteResult:
        """Make the database match ``config`` in one revision. Without ``prune``,
        providers and routes the config does not mention are kept."""
        incoming = snapshot(config)

        def merge(current: Snapshot) -> Snapshot:
            if prune:
                return incoming
            return {
                "defaults": incoming["defaults"],
                "providers": {**current["providers"], **incoming["providers"]},
                "routes": {**current["routes"], **incoming["routes"]},
            }

        return await self._write(
            label, merge, actor=actor, expected_revision=expected_revision, dry_run=dry_run
        )

    async def rollback(
        self, revision: int, *, actor: str, expected_revision: int | None = None
    ) -> WriteResult:
        """Restore the configuration of ``revision`` as a new revision."""
        target = await self._snapshot_of(revision)
        return await self._write(
            f"rollback to revision {revision}",
            lambda _: target,
            actor=actor,
            expected_revision=expected_revision,
            where=f"revision {revision}",
        )

    async def seed_if_empty(self, config: GatewayConfig, *, actor: str = "seed") -> WriteResult:
        """Write ``config`` as the first revision, unless the database has one already.
        Safe to call from every worker at start: only one seeds."""
        try:
            return await self.apply(
                config, prune=True, actor=actor, expected_revision=0, label="seed"
            )
        except ConflictError:
            revision, current = await self.load()
            return WriteResult(revision, False, current, ConfigDiff())

    async def _snapshot_of(self, revision: int) -> Snapshot:
        query = select(RevisionRow.snapshot).where(RevisionRow.id == revision)
        async with self.engine.connect() as conn:
            data: Snapshot | None = (await conn.execute(query)).scalar_one_or_none()
        if data is None:
            raise NotFound(f"no revision {revision}")
        return data

    async def _write(
        self,
        label: str,
        mutate: Mutation,
        *,
        actor: str,
        expected_revision: int | None,
        dry_run: bool = False,
        where: str = "config",
    ) -> WriteResult:
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(**WRITE)
            async with conn.begin():
                revision: int = (await conn.execute(_STATE.with_for_update())).scalar_one()
                if expected_revision is not None and expected_revision != revision:
                    raise ConflictError(expected_revision, revision)
                current = await _read(conn)
                old = decode_config(current, "database")
                new = _check_names(decode_config(mutate(current), where), where)
                diff = diff_configs(old, new)
                if dry_run or not diff:
                    return WriteResult(revision, False, new, diff)
                await _save(conn, revision + 1, new, diff, actor, f"{label}: {diff.summary()}")
                return WriteResult(revision + 1, True, new, diff)


_STATE = select(ConfigState.revision).where(ConfigState.id == 1)


async def _read(conn: AsyncConnection) -> Snapshot:
    defaults = (await conn.execute(select(ConfigState.defaults))).scalar_one()
    providers = await conn.execute(select(ProviderRow.name, ProviderRow.config))
    routes = await conn.execute(select(RouteRow.name, RouteRow.policy))
    return {
        "defaults": defaults,
        "providers": {name: config for name, config in providers},
        "routes": {name: policy for name, policy in routes},
    }


async def _save(
    conn: AsyncConnection,
    revision: int,
    new: GatewayConfig,
    diff: ConfigDiff,
    actor: str,
    summary: str,
) -> None:
    now = datetime.now(UTC)
    for change in diff.changes:
        if change.section == "defaults":
            continue  # written with the state row below
        table, column = (
            (ProviderRow, "config") if change.section == "providers" else (RouteRow, "policy")
        )
        section: Mapping[str, Any] = getattr(new, change.section)
        match change.action:
            case "remove":
                await conn.execute(delete(table).where(table.name == change.name))
            case "add":
                value = canonical(section[change.name])
                await conn.execute(
                    insert(table).values(name=change.name, updated_at=now, **{column: value})
                )
            case "change":
                value = canonical(section[change.name])
                await conn.execute(
                    update(table)
                    .where(table.name == change.name)
                    .values(updated_at=now, **{column: value})
                )
    await conn.execute(
        insert(RevisionRow).values(
            id=revision, created_at=now, actor=actor, summary=summary, snapshot=snapshot(new)
        )
    )
    await conn.execute(
        update(ConfigState)
        .where(ConfigState.id == 1)
        .values(revision=revision, defaults=canonical(new.defaults), updated_at=now)
    )
    if conn.dialect.name == "postgresql":
        await conn.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": NOTIFY_CHANNEL, "payload": str(revision)},
        )


def _put(snap: Snapshot, section: str, name: str, value: object) -> Snapshot:
    """``value`` unvalidated: whatever its shape, `decode_config` judges it with the rest."""
    return {**snap, section: {**snap[section], name: value}}


def _delete(snap: Snapshot, section: str, name: str) -> Snapshot:
    if name not in snap[section]:
        raise NotFound(f"no {section[:-1]} named {name!r}")
    return {**snap, section: {k: v for k, v in snap[section].items() if k != name}}


def _unused(snap: Snapshot, provider: str) -> Snapshot:
    """``snap`` unchanged, or a `ConfigError` naming the first target that uses ``provider``."""
    for route, policy in snap["routes"].items():
        for i, entry in enumerate(policy.get("targets", [])):
            members = entry.get("pool", []) if isinstance(entry, dict) else [entry]
            for target in members:
                if str(target).partition("/")[0] == provider:
                    raise ConfigError(
                        f"provider {provider!r} is still used by route {route!r} "
                        f"({target!r}); change or delete the route first",
                        source="config",
                        path=f"routes.{route}.targets[{i}]",
                    )
    return snap


def _check_names(config: GatewayConfig, where: str) -> GatewayConfig:
    for section in ("providers", "routes"):
        for name in getattr(config, section):
            if not 1 <= len(name) <= NAME_LENGTH:
                raise ConfigError(
                    f"a name must be 1 to {NAME_LENGTH} characters long",
                    source=where,
                    path=f"{section}.{name[:40]}",
                )
    return config


def _aware(moment: datetime) -> datetime:
    """SQLite returns the UTC timestamps we wrote without their zone."""
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
