"""alembic environment. `server.store.migration` runs it on a connection it opened (inside
a transaction it owns); run by the ``alembic`` command instead, it opens one itself
from ``--database-url``'s sources (``LLMGATE_DATABASE_URL``, else ``./llmgate.db``).
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from server.store.database import WRITE, create_engine, database_url
from server.store.models import Base

config = context.config


def run_on(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        # Our SQLite engine emits BEGIN itself, so DDL is transactional there too;
        # batch mode lets future ALTERs work on SQLite.
        transactional_ddl=True,
        render_as_batch=sqlite,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_standalone() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or database_url())
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(**WRITE)
            await conn.run_sync(run_on)
            await conn.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("llmgate migrations run online only: use `llmgate db upgrade`")
connection = config.attributes.get("connection")
if connection is not None:
    run_on(connection)
else:
    asyncio.run(run_standalone())
