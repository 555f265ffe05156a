"""Dashboard: the overview page, per route, over the last hour and the last day.

Everything is aggregated by the database in one query per window, grouped by route:
counts (``COUNT``, ``SUM(CASE ...)``), requests and errors per time bucket, and a
latency histogram over fixed bounds (``SUM(CASE WHEN latency_ms <= b ...)``), from which
p50 and p95 are interpolated. No row is sent to the process, so a day of millions of
requests costs one range scan. The fallback rate reads the number of attempts from the
stored record, the one expression that differs between the databases
(``json_array_length``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from litestar import get
from litestar.response import Template
from sqlalchemy import and_, case, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from server.dashboard.charts import bar_chart
from server.dashboard.common import Req, gateway, page, store
from server.dashboard.live import LiveFeed
from server.store.models import RequestLog

__all__ = ["HANDLERS", "LATENCY_BOUNDS_MS", "WINDOWS", "RouteStats", "Window", "window_stats"]

LATENCY_BOUNDS_MS = (
    *(25, 50, 100, 150, 200, 300, 400, 500, 750),
    *(1_000, 1_500, 2_000, 3_000, 4_000, 5_000, 7_500),
    *(10_000, 15_000, 20_000, 30_000, 45_000, 60_000, 120_000, 300_000),
)
"""Upper bounds of the latency histogram's buckets: p50 and p95 are exact to within
their bucket (the last one ends at the slowest request)."""

MAX_ROUTES = 50


class Window(NamedTuple):
    key: str
    label: str
    span: timedelta
    buckets: int


WINDOWS = (
    Window("hour", "Last hour", timedelta(hours=1), 12),
    Window("day", "Last 24 hours", timedelta(days=1), 24),
)


@dataclass
class RouteStats:
    """One route's (or all routes') requests in a window."""

    requests: int = 0
    errors: int = 0
    fallbacks: int | None = 0
    """Requests that needed more than one attempt; None if the database cannot tell."""
    cumulative: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BOUNDS_MS))
    """Requests no slower than each of `LATENCY_BOUNDS_MS`."""
    fastest_ms: float | None = None
    slowest_ms: float | None = None
    per_bucket: list[tuple[int, int]] = field(default_factory=list)
    """(requests, errors) per time bucket, oldest first."""

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def fallback_rate(self) -> float | None:
        if not self.requests or self.fallbacks is None:
            return None
        return self.fallbacks / self.requests

    @property
    def p50(self) -> float | None:
        return self.percentile(0.50)

    @property
    def p95(self) -> float | None:
        return self.percentile(0.95)

    def percentile(self, q: float) -> float | None:
        """Interpolated linearly inside the histogram bucket that holds it."""
        if not self.requests or self.fastest_ms is None or self.slowest_ms is None:
            return None
        rank = q * self.requests
        below, lower = 0, 0.0
        for bound, count in zip(LATENCY_BOUNDS_MS, self.cumulative, strict=True):
            if count >= rank:
                return self._clamp(lower + (rank - below) / (count - below) * (bound - lower))
            below, lower = count, float(bound)
        # Slower than every bound: between the last one and the slowest request.
        share = (rank - below) / (self.requests - below)
        return self._clamp(lower + share * (self.slowest_ms - lower))

    def _clamp(self, value: float) -> float:
        assert self.fastest_ms is not None and self.slowest_ms is not None
        return min(max(value, self.fastest_ms), self.slowest_ms)

    def add(self, other: RouteStats) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.fallbacks = (
            None
            if self.fallbacks is None or other.fallbacks is None
            else self.fallbacks + other.fallbacks
        )
        self.cumulative = [a + b for a, b in zip(self.cumulative, other.cumulative, strict=True)]
        self.fastest_ms = _pick(min, self.fastest_ms, other.fastest_ms)
        self.slowest_ms = _pick(max, self.slowest_ms, other.slowest_ms)
        if not self.per_bucket:
            self.per_bucket = [(0, 0)] * len(other.per_bucket)
        self.per_bucket = [
            (n + m, e + f) for (n, e), (m, f) in zip(self.per_bucket, other.per_bucket, strict=True)
        ]


def _pick(choose: Any, a: float | None, b: float | None) -> float | None:
    values = [v for v in (a, b) if v is not None]
    return choose(values) if values else None


def _count(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.sum(case((condition, 1), else_=0))


def _needed_fallback(dialect: str) -> ColumnElement[bool] | None:
    """More than one attempt, read from the stored record's JSON (``json`` on PostgreSQL,
    text on SQLite); None on a database whose JSON functions we do not know."""
    match dialect:
        case "sqlite":
            return func.json_array_length(RequestLog.record, "$.attempts") > 1
        case "postgresql":
            attempts: ColumnElement[Any] = literal_column(
                f"{RequestLog.__tablename__}.record -> 'attempts'"
            )
            return func.json_array_length(attempts) > 1
    return None


def bucket_starts(now: datetime, window: Window) -> list[datetime]:
    step = window.span / window.buckets
    since = now - window.span
    return [since + step * i for i in range(window.buckets)]


async def window_stats(engine: AsyncEngine, now: datetime, window: Window) -> dict[str, RouteStats]:
    """Each route's requests that started in ``window`` before ``now`` (the last time
    bucket also takes any stamped later, by a worker whose clock is ahead)."""
    at, latency, failed = RequestLog.created_at, RequestLog.latency_ms, RequestLog.status != "ok"
    starts = bucket_starts(now, window)
    fallback = _needed_fallback(engine.dialect.name)
    columns: list[Any] = [
        RequestLog.route,
        func.count().label("requests"),
        _count(failed).label("errors"),
        (_count(fallback) if fallback is not None else literal_column("NULL")).label("fallbacks"),
        func.min(latency).label("fastest"),
        func.max(latency).label("slowest"),
    ]
    columns += [_count(latency <= b).label(f"le{i}") for i, b in enumerate(LATENCY_BOUNDS_MS)]
    for i, start in enumerate(starts):
        inside = at >= start if i + 1 == len(starts) else and_(at >= start, at < starts[i + 1])
        columns += [_count(inside).label(f"n{i}"), _count(and_(inside, failed)).label(f"e{i}")]
    stmt = select(*columns).where(at >= starts[0]).group_by(RequestLog.route)
    async with engine.connect() as conn:
        result = await conn.execute(stmt)
        found = [row._mapping for row in result]
    return {
        row["route"]: RouteStats(
            requests=row["requests"],
            errors=int(row["errors"] or 0),
            fallbacks=None if row["fallbacks"] is None else int(row["fallbacks"]),
            cumulative=[int(row[f"le{i}"] or 0) for i in range(len(LATENCY_BOUNDS_MS))],
            fastest_ms=row["fastest"],
            slowest_ms=row["slowest"],
            per_bucket=[
                (int(row[f"n{i}"] or 0), int(row[f"e{i}"] or 0)) for i in range(len(starts))
            ],
        )
        for row in found
    }


async def _has_requests(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        return (await conn.execute(select(RequestLog.id).limit(1))).first() is not None


def _chart(stats: RouteStats, starts: Sequence[datetime], step: timedelta, **kw: Any) -> Any:
    fmt = "%H:%M" if step < timedelta(hours=1) else "%a %H:%M"
    bars = [
        (f"{s:{fmt}} to {s + step:%H:%M} UTC", n, e)
        for s, (n, e) in zip(starts, stats.per_bucket, strict=True)
    ]
    return bar_chart(bars, **kw)


async def window_view(
    engine: AsyncEngine, now: datetime, window: Window, configured: Sequence[str]
) -> dict[str, Any]:
    """A window's totals and routes, busiest first, with their charts."""
    by_route = await window_stats(engine, now, window)
    starts = bucket_starts(now, window)
    step = window.span / window.buckets
    total = RouteStats(per_bucket=[(0, 0)] * window.buckets)
    for stats in by_route.values():
        total.add(stats)
    ranked = sorted(by_route.items(), key=lambda kv: (-kv[1].requests, kv[0]))
    axis = (f"{starts[0]:%H:%M}", "now")
    return {
        "window": window,
        "total": total,
        "chart": _chart(total, starts, step, width=560, height=96, axis=axis, title=window.label),
        "routes": [
            (name, stats, _chart(stats, starts, step, width=180, height=28, title=name))
            for name, stats in ranked[:MAX_ROUTES]
        ],
        "more_routes": max(len(ranked) - MAX_ROUTES, 0),
        "idle": [name for name in configured if name not in by_route],
    }


@get("/", name="overview")
async def overview(request: Req) -> Template:
    feed: LiveFeed = request.app.state.live_feed
    policy_store = store(request)
    windows: list[dict[str, Any]] = []
    empty = True
    if policy_store is not None and await _has_requests(policy_store.engine):
        empty = False
        now = datetime.now(UTC)
        configured = sorted(gateway(request).table.routes)
        windows = [await window_view(policy_store.engine, now, w, configured) for w in WINDOWS]
    return page(
        request,
        "overview.html",
        "overview",
        feed=feed,
        has_log=policy_store is not None,
        empty=empty,
        windows=windows,
        bounds=LATENCY_BOUNDS_MS,
    )


HANDLERS: list[Any] = [overview]
