"""The request log: one `RequestLog` row per finished request, written off the hot path.

`RequestLogWriter.observe` is an `Observer`. When a request ends (``Done``: ``ok``;
``Failed``: ``partial`` if content was delivered, else ``failed``) it puts the final
event on a bounded queue with ``put_nowait`` and returns: serving never waits for the
database. A full queue drops the row and counts it.

A background task drains the queue in batches (``batch_size`` rows, or whatever arrived
within ``flush_interval_s`` of the first), one ``INSERT`` (executemany) per batch. While the
database is down the batch is retried with exponential backoff and new rows queue up
behind it, up to ``max_queue``. Inserts skip ids already present, so a retry after a
commit whose acknowledgement was lost writes nothing twice. A row the database rejects
(a constraint or a value it cannot store) is dropped and counted, not retried forever.

``aclose`` stops accepting rows and writes everything still queued, up to a deadline.
With ``retention_days`` set, rows older than that are pruned at start and every
``prune_interval_s``.

Timings come from the engine's record: ``latency_ms`` is when the last attempt ended and
``ttft_ms`` when the first content arrived, both since the request started in the engine;
``created_at`` is when it started (the wall clock when it ended, minus its latency).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from sqlalchemy import Insert, delete, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from providers.pricing import PriceBook
from router.events import Done, Event, Failed, RequestRecord
from server.observe.transcript import Transcript
from server.store.database import WRITE
from server.store.models import NAME_LENGTH, TARGET_LENGTH, RequestLog

__all__ = ["RequestLogWriter", "row_of"]

log = logging.getLogger("llmgate.request_log")

_Ended = tuple[Done | Failed, datetime, list[dict[str, Any]] | None, float | None]
"""A final event, the wall-clock time it was observed, the request's transcript and its
cost (at the prices of when it ended)."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RequestLogWriter:
    """Writes the request log in the background; see the module docstring.

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
        max_in_flight: int = 10_000,
        prices: Callable[[], PriceBook] | None = None,
        now: Callable[[], datetime] = _utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.engine = engine
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.retention_days = retention_days
        self.prune_interval_s = prune_interval_s
        self._now = now
        self._sleep = sleep
        self._queue: asyncio.Queue[_Ended] = asyncio.Queue(max_queue)
        self._drops = {"queue_full": 0, "rejected": 0, "shutdown": 0}
        self.written = 0
        """Rows the database took (one whose id it already had is skipped)."""
        self.write_errors = 0
        """Failed inserts, each retried."""
        self._accepted = 0
        self._settled = 0  # rows accepted that were since written or dropped
        self._in_flight = 0
        self._flushes = 0
        self._closing = False
        self._wake = asyncio.Event()
        self._progress = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self.keep_text = keep_text
        self._prices = prices
        self.max_in_flight = max_in_flight
        self._transcripts: dict[str, Transcript] = {}
        self.transcripts_evicted = 0
        """Requests whose transcript was dropped because ``max_in_flight`` requests were
        running at once (their row is still written, with ``transcript`` empty)."""

    @property
    def depth(self) -> int:
        """Rows waiting in the queue."""
        return self._queue.qsize()

    @property
    def dropped(self) -> int:
        """Rows that were never written: queue full, rejected, or left at shutdown."""
        return sum(self._drops.values())

    @property
    def drops(self) -> Mapping[str, int]:
        """`dropped` by reason: ``queue_full``, ``rejected``, ``shutdown``."""
        return dict(self._drops)

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
        if self._closing:
            self._drops["shutdown"] += 1
            return
        try:
            cost = self._prices().cost(last.record) if self._prices is not None else None
            self._queue.put_nowait((last, self._now(), transcript.segments(), cost))
        except asyncio.QueueFull:
            self._drops["queue_full"] += 1
            return
        self._accepted += 1
        size = self._queue.qsize()
        if size == 1 or size >= self.batch_size:
            self._wake.set()

    def start(self) -> None:
        """Start the background writer (and pruner); call inside the running loop."""
        if self._tasks:
            raise RuntimeError("the request log writer is already started")
        self._tasks.append(asyncio.create_task(self._drain(), name="request-log-writer"))
        if self.retention_days is not None:
            self._tasks.append(asyncio.create_task(self._prune_every(), name="request-log-prune"))

    async def flush(self) -> None:
        """Write everything queued now, without waiting for a full batch; returns once it
        is written (or dropped), however long the database takes to come back."""
        if not self._tasks or self._tasks[0].done():
            raise RuntimeError("the request log writer is not running")
        target = self._accepted
        self._flushes += 1
        self._wake.set()
        try:
            async with self._progress:
                await self._progress.wait_for(lambda: self._settled >= target)
        finally:
            self._flushes -= 1

    async def aclose(self, timeout_s: float = 10.0) -> None:
        """Stop accepting rows, write what is queued within ``timeout_s``, then stop.
        Rows still unwritten at the deadline are counted as dropped (``shutdown``)."""
        self._closing = True
        self._wake.set()
        if not self._tasks:
            return
        drain, *others = self._tasks
        for task in others:
            task.cancel()
        done, _ = await asyncio.wait([drain], timeout=timeout_s)
        if not done:
            drain.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        lost = self._in_flight + self._queue.qsize()
        if lost:
            log.warning("request log: %d rows not written before shutdown", lost)
            self._drops["shutdown"] += lost
            self._in_flight = 0
            while not self._queue.empty():
                self._queue.get_nowait()
        await self._settle(lost)  # and wake any `flush` still waiting

    async def __aenter__(self) -> RequestLogWriter:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def prune(self, retention_days: float) -> int:
        """Delete rows created more than ``retention_days`` ago; returns how many."""
        cutoff = self._now() - timedelta(days=retention_days)
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(**WRITE)
            async with conn.begin():
                result = await conn.execute(
                    delete(RequestLog).where(RequestLog.created_at < cutoff)
                )
        return result.rowcount

    # --- the background tasks ---------------------------------------------------------

    async def _drain(self) -> None:
        while await self._batch_ready():
            rows = [self._queue.get_nowait() for _ in range(min(self.depth, self.batch_size))]
            self._in_flight = len(rows)
            await self._write(rows)
            self._in_flight = 0
            await self._settle(len(rows))

    async def _batch_ready(self) -> bool:
        """Wait until a batch should be written; False once closing with nothing left."""
        while self._queue.empty():
            if self._closing:
                return False
            self._wake.clear()
            await self._wake.wait()
        if not self._urgent():
            try:
                async with asyncio.timeout(self.flush_interval_s):
                    while not self._urgent():
                        self._wake.clear()
                        await self._wake.wait()
            except TimeoutError:
                pass
        return True

    def _urgent(self) -> bool:
        return self._closing or self._flushes > 0 or self.depth >= self.batch_size

    async def _write(self, ended: list[_Ended]) -> None:
        """Insert the rows, retrying through outages; rows the database rejects are
        dropped one by one so that they cannot hold the others back."""
        rows = [row_of(*item) for item in ended]
        failures = 0
        while rows:
            try:
                try:
                    await self._insert(rows)
                    rows.clear()
                except Exception as exc:
                    if not _rows_fault(exc):
                        raise
                    await self._insert_each(rows)
            except Exception as exc:
                self.write_errors += 1
                if not failures:  # once per outage, not once per retry
                    log.warning("request log: write failed, retrying: %s", _describe(exc))
                await self._sleep(min(self.retry_initial_s * 2**failures, self.retry_max_s))
                failures += 1
        if failures:
            log.warning("request log: written again after %d failed tries", failures)

    async def _insert(self, rows: list[dict[str, Any]]) -> None:
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(**WRITE)
            async with conn.begin():
                await conn.execute(self._statement(), rows)
        self.written += len(rows)

    async def _insert_each(self, rows: list[dict[str, Any]]) -> None:
        """One row at a time, removing each from ``rows`` once written or rejected, so
        that a retry after an outage starts where this stopped."""
        while rows:
            try:
                await self._insert(rows[:1])
            except Exception as exc:
                if not _rows_fault(exc):
                    raise
                log.error("request log: dropped the row of %s: %s", rows[0]["id"], _describe(exc))
                self._drops["rejected"] += 1
            del rows[0]

    def _statement(self) -> Insert:
        match self.engine.dialect.name:
            case "postgresql":
                return postgresql.insert(RequestLog).on_conflict_do_nothing(index_elements=["id"])
            case "sqlite":
                return sqlite.insert(RequestLog).on_conflict_do_nothing(index_elements=["id"])
            case _:
                return insert(RequestLog)

    async def _settle(self, count: int) -> None:
        self._settled += count  # before any await: a cancelled writer still counts it
        async with self._progress:
            self._progress.notify_all()

    async def _prune_every(self) -> None:
        assert self.retention_days is not None
        while True:
            try:
                deleted = await self.prune(self.retention_days)
            except Exception as exc:
                log.warning("request log: pruning failed, will try again: %s", _describe(exc))
            else:
                if deleted:
                    log.info("request log: pruned %d rows", deleted)
            await self._sleep(self.prune_interval_s)


def _describe(exc: Exception) -> str:
    """The driver's error without SQLAlchemy's statement and parameters (whole rows)."""
    detail = exc.orig if isinstance(exc, DBAPIError) else exc
    return f"{type(detail).__name__}: {detail}"


def _rows_fault(exc: Exception) -> bool:
    """Whether the rows, not the database, are at fault, so that retrying them cannot
    help: a constraint, or a value the database cannot store (SQLSTATE classes 22 and
    23; asyncpg's errors reach SQLAlchemy as plain ``DBAPIError``s carrying them)."""
    if isinstance(exc, IntegrityError | DataError):
        return True
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return isinstance(code, str) and code[:2] in ("22", "23")


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
    }


def _latency_ms(record: RequestRecord) -> float:
    return max((a.start_ms + (a.duration_ms or 0.0) for a in record.attempts), default=0.0)


def _ttft_ms(record: RequestRecord) -> float | None:
    """When the first content reached the client: the first attempt that produced any
    (later attempts only ever continue what it started)."""
    for a in record.attempts:
        if a.ttft_ms is not None:
            return a.start_ms + a.ttft_ms
    return None
