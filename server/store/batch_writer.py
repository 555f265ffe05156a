"""Rows of one table written off the hot path, in batches, through outages.

`BatchWriter.put` queues an item on a bounded queue and returns: serving never waits for
the database. A full queue drops the item and counts it (``queue_full``).

A background task drains the queue in batches (``batch_size`` items, or whatever arrived
within ``flush_interval_s`` of the first), one ``INSERT`` (executemany) per batch, each
item turned into its row (`BatchWriter.to_row`) only then, off the request's path. While
the database is down the batch is retried with exponential backoff and new items queue
up behind it, up to ``max_queue``. Inserts skip ids already present, so a retry after a
commit whose acknowledgement was lost writes nothing twice. A row the database rejects
(a constraint or a value it cannot store) is dropped and counted (``rejected``), not
retried forever.

``aclose`` stops accepting items and writes everything still queued, up to a deadline;
what is left then is counted (``shutdown``). A writer whose `expired` names old rows
deletes them at start and every ``prune_interval_s``.

The request log (`server.observe.request_log`) and the stored Responses API responses
(`server.store.responses`) are written this way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Insert, delete, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from server.store.database import WRITE
from server.store.models import Base

__all__ = ["BatchWriter", "describe_error"]

log = logging.getLogger("llmgate.store")
T = TypeVar("T")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class BatchWriter(Generic[T]):
    """Writes items of type ``T`` as rows of ``table`` (its primary key ``id``); see the
    module docstring. A subclass says how an item becomes a row (`to_row`) and, to be
    pruned, which rows are old (`expired`).

    ``now`` (wall clock, for pruning) and ``sleep`` (retry backoff and the prune period)
    are arguments so that tests need not wait for real time.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        table: type[Base],
        name: str,
        *,
        max_queue: int = 10_000,
        batch_size: int = 500,
        flush_interval_s: float = 1.0,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        prune_interval_s: float = 3600.0,
        trim_every: int = 1000,
        now: Callable[[], datetime] = _utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.engine = engine
        self.table = table
        self.name = name
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.prune_interval_s = prune_interval_s
        self.trim_every = trim_every
        self._trimmed_at = 0
        self._now = now
        self._sleep = sleep
        self._queue: asyncio.Queue[T] = asyncio.Queue(max_queue)
        self._drops = {"queue_full": 0, "rejected": 0, "shutdown": 0}
        self.written = 0
        """Rows the database took (one whose id it already had is skipped)."""
        self.write_errors = 0
        """Failed inserts, each retried."""
        self._accepted = 0
        self._settled = 0  # items accepted that were since written or dropped
        self._in_flight = 0
        self._flushes = 0
        self._closing = False
        self._wake = asyncio.Event()
        self._progress = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []

    # --- what a subclass says ---------------------------------------------------------

    def to_row(self, item: T) -> dict[str, Any]:
        """The row of ``item`` (called by the background writer)."""
        raise NotImplementedError

    def expired(self, now: datetime) -> ColumnElement[bool] | None:
        """Which rows are old enough to delete at ``now``; None: never prune."""
        return None

    def settled(self, items: list[T]) -> None:
        """``items`` were written, or dropped: they are no longer waiting."""

    async def trim(self) -> int:
        """Delete rows past a size limit, if the table has one; how many. Called after
        every ``trim_every`` rows written, and with each pruning."""
        return 0

    # --- the interface ----------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Items waiting in the queue."""
        return self._queue.qsize()

    @property
    def dropped(self) -> int:
        """Items never written: queue full, rejected, or left at shutdown."""
        return sum(self._drops.values())

    @property
    def drops(self) -> Mapping[str, int]:
        """`dropped` by reason: ``queue_full``, ``rejected``, ``shutdown``."""
        return dict(self._drops)

    def put(self, item: T) -> bool:
        """Queue ``item`` without waiting; False if it was dropped (and counted)."""
        if self._closing:
            self._drops["shutdown"] += 1
            return False
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self._drops["queue_full"] += 1
            return False
        self._accepted += 1
        size = self._queue.qsize()
        if size == 1 or size >= self.batch_size:
            self._wake.set()
        return True

    def start(self) -> None:
        """Start the background writer (and pruner); call inside the running loop."""
        if self._tasks:
            raise RuntimeError(f"the {self.name} writer is already started")
        self._tasks.append(asyncio.create_task(self._drain(), name=f"{self.name} writer"))
        if self.expired(self._now()) is not None:
            self._tasks.append(asyncio.create_task(self._prune_every(), name=f"{self.name} prune"))

    async def flush(self) -> None:
        """Write everything queued now, without waiting for a full batch; returns once it
        is written (or dropped), however long the database takes to come back."""
        if not self._tasks or self._tasks[0].done():
            raise RuntimeError(f"the {self.name} writer is not running")
        target = self._accepted
        self._flushes += 1
        self._wake.set()
        try:
            async with self._progress:
                await self._progress.wait_for(lambda: self._settled >= target)
        finally:
            self._flushes -= 1

    async def aclose(self, timeout_s: float = 10.0) -> None:
        """Stop accepting items, write what is queued within ``timeout_s``, then stop.
        Items still unwritten at the deadline are counted as dropped (``shutdown``)."""
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
            log.warning("%s: %d rows not written before shutdown", self.name, lost)
            self._drops["shutdown"] += lost
            self._in_flight = 0
            left = [self._queue.get_nowait() for _ in range(self._queue.qsize())]
            self.settled(left)
        await self._settle(lost)  # and wake any `flush` still waiting

    async def __aenter__(self) -> BatchWriter[T]:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def delete_where(self, condition: ColumnElement[bool]) -> int:
        """Delete the rows ``condition`` names; returns how many."""
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(**WRITE)
            async with conn.begin():
                result = await conn.execute(delete(self.table).where(condition))
        return result.rowcount

    # --- the background tasks ---------------------------------------------------------

    async def _drain(self) -> None:
        while await self._batch_ready():
            items = [self._queue.get_nowait() for _ in range(min(self.depth, self.batch_size))]
            self._in_flight = len(items)
            await self._write([self.to_row(item) for item in items])
            self._in_flight = 0
            self.settled(items)
            await self._settle(len(items))
            if self.written - self._trimmed_at >= self.trim_every:
                self._trimmed_at = self.written
                await self._trim()

    async def _trim(self) -> None:
        try:
            deleted = await self.trim()
        except Exception as exc:
            log.warning("%s: trimming failed, will try again: %s", self.name, describe_error(exc))
        else:
            if deleted:
                log.info("%s: deleted the %d oldest rows (size limit)", self.name, deleted)

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

    async def _write(self, rows: list[dict[str, Any]]) -> None:
        """Insert the rows, retrying through outages; rows the database rejects are
        dropped one by one so that they cannot hold the others back."""
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
                    log.warning("%s: write failed, retrying: %s", self.name, describe_error(exc))
                await self._sleep(min(self.retry_initial_s * 2**failures, self.retry_max_s))
                failures += 1
        if failures:
            log.warning("%s: written again after %d failed tries", self.name, failures)

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
                log.error(
                    "%s: dropped the row of %s: %s", self.name, rows[0]["id"], describe_error(exc)
                )
                self._drops["rejected"] += 1
            del rows[0]

    def _statement(self) -> Insert:
        match self.engine.dialect.name:
            case "postgresql":
                return postgresql.insert(self.table).on_conflict_do_nothing(index_elements=["id"])
            case "sqlite":
                return sqlite.insert(self.table).on_conflict_do_nothing(index_elements=["id"])
            case _:
                return insert(self.table)

    async def _settle(self, count: int) -> None:
        self._settled += count  # before any await: a cancelled writer still counts it
        async with self._progress:
            self._progress.notify_all()

    async def _prune_every(self) -> None:
        while True:
            condition = self.expired(self._now())
            try:
                deleted = await self.delete_where(condition) if condition is not None else 0
            except Exception as exc:
                log.warning(
                    "%s: pruning failed, will try again: %s", self.name, describe_error(exc)
                )
            else:
                if deleted:
                    log.info("%s: pruned %d rows", self.name, deleted)
            await self._trim()
            await self._sleep(self.prune_interval_s)


def describe_error(exc: Exception) -> str:
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
