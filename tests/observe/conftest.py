"""A fresh database per test, SQLite and PostgreSQL (like tests/store), that a test can
take offline and bring back: the request log writer must ride out the outage."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from router.engine import Engine
from server.store import create_engine, migrate
from tests.store.conftest import SKIP_POSTGRES, TEST_DATABASE_ENV
from tests.unit._fakes import RecordingSleep, SteadyClock


class Database(Protocol):
    """An empty database, never migrated, at ``url``."""

    url: str

    async def go_down(self, engine: AsyncEngine) -> None:
        """New connections fail and pooled ones are gone, until `come_back`."""

    async def come_back(self) -> None: ...


class SQLiteFile:
    """A file in a folder of its own: moving the folder away is the outage."""

    def __init__(self, folder: Path) -> None:
        self.url = f"sqlite+aiosqlite:///{folder / 'llmgate.db'}"
        self.folder = folder
        self.away = folder.with_name(folder.name + "-away")

    async def go_down(self, engine: AsyncEngine) -> None:
        await engine.dispose()  # an open file would keep working after the move
        self.folder.rename(self.away)

    async def come_back(self) -> None:
        self.away.rename(self.folder)


class PostgresDatabase:
    """A database of its own on the test server: refusing connections is the outage."""

    def __init__(self, url: str, name: str, admin: AsyncEngine) -> None:
        self.url = url
        self.name = name
        self.admin = admin

    async def go_down(self, engine: AsyncEngine) -> None:
        async with self.admin.connect() as conn:
            await conn.execute(text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false'))
            await conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": self.name},
            )

    async def come_back(self) -> None:
        async with self.admin.connect() as conn:
            await conn.execute(text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true'))


@pytest.fixture(params=["sqlite", "postgresql"])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        folder = tmp_path / "data"
        folder.mkdir()
        yield SQLiteFile(folder)
        return
    server = os.environ.get(TEST_DATABASE_ENV)
    if not server:
        pytest.skip(SKIP_POSTGRES)
    name = f"llmgate_test_{uuid.uuid4().hex[:16]}"
    admin = create_async_engine(server, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(server).set(database=name).render_as_string(hide_password=False)
        yield PostgresDatabase(url, name, admin)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@pytest.fixture
async def empty_engine(database: Database) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database.url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def engine(empty_engine: AsyncEngine) -> AsyncEngine:
    """An engine on a migrated, empty database."""
    await migrate(empty_engine)
    return empty_engine


@pytest.fixture
def router() -> Engine:
    """The real routing engine, on a clock and sleep that only tests move."""
    return Engine(clock=SteadyClock(), rng=lambda: 0.5, sleep=RecordingSleep())
