"""Migration 0002 adds the request log, with the indexes the dashboard's listing needs,
and takes it away again on downgrade."""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncEngine

from server.store import migrate
from server.store.migration import schema_revision

POLICY_TABLES = {"providers", "routes", "revisions", "config_state"}
INDEXES = {
    "ix_request_log_created_at": ["created_at"],
    "ix_request_log_route_created_at": ["route", "created_at"],
    "ix_request_log_status_created_at": ["status", "created_at"],
    "ix_request_log_target_created_at": ["target", "created_at"],
}


async def schema(engine: AsyncEngine) -> tuple[set[str], dict[str, Any]]:
    """The tables (alembic's aside) and the request log's indexes, by name."""

    def read(conn: Any) -> tuple[set[str], dict[str, Any]]:
        inspector = inspect(conn)
        tables = set(inspector.get_table_names()) - {"alembic_version"}
        indexes = {}
        if "request_log" in tables:
            indexes = {i["name"]: i["column_names"] for i in inspector.get_indexes("request_log")}
        return tables, indexes

    async with engine.connect() as conn:
        return await conn.run_sync(read)


async def test_upgrade_adds_the_request_log_with_its_listing_indexes(
    empty_engine: AsyncEngine,
) -> None:
    await migrate(empty_engine, "0001")
    assert await schema(empty_engine) == (POLICY_TABLES, {})

    await migrate(empty_engine, "0002")

    assert await schema(empty_engine) == (POLICY_TABLES | {"request_log"}, INDEXES)


async def test_downgrade_to_0001_drops_only_the_request_log(empty_engine: AsyncEngine) -> None:
    await migrate(empty_engine)

    await migrate(empty_engine, "0001", down=True)

    assert await schema(empty_engine) == (POLICY_TABLES, {})
    assert await schema_revision(empty_engine) == "0001"
    await migrate(empty_engine, "0002")  # and it comes back
    assert await schema(empty_engine) == (POLICY_TABLES | {"request_log"}, INDEXES)
