"""Stored Responses API responses (``responses``): written when a response with
``store`` (the default) completes, read by ``GET /v1/responses/{id}`` and by the
follow-ups that name one in ``previous_response_id``, visible only to the key that
made it, pruned once expired.

A response is written in the background, after its client has it: a follow-up sent
the moment the stream ended may come before the row (`ResponseKeeper.get` then waits
for the pending write). A database error loses that response's state, logged, and
never fails a request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from server.store.models import StoredResponse
from server.store.request_log import aware

__all__ = ["Kept", "ResponseKeeper"]

log = logging.getLogger("llmgate")
PRUNE_EVERY_S = 3600.0


class Kept(msgspec.Struct, kw_only=True):
    """A stored response, as the API serves it and a follow-up continues it."""

    id: str
    api_key_id: str | None
    created_at: datetime
    session: str | None
    conversation: list[Any]
    input_items: list[Any]
    response: dict[str, Any]


class ResponseKeeper:
    """The responses of one app: its database once the lifespan has one (`use`), and
    the writes still under way."""

    def __init__(self, ttl_days: float, keep_text: bool) -> None:
        self.ttl = timedelta(days=ttl_days)
        self.keep_text = keep_text
        """False when the request log keeps no text (``request_log_text``): then no
        response is stored either, whatever ``store`` says."""
        self._engine: AsyncEngine | None = None
        self._pending: dict[str, asyncio.Task[None]] = {}
        self._pruned = 0.0

    def use(self, engine: AsyncEngine | None) -> None:
        self._engine = engine

    @property
    def enabled(self) -> bool:
        """Responses can be stored: there is a database, and text may be kept."""
        return self._engine is not None and self.keep_text

    def save_soon(self, kept: Kept) -> None:
        """Write ``kept`` in the background."""
        if not self.enabled:
            return
        task = asyncio.get_running_loop().create_task(self._save(kept))
        self._pending[kept.id] = task
        task.add_done_callback(lambda _: self._pending.pop(kept.id, None))

    async def _save(self, kept: Kept) -> None:
        engine = self._engine
        if engine is None:
            return
        row = msgspec.to_builtins(kept, builtin_types=(datetime,))
        row["expires_at"] = kept.created_at + self.ttl
        try:
            async with engine.begin() as conn:
                await conn.execute(insert(StoredResponse).values(**row))
                now = time.monotonic()
                if now - self._pruned >= PRUNE_EVERY_S:
                    self._pruned = now
                    expired = StoredResponse.expires_at < datetime.now(UTC)
                    await conn.execute(delete(StoredResponse).where(expired))
        except SQLAlchemyError:
            log.exception("could not store response %s", kept.id)

    async def get(self, response_id: str, api_key_id: str | None) -> Kept | None:
        """The response, if it exists, has not expired, and ``api_key_id`` made it."""
        pending = self._pending.get(response_id)
        if pending is not None:
            await asyncio.shield(pending)
        engine = self._engine
        if engine is None:
            return None
        query = select(StoredResponse).where(StoredResponse.id == response_id)
        async with engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is None or row["api_key_id"] != api_key_id:
            return None
        if aware(row["expires_at"]) <= datetime.now(UTC):
            return None
        fields = {k: row[k] for k in Kept.__struct_fields__}
        fields["created_at"] = aware(fields["created_at"])
        return Kept(**fields)

    async def delete(self, response_id: str, api_key_id: str | None) -> bool:
        """Whether there was such a response (of this key) to delete."""
        if await self.get(response_id, api_key_id) is None:
            return False
        assert self._engine is not None
        async with self._engine.begin() as conn:
            await conn.execute(delete(StoredResponse).where(StoredResponse.id == response_id))
        return True

    async def aclose(self) -> None:
        """Wait for the writes under way."""
        if self._pending:
            await asyncio.gather(*self._pending.values(), return_exceptions=True)
