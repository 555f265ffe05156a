"""Reading the request log (``request_log``, written by `server.observe.request_log`):
pages of it newest first, one request by id, and whether any request is logged.

A page is found with a keyset cursor on ``(created_at, id)``: one index range scan
(``created_at`` alone, or ``(route|status|target, created_at)`` with a filter) of at most
``size + 1`` rows however deep it is, where ``OFFSET`` would read and drop every row
before it. What is read comes back as Structs, never as ORM rows: the callers render
them, and a Struct cannot lazily load anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple, TypeVar, get_args

import msgspec
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from server.store.models import RequestLog

__all__ = [
    "FILTERS",
    "PAGE_SIZE",
    "STATUSES",
    "Cursor",
    "LogEntry",
    "LogPage",
    "LogRow",
    "Status",
    "any_logged",
    "aware",
    "log_entry",
    "log_page",
]

PAGE_SIZE = 50
Status = Literal["ok", "partial", "failed"]
"""What ``status`` holds (the table's check constraint)."""
STATUSES: tuple[str, ...] = get_args(Status)
FILTERS = ("route", "status", "target")
"""The columns a page may be filtered on, each with a ``(column, created_at)`` index."""

Cursor = tuple[datetime, str]
"""A row's place in the log's order: ``(created_at, id)``."""


class LogRow(msgspec.Struct, kw_only=True):
    """A logged request as a list shows it."""

    id: str
    created_at: datetime
    """When it started, UTC (aware, also on SQLite, which stores naive times)."""
    route: str
    target: str | None
    status: Status
    latency_ms: float
    ttft_ms: float | None
    total_tokens: int
    cost_usd: float | None
    error: str | None
    record: dict[str, Any]
    """The engine's `RequestRecord` as stored: every attempt and stream switch."""


class LogEntry(LogRow, kw_only=True):
    """A logged request with everything stored about it."""

    prompt_tokens: int
    completion_tokens: int
    api_key_id: str | None
    transcript: list[Any] | None
    """What the client was shown (`server.observe.transcript`); None if not recorded."""


class LogPage(NamedTuple):
    """A page of rows, newest first, and the cursors of the pages newer (``after=``)
    and older (``before=``) than it, None where there are none."""

    rows: list[LogRow]
    newer: Cursor | None
    older: Cursor | None


_ROW_COLUMNS = tuple(getattr(RequestLog, name) for name in LogRow.__struct_fields__)


def aware(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes; every stored moment is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_Row = TypeVar("_Row", bound=LogRow)


def _read(row: Any, kind: type[_Row]) -> _Row:
    found = msgspec.convert(row, kind, from_attributes=True)
    found.created_at = aware(found.created_at)
    return found


async def log_page(
    engine: AsyncEngine,
    where: Mapping[str, str],
    *,
    before: Cursor | None = None,
    after: Cursor | None = None,
    size: int = PAGE_SIZE,
) -> LogPage:
    """The requests whose `FILTERS` columns equal ``where``'s values: the newest
    ``size``, or those just older than ``before``, or just newer than ``after``.

    The range conditions are written as ``created_at <= t AND (created_at < t OR id < i)``
    rather than a row-value comparison: both databases use any index on ``created_at``
    for the first term, and the order's tie-break on ``id`` only sorts equal times.
    """
    assert set(where) <= set(FILTERS), where
    at, row_id = RequestLog.created_at, RequestLog.id
    stmt = select(*_ROW_COLUMNS).where(*(getattr(RequestLog, k) == v for k, v in where.items()))
    if after is not None:
        t, i = after
        stmt = stmt.where(at >= t, or_(at > t, row_id > i)).order_by(at.asc(), row_id.asc())
    else:
        if before is not None:
            t, i = before
            stmt = stmt.where(at <= t, or_(at < t, row_id < i))
        stmt = stmt.order_by(at.desc(), row_id.desc())
    async with engine.connect() as conn:
        found = list((await conn.execute(stmt.limit(size + 1))).all())
    more = len(found) > size
    rows = [_read(r, LogRow) for r in found[:size]]
    if after is not None:
        rows.reverse()
    first = (rows[0].created_at, rows[0].id) if rows else None
    last = (rows[-1].created_at, rows[-1].id) if rows else None
    if after is not None:
        return LogPage(rows, first if more else None, last)
    if before is not None:
        return LogPage(rows, first, last if more else None)
    return LogPage(rows, None, last if more else None)


async def log_entry(engine: AsyncEngine, request_id: str) -> LogEntry | None:
    """The request ``request_id``, if it is logged."""
    async with engine.connect() as conn:
        found = (await conn.execute(select(RequestLog).where(RequestLog.id == request_id))).first()
    return None if found is None else _read(found, LogEntry)


async def any_logged(engine: AsyncEngine) -> bool:
    """Whether the log holds any request (one index probe)."""
    async with engine.connect() as conn:
        return (await conn.execute(select(RequestLog.id).limit(1))).first() is not None
