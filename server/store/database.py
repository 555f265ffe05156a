"""Which database, and an engine for it that makes SQLite's transactions real.

SQLite's Python driver starts a transaction only before a write, so the reads of a
read-modify-write would run outside it. We turn that off and emit ``BEGIN`` ourselves:
``BEGIN IMMEDIATE`` on connections marked for writing (`WRITE`), so concurrent writers
queue on the file lock instead of both reading the same revision.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

__all__ = ["DATABASE_URL_ENV", "WRITE", "create_engine", "database_url", "display_url"]

DATABASE_URL_ENV = "LLMGATE_DATABASE_URL"
WRITE = {"llmgate_write": True}
"""Execution options for a connection that will write (``BEGIN IMMEDIATE`` on SQLite)."""

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg"}
_ASYNC_DRIVERS["postgres"] = _ASYNC_DRIVERS["postgresql"]


def database_url(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """``--database-url``, else ``LLMGATE_DATABASE_URL``, else ``./llmgate.db`` (SQLite).

    A plain ``sqlite://`` or ``postgresql://`` URL gets its asyncio driver; a relative
    SQLite path is made absolute, so worker processes agree on the file.
    """
    env = os.environ if env is None else env
    raw = explicit or env.get(DATABASE_URL_ENV) or "sqlite:///llmgate.db"
    url = make_url(raw)
    url = url.set(drivername=_ASYNC_DRIVERS.get(url.drivername, url.drivername))
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        url = url.set(database=str(Path(url.database).resolve()))
    return url.render_as_string(hide_password=False)


def display_url(url: str) -> str:
    """The URL with any password masked, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An asyncio engine; for SQLite, with WAL and our own ``BEGIN`` (see module doc)."""
    if make_url(url).get_backend_name() != "sqlite":
        return create_async_engine(url, **kwargs)
    kwargs.setdefault("connect_args", {}).setdefault("timeout", 30)
    engine = create_async_engine(url, **kwargs)
    event.listen(engine.sync_engine, "connect", _sqlite_connect)
    event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # the driver stops emitting BEGIN itself
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    write = conn.get_execution_options().get("llmgate_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
