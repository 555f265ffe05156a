"""The schema comes from alembic migrations, and they agree with the models."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from server.errors import SchemaNotReady
from server.store import PolicyStore, check_schema, migrate
from server.store.migration import head_revision, schema_revision
from server.store.models import Base

TABLES = {
    "providers",
    "routes",
    "revisions",
    "config_state",
    "request_log",
    "api_keys",
    "budget_counters",
    "responses",
    "login_links",
    "signed_out",
}


async def tables(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        names: list[str] = await conn.run_sync(lambda c: inspect(c).get_table_names())
    return set(names) - {"alembic_version"}


async def test_upgrade_builds_the_schema_on_an_empty_database(engine: AsyncEngine) -> None:
    assert await tables(engine) == set()
    await migrate(engine)
    assert await tables(engine) == TABLES
    assert await schema_revision(engine) == head_revision()
    assert await PolicyStore(engine).current_revision() == 0


async def test_upgrade_twice_is_a_no_op(engine: AsyncEngine) -> None:
    await migrate(engine)
    await migrate(engine)
    assert await PolicyStore(engine).current_revision() == 0


async def test_downgrade_to_base_removes_every_table(engine: AsyncEngine) -> None:
    await migrate(engine)
    await migrate(engine, "base", down=True)
    assert await tables(engine) == set()
    assert await schema_revision(engine) is None
    await migrate(engine)  # and it comes back
    assert await tables(engine) == TABLES


async def test_models_and_migrations_agree(engine: AsyncEngine) -> None:
    await migrate(engine)

    def diffs(conn: Connection) -> list[object]:
        return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))

    async with engine.connect() as conn:
        assert await conn.run_sync(diffs) == []


async def test_check_schema_refuses_a_database_that_was_never_migrated(
    engine: AsyncEngine,
) -> None:
    with pytest.raises(SchemaNotReady, match="run `llmgate db upgrade`"):
        await check_schema(engine)
    await migrate(engine)
    await check_schema(engine)
