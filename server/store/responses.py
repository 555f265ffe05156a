"""Stored Responses API responses (``responses``): written when a response with
``store`` (the default) completes, read by ``GET /v1/responses/{id}`` and by the
follow-ups that name one in ``previous_response_id``, visible only to the key that
made it, pruned once expired.

A response is written in the background, in batches, after its client has it
(`server.store.batch_writer`: a full queue drops it, counted, and an outage delays it,
never failing a request); until then it is served from memory, so that a follow-up
sent the moment the stream ended finds it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncEngine

from server.store.batch_writer import BatchWriter
from server.store.models import StoredResponse
from server.store.request_log import aware

__all__ = ["Kept", "ResponseKeeper", "ResponseWriter"]


class Kept(msgspec.Struct, kw_only=True):
    """A stored response, as the API serves it and a follow-up continues it."""

    id: str
    api_key_id: str | None
    created_at: datetime
    session: str | None
    conversation: list[Any]
    input_items: list[Any]
    response: dict[str, Any]


class ResponseWriter(BatchWriter[Kept]):
    """Stored responses, written in batches (`server.store.batch_writer`), the expired
    ones pruned every hour."""

    def __init__(self, engine: AsyncEngine, ttl: timedelta, waiting: dict[str, Kept]) -> None:
        super().__init__(engine, StoredResponse, "responses", flush_interval_s=0.05)
        self.ttl = ttl
        self._waiting = waiting

    def to_row(self, item: Kept) -> dict[str, Any]:
        row: dict[str, Any] = msgspec.to_builtins(item, builtin_types=(datetime,))
        row["expires_at"] = item.created_at + self.ttl
        return row

    def expired(self, now: datetime) -> ColumnElement[bool] | None:
        return StoredResponse.expires_at < now

    def settled(self, items: list[Kept]) -> None:
        for item in items:
            self._waiting.pop(item.id, None)


class ResponseKeeper:
    """The responses of one app: its database once the lifespan has one (`start`), and
    the responses still waiting to be written, which are served from here meanwhile."""

    def __init__(self, ttl_days: float, keep_text: bool) -> None:
        self.ttl = timedelta(days=ttl_days)
        self.keep_text = keep_text
        """False when the request log keeps no text (``request_log_text``): then no
        response is stored either, whatever ``store`` says."""
        self.writer: ResponseWriter | None = None
        self._waiting: dict[str, Kept] = {}

    def start(self, engine: AsyncEngine) -> ResponseWriter:
        """Store responses in ``engine``'s database from now on, with the writer returned."""
        self.writer = ResponseWriter(engine, self.ttl, self._waiting)
        self.writer.start()
        return self.writer

    async def aclose(self) -> None:
        """Write what waits, then store nothing more."""
        writer, self.writer = self.writer, None
        if writer is not None:
            await writer.aclose()
        self._waiting.clear()

    @property
    def enabled(self) -> bool:
        """Responses can be stored: there is a database, and text may be kept."""
        return self.writer is not None and self.keep_text

    def save_soon(self, kept: Kept) -> None:
        """Queue ``kept`` to be written (a full queue drops it, counted)."""
        if self.enabled and self.writer is not None and self.writer.put(kept):
            self._waiting[kept.id] = kept

    async def get(self, response_id: str, api_key_id: str | None) -> Kept | None:
        """The response, if it exists, has not expired, and ``api_key_id`` made it."""
        kept = self._waiting.get(response_id)
        if kept is None and self.writer is not None:
            kept = await self._read(self.writer.engine, response_id)
        if kept is None or kept.api_key_id != api_key_id:
            return None
        if kept.created_at + self.ttl <= datetime.now(UTC):
            return None
        return kept

    @staticmethod
    async def _read(engine: AsyncEngine, response_id: str) -> Kept | None:
        query = select(StoredResponse).where(StoredResponse.id == response_id)
        async with engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is None:
            return None
        fields = {k: row[k] for k in Kept.__struct_fields__}
        fields["created_at"] = aware(fields["created_at"])
        return Kept(**fields)

    async def delete(self, response_id: str, api_key_id: str | None) -> bool:
        """Whether there was such a response (of this key) to delete."""
        if await self.get(response_id, api_key_id) is None or self.writer is None:
            return False
        if response_id in self._waiting:
            await self.writer.flush()
        await self.writer.delete_where(StoredResponse.id == response_id)
        return True
