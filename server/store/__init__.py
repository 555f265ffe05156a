"""The policy store: providers and routes in SQLite or PostgreSQL, in revisions.

- `database`: which database (``--database-url``, ``LLMGATE_DATABASE_URL``, ``./llmgate.db``)
  and an engine with real transactions on SQLite;
- `migration`: alembic, configured in code (``upgrade``, ``migrate``, ``check_schema``);
- `models`: the tables; `schemas`: what the store returns;
- `service`: `PolicyStore`, whose every write is one validated revision;
- `diff` and `export`: ``config plan`` and ``config export``.
"""

from __future__ import annotations

from server.errors import ConflictError, NotFound, SchemaNotReady
from server.store.database import DATABASE_URL_ENV, create_engine, database_url, display_url
from server.store.diff import ConfigDiff, diff_configs
from server.store.export import to_toml
from server.store.migration import check_schema, downgrade, migrate, upgrade
from server.store.schemas import RevisionInfo, WriteResult
from server.store.service import NOTIFY_CHANNEL, PolicyStore

__all__ = [
    "DATABASE_URL_ENV",
    "NOTIFY_CHANNEL",
    "ConfigDiff",
    "ConflictError",
    "NotFound",
    "PolicyStore",
    "RevisionInfo",
    "SchemaNotReady",
    "WriteResult",
    "check_schema",
    "create_engine",
    "database_url",
    "diff_configs",
    "display_url",
    "downgrade",
    "migrate",
    "to_toml",
    "upgrade",
]
