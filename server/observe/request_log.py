"""The request log: one `RequestLog` row per finished request, written off the hot path.

`RequestLogWriter.observe` is an `Observer`. When a request ends (``Done``: ``ok``;
``Failed``: ``partial`` if content was delivered, else ``failed``) it queues the final
event and returns: serving never waits for the database. The queue, the batches, the
retries through outages and the counted drops are `server.store.batch_writer`'s. With
``retention_days`` set, rows older than that are pruned at start and every
``prune_interval_s``.

Timings come from the engine's record: ``latency_ms`` is when the last attempt ended and
``ttft_ms`` when the first content arrived, both since the request started in the engine;
``created_at`` is when it started (the wall clock when it ended, minus its latency).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from providers.pricing import PriceBook
from router.events import Done, Event, Failed, RequestRecord
from server.observe.transcript import Transcript
from server.store.batch_writer import BatchWriter
from server.store.models import NAME_LENGTH, TARGET_LENGTH, RequestLog

__all__ = ["RequestLogWriter", "row_of"]

log = logging.getLogger("llmgate.request_log")

_Ended = tuple[Done | Failed, datetime, list[dict[str, Any]] | None, float | None]
"""A final event, the wall-clock time it was observed, the request's transcript and its
cost (at the prices of when it ended)."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RequestLogWriter(BatchWriter[_Ended]):
    """Writes the request log in the background; see the module docstring and
    `server.store.batch_writer` (the queue, batches, retries, drops and pruning).

    ``now`` (wall clock, for ``created_at`` and pruning) and ``sleep`` (retry backoff and
    the prune period) are arguments so that tests need not wait for real time.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_queue: int = 10_000,
        batch_size: int = 500,
        flush_interval_s: float = 1.0,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        retention_days: float | None = None,
        prune_interval_s: float = 3600.0,
        keep_text: bool = True,
        max_mb: float | None = None,
        max_in_flight: int = 10_000,
        trim_every: int = 1000,
        prices: Callable[[], PriceBook] | None = None,
        now: Callable[[], datetime] = _utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(
            engine,
            RequestLog,
            "request log",
            max_queue=max_queue,
            batch_size=batch_size,
            flush_interval_s=flush_interval_s,
            retry_initial_s=retry_initial_s,
            retry_max_s=retry_max_s,
            prune_interval_s=prune_interval_s,
            trim_every=trim_every,
            now=now,
            sleep=sleep,
        )
        self.retention_days = retention_days
        self.max_mb = max_mb
        self.keep_text = keep_text
        self._prices = prices
        self.max_in_flight = max_in_flight
        self._transcripts: dict[str, Transcript] = {}
        self.transcripts_evicted = 0
        """Requests whose transcript was dropped because ``max_in_flight`` requests were
        running at once (their row is still written, with ``transcript`` empty)."""

    def observe(self, request_id: str, batch: list[Event]) -> None:
        """The `Observer`: queues the row of a request that ended; never waits."""
        if not batch:
            return
        transcripts = self._transcripts
        transcript = transcripts.get(request_id)
        if transcript is None:
            if len(transcripts) >= self.max_in_flight:  # requests that never ended
                del transcripts[next(iter(transcripts))]
                self.transcripts_evicted += 1
            transcript = transcripts[request_id] = Transcript(keep_text=self.keep_text)
        transcript.add(batch)
        last = batch[-1]
        if type(last) is not Done and type(last) is not Failed:
            return
        del transcripts[request_id]
        cost = self._prices().cost(last.record) if self._prices is not None else None
        self.put((last, self._now(), transcript.segments(), cost))

    def to_row(self, item: _Ended) -> dict[str, Any]:
        return row_of(*item)

    def expired(self, now: datetime) -> ColumnElement[bool] | None:
        if self.retention_days is None:
            return None
        return RequestLog.created_at < now - timedelta(days=self.retention_days)

    async def trim(self) -> int:
        """With ``max_mb``, delete the oldest rows past it (by each row's ``size_bytes``)."""
        if self.max_mb is None:
            return 0
        cap = int(self.max_mb * 1024 * 1024)
        size = func.coalesce(RequestLog.size_bytes, 0)
        async with self.engine.connect() as conn:
            total = (await conn.execute(select(func.coalesce(func.sum(size), 0)))).scalar_one()
        if total <= cap:
            return 0
        newest_first = (RequestLog.created_at.desc(), RequestLog.id.desc())
        kept = select(RequestLog.id, func.sum(size).over(order_by=newest_first).label("kept"))
        over = kept.subquery()
        return await self.delete_where(
            RequestLog.id.in_(select(over.c.id).where(over.c.kept > cap))
        )

    async def prune(self, retention_days: float) -> int:
        """Delete rows created more than ``retention_days`` ago; returns how many."""
        cutoff = self._now() - timedelta(days=retention_days)
        return await self.delete_where(RequestLog.created_at < cutoff)


def row_of(
    final: Done | Failed,
    ended_at: datetime,
    transcript: list[dict[str, Any]] | None = None,
    cost_usd: float | None = None,
) -> dict[str, Any]:
    """The `RequestLog` row of a request that ended at ``ended_at``."""
    record = final.record
    latency_ms = _latency_ms(record)
    status, target, error = "ok", record.attempts[-1].target if record.attempts else None, None
    match final:
        case Done(model=model):
            target = model
        case Failed(error=exc, partial=partial):
            status = "partial" if partial else "failed"
            error = f"{type(exc).__name__}: {exc}"
    return {
        "id": record.request_id,
        "created_at": ended_at - timedelta(milliseconds=latency_ms),
        # A client may name any provider/model directly; such a route is that name.
        "route": record.route[:NAME_LENGTH],
        "target": target[:TARGET_LENGTH] if target else target,
        "status": status,
        "latency_ms": latency_ms,
        "ttft_ms": _ttft_ms(record),
        "prompt_tokens": final.usage.prompt_tokens,
        "completion_tokens": final.usage.completion_tokens,
        "total_tokens": final.usage.total_tokens,
        "cost_usd": cost_usd,
        "error": error,
        "record": msgspec.to_builtins(record),
        "transcript": transcript,
        "api_key_id": record.client,
        "size_bytes": _ROW_BYTES
        + len(_encode(record))
        + (len(_encode(transcript)) if transcript else 0),
    }


_encode = msgspec.json.Encoder().encode
_ROW_BYTES = 256
"""A row's columns besides its record and transcript, and the indexes' share, about."""


def _latency_ms(record: RequestRecord) -> float:
    return max((a.start_ms + (a.duration_ms or 0.0) for a in record.attempts), default=0.0)


def _ttft_ms(record: RequestRecord) -> float | None:
    """When the first content reached the client: the first attempt that produced any
    (later attempts only ever continue what it started)."""
    for a in record.attempts:
        if a.ttft_ms is not None:
            return a.start_ms + a.ttft_ms
    return None
