"""Aggregates of the request log: each route's traffic in a time window, and each API
key's spend.

Both are computed by the database, one query per window: no row is sent to the process,
so a day of millions of requests costs one range scan.

Per route (`route_stats`): counts (``COUNT``, ``SUM(CASE ...)``), requests and errors per
time bucket, and a latency histogram over fixed bounds (``SUM(CASE WHEN latency_ms <= b
...)``), from which `RouteStats` interpolates p50 and p95. The fallback rate reads the
number of attempts from the stored record, the one expression that differs between the
databases (``json_array_length``).

Per API key (`key_spend`): grouped by ``api_key_id``, the keys' ids in ``IN (...)`` and the
window as a ``created_at`` range make each key one range of the ``(api_key_id,
created_at)`` index on both databases. ``SUM(cost_usd)`` skips the requests without a
price (``cost_usd`` NULL), so ``COUNT(cost_usd)`` is counted too: a caller can say how
many were left out rather than show a cost that looks complete.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import ColumnElement

from server.store.models import RequestLog

__all__ = ["LATENCY_BOUNDS_MS", "RouteStats", "Spend", "key_spend", "route_stats", "spend_query"]

LATENCY_BOUNDS_MS = (
    *(25, 50, 100, 150, 200, 300, 400, 500, 750),
    *(1_000, 1_500, 2_000, 3_000, 4_000, 5_000, 7_500),
    *(10_000, 15_000, 20_000, 30_000, 45_000, 60_000, 120_000, 300_000),
)
"""Upper bounds of the latency histogram's buckets: p50 and p95 are exact to within
their bucket (the last one ends at the slowest request)."""


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


def _pick(choose: Callable[[list[float]], float], a: float | None, b: float | None) -> float | None:
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


async def route_stats(engine: AsyncEngine, starts: Sequence[datetime]) -> dict[str, RouteStats]:
    """Each route's requests that started since ``starts[0]``, with one time bucket per
    start (the last one also takes any stamped later than now, by a worker whose clock
    is ahead)."""
    at, latency, failed = RequestLog.created_at, RequestLog.latency_ms, RequestLog.status != "ok"
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
        found = [row._mapping for row in await conn.execute(stmt)]
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


# --- spend by API key ------------------------------------------------------------------


@dataclass
class Spend:
    """One key's requests in one window."""

    requests: int = 0
    priced: int = 0
    """Requests with a cost (the others had no price and are not in ``cost``)."""
    tokens: int = 0
    cost: float | None = None
    """USD of the priced requests; None when none of them had a price."""

    @property
    def unpriced(self) -> int:
        return self.requests - self.priced


def spend_query(
    key_ids: Sequence[str], start: datetime, end: datetime
) -> Select[str | None, int, int, int, float | None]:
    """Each key's requests, tokens, cost and priced requests in ``[start, end)``."""
    log = RequestLog
    return (
        select(
            log.api_key_id,
            func.count().label("requests"),
            func.count(log.cost_usd).label("priced"),
            func.sum(log.total_tokens).label("tokens"),
            func.sum(log.cost_usd).label("cost"),
        )
        .where(log.api_key_id.in_(list(key_ids)), log.created_at >= start, log.created_at < end)
        .group_by(log.api_key_id)
    )


async def key_spend(
    engine: AsyncEngine, key_ids: Sequence[str], start: datetime, end: datetime
) -> dict[str, Spend]:
    """`spend_query`, by key id (a key without requests is not in it)."""
    if not key_ids:
        return {}
    async with engine.connect() as conn:
        rows = (await conn.execute(spend_query(key_ids, start, end))).all()
    return {
        row.api_key_id: Spend(
            requests=int(row.requests),
            priced=int(row.priced),
            tokens=int(row.tokens or 0),
            cost=None if row.cost is None else float(row.cost),
        )
        for row in rows
    }
