"""The live request feed: the engine's events, as they happen, over server-sent events.

`LiveFeed` is an `Observer`. It keeps a small `LiveRow` per running request (route,
current target, attempts, stream switches) and hands every change to the subscribed
dashboards, each through a bounded queue: a dashboard that cannot keep up loses its
queue (counted in `LiveFeed.lagged`) and is told to reload its table (``resync``); it
never slows a request down. With no dashboard open it only updates the rows.

``GET /admin/live/requests`` is the SSE endpoint the requests table connects to with
htmx's SSE extension (``sse-connect``). Its events carry rendered ``<tr>``s:

- ``row``: a request this page has not shown yet, to put at the top of the table;
- ``update``: a new state of a row the page already shows, swapped in by its id
  (``hx-swap-oob``);
- ``resync``: the page fell behind; it reloads the table.

When it connects, a page first gets every running request (each as ``row``), so every
later ``update`` finds its row. The feed is per process: with ``--workers N`` a page
sees the requests of the worker serving its connection live, and every request in the
table once it is logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import msgspec
from litestar import get
from litestar.response import ServerSentEvent, ServerSentEventMessage

from router.events import (
    AttemptFailed,
    AttemptStarted,
    Done,
    Event,
    Failed,
    RequestRecord,
    Reset,
    StreamSwitch,
)
from server.dashboard.common import Req

__all__ = ["HANDLERS", "LiveFeed", "LiveRow", "RowFilter"]

Status = Literal["running", "ok", "partial", "failed"]


class SwitchView(msgspec.Struct, frozen=True):
    from_target: str
    to_target: str
    mode: str
    reason: str
    chars_delivered: int
    trimmed_chars: int = 0
    reset: bool = False


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
    switches: list[SwitchView] = msgspec.field(default_factory=list)
    latency_ms: float | None = None
    ttft_ms: float | None = None
    total_tokens: int | None = None
    cost_usd: float | None = None
    error: str | None = None

    @classmethod
    def from_log(cls, row: Any) -> LiveRow:
        """From a `server.store.models.RequestLog` row (or anything with its columns)."""
        record = row.record or {}
        attempts = record.get("attempts", [])
        return cls(
            id=row.id,
            created_at=row.created_at,
            route=row.route,
            target=row.target,
            status=row.status,
            attempts=len(attempts),
            failed_attempts=sum(1 for a in attempts if a.get("outcome") == "failed"),
            switches=[msgspec.convert(s, SwitchView) for s in record.get("switches", [])],
            latency_ms=row.latency_ms,
            ttft_ms=row.ttft_ms,
            total_tokens=row.total_tokens,
            cost_usd=row.cost_usd,
            error=row.error,
        )


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


class _Subscriber:
    __slots__ = ("filter", "lagged", "queue", "shown")

    def __init__(self, row_filter: RowFilter, size: int) -> None:
        self.filter = row_filter
        self.queue: asyncio.Queue[LiveRow | None] = asyncio.Queue(size)
        self.shown: set[str] = set()
        self.lagged = False


class LiveFeed:
    """See the module docstring. ``max_running`` bounds the rows kept for requests that
    never end (their oldest is evicted, counted in ``evicted``)."""

    def __init__(self, *, queue_size: int = 1000, max_running: int = 10_000) -> None:
        self.queue_size = queue_size
        self.max_running = max_running
        self.running: dict[str, LiveRow] = {}
        self._subscribers: set[_Subscriber] = set()
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
            elif kind is AttemptFailed:
                assert isinstance(event, AttemptFailed)
                row.failed_attempts += 1
                row.error = f"{event.reason}: {event.message}"
                changed = True
            elif kind is StreamSwitch or kind is Reset:
                assert isinstance(event, StreamSwitch | Reset)
                row.switches.append(msgspec.convert(msgspec.to_builtins(event.switch), SwitchView))
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
        snapshot = msgspec.structs.replace(row, switches=list(row.switches))
        for sub in list(self._subscribers):
            if sub.lagged:
                continue
            try:
                sub.queue.put_nowait(snapshot)
            except asyncio.QueueFull:
                sub.lagged = True
                self.lagged += 1

    # --- the dashboards -----------------------------------------------------------------

    def subscribe(self, row_filter: RowFilter) -> _Subscriber:
        sub = _Subscriber(row_filter, self.queue_size)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: _Subscriber) -> None:
        self._subscribers.discard(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def close(self) -> None:
        """Ends every open feed (at shutdown, so that no connection holds it up)."""
        self._closed = True
        for sub in self._subscribers:
            sub.queue._queue.clear()  # type: ignore[attr-defined]
            sub.queue.put_nowait(None)


async def _events(
    request: Req, feed: LiveFeed, row_filter: RowFilter, heartbeat_s: float
) -> AsyncIterator[ServerSentEventMessage]:
    """Subscribes when the response starts streaming, inside the ``try`` whose
    ``finally`` unsubscribes: a connection that drops before then leaves nothing."""
    template = request.app.template_engine.get_template("_request_row.html")  # type: ignore[union-attr]

    def render(row: LiveRow, event: str) -> ServerSentEventMessage:
        html = template.render(row=row, oob=event == "update")
        return ServerSentEventMessage(data=html.replace("\n", " "), event=event)

    sub = feed.subscribe(row_filter)
    try:
        for first in _initial(feed, sub.filter):
            sub.shown.add(first.id)
            yield render(first, "row")
        while True:
            try:
                async with asyncio.timeout(heartbeat_s):
                    item = await sub.queue.get()
            except TimeoutError:
                yield ServerSentEventMessage(comment="keep-alive")
                continue
            if item is None:
                return
            row = item
            if sub.lagged and sub.queue.empty():
                sub.lagged = False
                sub.shown.clear()
                yield ServerSentEventMessage(data="resync", event="resync")
                continue
            seen = row.id in sub.shown
            if seen:
                yield render(row, "update")
            elif sub.filter.matches(row) or (
                row.status == "running"
                and not sub.filter.status
                and not sub.filter.target
                and (not sub.filter.route or row.route == sub.filter.route)
            ):
                yield render(row, "row")
            else:
                continue
            if row.status == "running":
                sub.shown.add(row.id)
            else:
                sub.shown.discard(row.id)
    finally:
        feed.unsubscribe(sub)


def _initial(feed: LiveFeed, row_filter: RowFilter) -> Iterable[LiveRow]:
    if row_filter.status and row_filter.status != "running":
        return []
    return [
        msgspec.structs.replace(r, switches=list(r.switches))
        for r in feed.running.values()
        if (not row_filter.route or r.route == row_filter.route)
        and (not row_filter.target or r.target == row_filter.target)
    ]


@get("/live/requests")
async def live_requests(request: Req) -> ServerSentEvent:
    """The requests table's feed, filtered by ``?route=&status=&target=``."""
    feed: LiveFeed = request.app.state.live_feed
    q = request.query_params
    row_filter = RowFilter(q.get("route", ""), q.get("status", ""), q.get("target", ""))
    heartbeat = float(request.app.state.live_heartbeat_s)
    return ServerSentEvent(
        _events(request, feed, row_filter, heartbeat),
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


HANDLERS: list[Any] = [live_requests]
