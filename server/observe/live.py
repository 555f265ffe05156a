"""The live request feed: the engine's events, as they happen, fanned out to dashboards.

`LiveFeed` is an `Observer`. It keeps a small `LiveRow` per running request (route,
current target, attempts, stream switches) and hands every change to the subscribed
dashboards, each through a bounded queue: a dashboard that cannot keep up loses its
queue (counted in `LiveFeed.lagged`) and is told to reload its table (`Subscriber.resync`);
it never slows a request down. With no dashboard open it only updates the rows.

A dashboard (`server.dashboard.live` serves it over server-sent events) first gets every
running request (`LiveFeed.first_rows`), so every later update finds its row; then each
change as `Subscriber.event_for` says: a new row, an update of one it shows, or nothing.
The feed is per process: with ``--workers N`` a dashboard sees the requests of the
worker serving its connection.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Literal, cast

import msgspec

from router.events import (
    AttemptFailed,
    AttemptStarted,
    Done,
    Event,
    Failed,
    Hedged,
    RequestRecord,
    Reset,
    StreamSwitch,
    SwitchRecord,
)
from server.store.request_log import LogRow

__all__ = ["LiveFeed", "LiveRow", "RowFilter", "Subscriber"]

Status = Literal["running", "ok", "partial", "failed"]


class LiveRow(msgspec.Struct, kw_only=True):
    """One request as the requests table shows it: a running one from the feed, or a
    finished one from the request log (`LiveRow.from_log`)."""

    id: str
    created_at: datetime
    route: str
    target: str | None = None
    status: Status = "running"
    attempts: int = 0
    failed_attempts: int = 0
    switches: list[SwitchRecord] = msgspec.field(default_factory=list)
    latency_ms: float | None = None
    ttft_ms: float | None = None
    total_tokens: int | None = None
    cost_usd: float | None = None
    error: str | None = None

    @classmethod
    def from_log(cls, row: LogRow) -> LiveRow:
        record = row.record
        attempts = record.get("attempts", [])
        return cls(
            id=row.id,
            created_at=row.created_at,
            route=row.route,
            target=row.target,
            status=row.status,
            attempts=len(attempts),
            failed_attempts=sum(1 for a in attempts if a.get("outcome") == "failed"),
            switches=[msgspec.convert(s, SwitchRecord) for s in record.get("switches", [])],
            latency_ms=row.latency_ms,
            ttft_ms=row.ttft_ms,
            total_tokens=row.total_tokens,
            cost_usd=row.cost_usd,
            error=row.error,
        )

    def copy(self) -> LiveRow:
        """A snapshot that later changes to this row leave as it is."""
        return msgspec.structs.replace(self, switches=list(self.switches))


class RowFilter(msgspec.Struct, frozen=True):
    """The requests table's filters; empty means any."""

    route: str = ""
    status: str = ""
    target: str = ""

    def matches(self, row: LiveRow) -> bool:
        return (
            (not self.route or row.route == self.route)
            and (not self.status or row.status == self.status)
            and (not self.target or row.target == self.target)
        )

    def admits(self, row: LiveRow) -> bool:
        """Whether a row not shown yet goes into the table: one that matches, or a
        running one when only its route is filtered on (its status and target are not
        final yet, so it is shown while it runs)."""
        return self.matches(row) or (
            row.status == "running"
            and not self.status
            and not self.target
            and (not self.route or row.route == self.route)
        )


class Subscriber:
    """One dashboard's view of the feed: its filter, its bounded queue (None in it
    means the feed closed), and the running rows it shows."""

    __slots__ = ("filter", "lagged", "queue", "shown")

    def __init__(self, row_filter: RowFilter, size: int) -> None:
        self.filter = row_filter
        self.queue: asyncio.Queue[LiveRow | None] = asyncio.Queue(size)
        self.shown: set[str] = set()
        self.lagged = False

    def event_for(self, row: LiveRow) -> Literal["row", "update"] | None:
        """How this dashboard shows ``row``: as a new row, as the new state of one it
        shows, or not at all. It keeps track of a row while the row runs."""
        if row.id in self.shown:
            kind: Literal["row", "update"] = "update"
        elif self.filter.admits(row):
            kind = "row"
        else:
            return None
        if row.status == "running":
            self.shown.add(row.id)
        else:
            self.shown.discard(row.id)
        return kind

    def resync(self) -> bool:
        """Whether this dashboard fell behind and has drained what it was given since:
        it then reloads its table and starts over (it shows no row of the feed)."""
        if not (self.lagged and self.queue.empty()):
            return False
        self.lagged = False
        self.shown.clear()
        return True


class LiveFeed:
    """See the module docstring. ``max_running`` bounds the rows kept for requests that
    never end (their oldest is evicted, counted in ``evicted``)."""

    def __init__(self, *, queue_size: int = 1000, max_running: int = 10_000) -> None:
        self.queue_size = queue_size
        self.max_running = max_running
        self.running: dict[str, LiveRow] = {}
        self._subscribers: set[Subscriber] = set()
        self.lagged = 0
        """Times a dashboard's queue was full and it was told to resync."""
        self.evicted = 0
        self._closed = False

    # --- the observer -------------------------------------------------------------------

    def started(self, record: RequestRecord) -> None:
        """A `Gateway.on_start` hook: the row appears as soon as the route is known."""
        if len(self.running) >= self.max_running:
            del self.running[next(iter(self.running))]
            self.evicted += 1
        row = self.running[record.request_id] = LiveRow(
            id=record.request_id, created_at=datetime.now(UTC), route=record.route
        )
        if self._subscribers:
            self._publish(row)

    def observe(self, request_id: str, batch: list[Event]) -> None:
        row = self.running.get(request_id)
        changed = False
        for event in batch:
            kind = type(event)
            if kind is AttemptStarted:
                assert isinstance(event, AttemptStarted)
                if row is None:  # started before the feed was attached
                    row = self.running[request_id] = LiveRow(
                        id=request_id, created_at=datetime.now(UTC), route=""
                    )
                row.attempts = event.attempt
                row.target = event.target
                changed = True
            elif row is None:
                continue
            elif kind is Hedged:  # its target shows once it answers (its AttemptStarted)
                row.attempts = cast(Hedged, event).attempt
                changed = True
            elif kind is AttemptFailed:
                assert isinstance(event, AttemptFailed)
                row.failed_attempts += 1
                row.error = f"{event.reason}: {event.message}"
                changed = True
            elif kind is StreamSwitch or kind is Reset:
                assert isinstance(event, StreamSwitch | Reset)
                row.switches.append(event.switch)  # never changed once made: shared, not copied
                changed = True
            elif kind is Done or kind is Failed:
                assert isinstance(event, Done | Failed)
                self._end(row, event)
                del self.running[request_id]
                changed = True
        if changed and row is not None and self._subscribers:
            self._publish(row)

    @staticmethod
    def _end(row: LiveRow, final: Done | Failed) -> None:
        record = final.record
        row.route = record.route
        row.attempts = len(record.attempts)
        row.failed_attempts = sum(1 for a in record.attempts if a.outcome == "failed")
        row.latency_ms = max(
            (a.start_ms + (a.duration_ms or 0.0) for a in record.attempts), default=0.0
        )
        row.ttft_ms = next(
            (a.start_ms + a.ttft_ms for a in record.attempts if a.ttft_ms is not None), None
        )
        row.total_tokens = final.usage.total_tokens
        row.created_at = datetime.now(UTC) - timedelta(milliseconds=row.latency_ms)
        if isinstance(final, Done):
            row.status, row.target, row.error = "ok", final.model, None
        else:
            row.status = "partial" if final.partial else "failed"
            row.error = f"{type(final.error).__name__}: {final.error}"

    def _publish(self, row: LiveRow) -> None:
        snapshot = row.copy()
        for sub in list(self._subscribers):
            if sub.lagged:
                continue
            try:
                sub.queue.put_nowait(snapshot)
            except asyncio.QueueFull:
                sub.lagged = True
                self.lagged += 1

    # --- the dashboards -----------------------------------------------------------------

    def subscribe(self, row_filter: RowFilter) -> Subscriber:
        sub = Subscriber(row_filter, self.queue_size)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        self._subscribers.discard(sub)

    def first_rows(self, sub: Subscriber) -> list[LiveRow]:
        """The running requests a dashboard that just subscribed starts with; it then
        shows them, so that their updates find their rows."""
        wanted = sub.filter
        if wanted.status and wanted.status != "running":
            return []
        rows = [
            r.copy()
            for r in self.running.values()
            if (not wanted.route or r.route == wanted.route)
            and (not wanted.target or r.target == wanted.target)
        ]
        sub.shown.update(r.id for r in rows)
        return rows

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def close(self) -> None:
        """Ends every open feed (at shutdown, so that no connection holds it up)."""
        self._closed = True
        for sub in self._subscribers:
            sub.queue._queue.clear()  # type: ignore[attr-defined]
            sub.queue.put_nowait(None)
