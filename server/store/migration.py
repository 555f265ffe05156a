"""Schema migrations: alembic, configured in code so ``llmgate db upgrade`` works from
any directory. Production code never calls ``create_all``; the schema is what
``migrations/versions`` builds.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from server.errors import SchemaNotReady
from server.store.database import WRITE, create_engine, display_url

__all__ = [
    "MIGRATIONS",
    "alembic_config",
    "check_schema",
    "downgrade",
    "head_revision",
    "migrate",
    "schema_revision",
    "upgrade",
]

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
# Any fixed number: concurrent `upgrade`s against one PostgreSQL database take turns.
_MIGRATION_LOCK = 0x6C6C6D67


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, f"no migrations in {MIGRATIONS}"
    return head


async def migrate(engine: AsyncEngine, revision: str = "head", *, down: bool = False) -> None:
    """Upgrade (or downgrade) the schema to ``revision`` in one transaction."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(**WRITE)
        async with conn.begin():
            if conn.dialect.name == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            await conn.run_sync(_run, revision, down)


def _run(conn: Connection, revision: str, down: bool) -> None:
    config = alembic_config()
    config.attributes["connection"] = conn  # env.py migrates on this connection
    if down:
        command.downgrade(config, revision)
    else:
        command.upgrade(config, revision)


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database to ``revision`` (default: the latest). Blocking; not for use
    inside a running event loop (there, ``await migrate(engine)``)."""
    asyncio.run(_with_engine(database_url, revision, down=False))


def downgrade(database_url: str, revision: str) -> None:
    asyncio.run(_with_engine(database_url, revision, down=True))


async def _with_engine(database_url: str, revision: str, *, down: bool) -> None:
    engine = create_engine(database_url)
    try:
        await migrate(engine, revision, down=down)
    finally:
        await engine.dispose()


async def schema_revision(engine: AsyncEngine) -> str | None:
    """The alembic revision the database is at (None: never migrated)."""
    async with engine.connect() as conn:
        return await conn.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_revision()
        )


async def check_schema(engine: AsyncEngine) -> None:
    """Raise `SchemaNotReady` unless the database is at this version's latest schema."""
    where = display_url(engine.url.render_as_string(hide_password=False))
    path = engine.url.database
    file = engine.url.get_backend_name() == "sqlite" and "uri" not in engine.url.query
    if file and path and path != ":memory:" and not await asyncio.to_thread(Path(path).exists):
        # Connecting would create an empty file; say what is missing instead.
        raise SchemaNotReady(f"no database at {where}: run `llmgate db upgrade`")
    current, head = await schema_revision(engine), head_revision()
    if current != head:
        state = f"at schema {current}" if current else "not initialised"
        raise SchemaNotReady(
            f"the database {where} is {state}; this llmgate needs schema {head}: "
            f"run `llmgate db upgrade`"
        )
