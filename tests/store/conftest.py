"""A fresh database per test: an SQLite file, and a PostgreSQL database of its own
when ``LLMGATE_TEST_DATABASE_URL`` names a server (CI always sets it)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from providers import decode_config
from providers.config import GatewayConfig
from server.store import PolicyStore, create_engine, migrate

TEST_DATABASE_ENV = "LLMGATE_TEST_DATABASE_URL"
SKIP_POSTGRES = (
    f"{TEST_DATABASE_ENV} not set: the PostgreSQL store tests need a server, e.g. "
    f"{TEST_DATABASE_ENV}=postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)

BASE: dict[str, Any] = {
    "providers": {
        "mock": {"kind": "mock"},
        "openai": {"kind": "openai", "api_key_env": "OPENAI_API_KEY"},
        "spare": {"kind": "mock", "tokens": 5},
    },
    "routes": {
        "chat": {"targets": ["mock/echo"]},
        "cloud": {"targets": ["openai/gpt-4o-mini", "mock/backup"], "max_retries": 1},
    },
}


def base_config(**changes: Any) -> GatewayConfig:
    return decode_config({**BASE, **changes}, "test")


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database, never migrated."""
    async with empty_database(request.param, tmp_path) as url:
        yield url


@asynccontextmanager
async def empty_database(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty database: an SQLite file in ``tmp_path``, or a PostgreSQL
    database of its own, dropped afterwards (skips the test without a server)."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'llmgate.db'}"
        return
    server = os.environ.get(TEST_DATABASE_ENV)
    if not server:
        pytest.skip(SKIP_POSTGRES)
    name = f"llmgate_test_{uuid.uuid4().hex[:16]}"
    admin = create_async_engine(server, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def store(engine: AsyncEngine) -> PolicyStore:
    """A store on a migrated, empty database."""
    await migrate(engine)
    return PolicyStore(engine)
