"""Budgets, enforced across every process that shares the database.

Each limit of a `router.policy.Budget` (a route's, or an API key's) is a counter per
calendar window in the ``budget_counters`` table. Every kind of limit works the same
way, by *leases*, which keeps the database off the common path without letting several
processes together exceed a limit:

- A process takes a block of a window's remaining headroom in one short transaction
  (the row locked: ``FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) and
  admits requests from it in memory. A block is a tenth of what remains (requests: at
  most `MAX_LEASE`), so far from the limit one round trip serves many requests, and near
  it every admission takes one request's worth at a time.
- Requests are taken from the lease when admitted. Tokens and spend are known only when
  a request ends: a request is admitted while the lease has headroom left, and its use
  is taken from the lease when it ends. Use beyond the lease (the request that crossed
  the limit) is written back as debt. So no more requests than the limit are admitted,
  and a token or USD limit is overshot at most by the requests already admitted when it
  was reached, however the requests are spread over the processes.
- Headroom leased and not used is handed back when the process stops, and expires with
  its window. ``used`` in the table is therefore what was spent or is leased.

Counters live in the database, so they survive restarts. A refusal names the budget and
when its window resets (``Retry-After``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from providers.pricing import PriceBook
from router.events import Done, Event, Failed
from router.policy import Budget
from router.table import ResolvedRoute
from server.errors import BudgetExceeded
from server.store.database import WRITE
from server.store.keys import KeyStore
from server.store.models import BudgetCounter

__all__ = ["BudgetGate", "Limit", "budget_report", "limits_of", "window_of"]

log = logging.getLogger("llmgate.budgets")

FLUSH_S = 1.0
MAX_LEASE = 100
MAX_PENDING = 100_000
"""Requests admitted under a token or USD limit and not yet ended that are remembered;
beyond that the oldest (a request admitted and then never run) is forgotten."""


def window_of(period: str, now: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The calendar window of ``period`` containing ``now``, in ``zone``: (start, end)."""
    local = now.astimezone(zone)
    match period:
        case "minute":
            start = local.replace(second=0, microsecond=0)
            return start, (start.astimezone(UTC) + timedelta(minutes=1)).astimezone(zone)
        case "hour":
            start = local.replace(minute=0, second=0, microsecond=0)
            return start, (start.astimezone(UTC) + timedelta(hours=1)).astimezone(zone)
        case "day":
            start = local.replace(hour=0, minute=0, second=0, microsecond=0)
            nxt = start.date() + timedelta(days=1)
            return start, datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone)
        case "month":
            start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            year, month = (
                (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
            )
            return start, datetime(year, month, 1, tzinfo=zone)
    raise ValueError(f"unknown period {period!r}")


PERIOD_S = {"minute": 60, "hour": 3600, "day": 86_400, "month": 30 * 86_400}
"""A rolling window's length (a rolling month is 30 days)."""
SLICES = 60
"""A rolling window is counted in this many slices, the oldest dropping out as time
passes: its use is the sum of the slices of the last period."""


class Limit:
    """One limit of one budget, for one scope (``route:chat``, ``key:key_ab12``)."""

    __slots__ = ("label", "limit", "metric", "period", "rolling", "scope", "zone")

    def __init__(
        self,
        scope: str,
        label: str,
        metric: str,
        period: str,
        limit: float,
        zone: ZoneInfo,
        rolling: bool = False,
    ) -> None:
        self.scope = scope
        self.label = label
        self.metric = metric
        self.period = period
        self.limit = limit
        self.zone = zone
        self.rolling = rolling

    @property
    def stored_period(self) -> str:
        """The ``period`` of its rows: a rolling window's slices are ``rolling_hour``."""
        return f"rolling_{self.period}" if self.rolling else self.period

    def window(self, now: float) -> tuple[float, float]:
        """The counter row's span at ``now``: the calendar window, or the current slice
        of a rolling one."""
        if self.rolling:
            size = PERIOD_S[self.period] / SLICES
            start = math.floor(now / size) * size
            return start, start + size
        first, last = window_of(self.period, datetime.fromtimestamp(now, UTC), self.zone)
        return first.timestamp(), last.timestamp()


def limits_of(scope: str, label: str, budget: Budget | None) -> list[Limit]:
    if budget is None:
        return []
    zone = ZoneInfo(budget.timezone)
    rolling = budget.window == "rolling"
    return [Limit(scope, label, m, p, v, zone, rolling) for m, p, v in budget.limits()]


class _Counter:
    """A process's lease on one counter in one window."""

    __slots__ = ("end", "lease", "lock", "retry_at", "start")

    def __init__(self, start: int, end: float) -> None:
        self.start = start
        self.end = end
        self.retry_at = end
        """When a refused request may try again: the window's end, or for a rolling
        window when its oldest use drops out."""
        self.lease = 0.0
        """Headroom leased and not yet used; negative: use beyond it, owed to the table."""
        self.lock = asyncio.Lock()


Key = tuple[str, str, str, int]


class BudgetGate:
    """Admission (`admit`) and accounting (`observe`, an `Observer`) of budgets."""

    def __init__(
        self,
        engine: AsyncEngine,
        prices: Callable[[], PriceBook],
        *,
        clock: Callable[[], float] = time.time,
        flush_s: float = FLUSH_S,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.engine = engine
        self._prices = prices
        self._clock = clock
        self.flush_s = flush_s
        self._counters: dict[Key, _Counter] = {}
        self._charges: dict[str, list[tuple[Key, Limit]]] = {}
        self._task: asyncio.Task[None] | None = None
        self.max_pending = max_pending
        self.forgotten = 0
        """Admitted requests forgotten beyond `MAX_PENDING`, their use never counted."""
        self.round_trips = 0
        """Database statements issued by admissions (for tests and the benchmark)."""

    # --- admission ----------------------------------------------------------------------

    async def admit(self, request_id: str, limits: Sequence[Limit]) -> None:
        """Admit a request under every limit in ``limits`` or raise `BudgetExceeded`
        for the first one it would exceed (nothing is then counted)."""
        if not limits:
            return
        now = self._clock()
        taken: list[_Counter] = []
        charges: list[tuple[Key, Limit]] = []
        try:
            for lim in limits:
                key, counter = self._counter(lim, now)
                if not await self._headroom(key, counter, lim):
                    raise self._refusal(lim, counter, now)
                if lim.metric == "requests":
                    counter.lease -= 1
                    taken.append(counter)
                else:
                    charges.append((key, lim))
        except BudgetExceeded:
            for counter in taken:  # give back what this request took
                counter.lease += 1
            raise
        if charges:
            if len(self._charges) >= self.max_pending:  # admitted, then never run: forget
                del self._charges[next(iter(self._charges))]
                self.forgotten += 1
            self._charges[request_id] = charges

    def _counter(self, lim: Limit, now: float) -> tuple[Key, _Counter]:
        start, end = lim.window(now)
        key = (lim.scope, lim.metric, lim.stored_period, int(start))
        counter = self._counters.get(key)
        if counter is None:  # a new window, or a rolling window's new slice: no lease yet
            counter = self._counters[key] = _Counter(key[3], end)
        return key, counter

    async def _headroom(self, key: Key, counter: _Counter, lim: Limit) -> bool:
        """Whether the lease has room for one more request, leasing more if not."""
        need = 1.0 if lim.metric == "requests" else 0.0
        if counter.lease - need >= 0 and counter.lease > 0:
            return True
        async with counter.lock:
            if counter.lease - need >= 0 and counter.lease > 0:  # leased meanwhile
                return True
            granted = await self._lease(key, lim, counter)  # settles the debt first
            counter.lease += granted
            return counter.lease - need >= 0 and counter.lease > 0

    async def _lease(self, key: Key, lim: Limit, counter: _Counter) -> float:
        """Settle the counter's debt and lease a block of what remains (0 if none)."""
        debt = max(-counter.lease, 0.0)
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(**WRITE)
            async with conn.begin():
                self.round_trips += 1
                await conn.execute(_insert_missing(conn, key))
                row = await conn.execute(
                    select(BudgetCounter.used).where(*_pk(key)).with_for_update()
                )
                here = float(row.scalar_one()) + debt  # this row: the window, or its slice
                used = here
                if lim.rolling:  # and the earlier slices still inside the window
                    used += await self._earlier_slices(conn, key, lim, counter)
                remaining = lim.limit - used
                granted = 0.0
                if remaining > 0:
                    if lim.metric == "requests":
                        granted = float(max(1, min(int(remaining) // 10, MAX_LEASE)))
                    else:
                        block = remaining / 10
                        granted = block if block >= lim.limit / 1000 else remaining
                await conn.execute(
                    update(BudgetCounter)
                    .where(*_pk(key))
                    .values(used=here + granted, updated_at=datetime.now(UTC))
                )
        counter.lease += debt  # the debt is settled
        return granted

    async def _earlier_slices(
        self, conn: AsyncConnection, key: Key, lim: Limit, counter: _Counter
    ) -> float:
        """The use of a rolling window's other slices; sets when the oldest drops out."""
        scope, metric, period, start = key
        since = counter.end - PERIOD_S[lim.period]
        rows = await conn.execute(
            select(BudgetCounter.window_start, BudgetCounter.used).where(
                BudgetCounter.scope == scope,
                BudgetCounter.metric == metric,
                BudgetCounter.period == period,
                BudgetCounter.window_start >= since,
                BudgetCounter.window_start < start,
            )
        )
        slices = [(int(s), float(u)) for s, u in rows if u > 0]
        oldest = min((s for s, _ in slices), default=start)
        counter.retry_at = oldest + PERIOD_S[lim.period]
        return sum(u for _, u in slices)

    def _refusal(self, lim: Limit, counter: _Counter, now: float) -> BudgetExceeded:
        retry = max(1, math.ceil(counter.retry_at - now))
        resets = datetime.fromtimestamp(counter.retry_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        what = {"usd": "USD", "tokens": "tokens", "requests": "requests"}[lim.metric]
        per = (
            f"any {'30 days' if lim.period == 'month' else lim.period}"
            if lim.rolling
            else lim.period
        )
        when = "has room again" if lim.rolling else "resets"
        return BudgetExceeded(
            f"Budget exceeded: {lim.label} allows {lim.limit:g} {what} per {per}; "
            f"it {when} at {resets} (in {retry} s).",
            retry,
            f"budget.{lim.metric}_per_{lim.period}",
            lim.scope,
        )

    # --- accounting ---------------------------------------------------------------------

    def observe(self, request_id: str, batch: list[Event]) -> None:
        """The `Observer`: when a request that spends ends, takes its tokens and cost
        from the leases it was admitted under."""
        if not batch or request_id not in self._charges:
            return
        final = batch[-1]
        if type(final) is not Done and type(final) is not Failed:
            return
        assert isinstance(final, Done | Failed)
        charges = self._charges.pop(request_id)
        tokens = final.usage.prompt_tokens + final.usage.completion_tokens
        cost = self._prices().cost(final.record) if any(k[1] == "usd" for k, _ in charges) else None
        for key, lim in charges:
            counter = self._counters.get(key)
            if counter is not None:
                counter.lease -= float(tokens) if lim.metric == "tokens" else (cost or 0.0)

    async def flush(self) -> None:
        """Write every debt (use beyond a lease) and forget past windows."""
        now = self._clock()
        for key, counter in list(self._counters.items()):
            if counter.lease < 0:
                async with counter.lock:
                    await self._settle(key, counter)
            if counter.end + 60 < now and counter.lease >= 0:
                del self._counters[key]  # a past window: its lease has expired

    async def _settle(self, key: Key, counter: _Counter) -> None:
        debt = max(-counter.lease, 0.0)
        if not debt:
            return
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(**WRITE)
            async with conn.begin():
                await conn.execute(_insert_missing(conn, key))
                await conn.execute(
                    update(BudgetCounter)
                    .where(*_pk(key))
                    .values(used=BudgetCounter.used + debt, updated_at=datetime.now(UTC))
                )
        counter.lease += debt

    # --- life ---------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._flush_every(), name="llmgate-budget-flush")

    async def aclose(self) -> None:
        """Write the debts and hand back the unused leases of current windows."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await self.flush()
            now = self._clock()
            async with self.engine.connect() as conn:
                conn = await conn.execution_options(**WRITE)
                async with conn.begin():
                    for key, counter in self._counters.items():
                        if counter.lease > 0 and counter.end > now:
                            await conn.execute(
                                update(BudgetCounter)
                                .where(*_pk(key))
                                .values(used=BudgetCounter.used - counter.lease)
                            )
                            counter.lease = 0
        except Exception as exc:
            log.warning("budgets: could not write the last counts at shutdown: %s", exc)

    async def _flush_every(self) -> None:
        while True:
            await asyncio.sleep(self.flush_s)
            try:
                await self.flush()
            except Exception as exc:  # the database is down: keep counting in memory
                log.warning("budgets: cannot write counters, retrying: %s", exc)

    async def report(self, scopes: Sequence[tuple[str, str, Budget]]) -> list[dict[str, Any]]:
        """Each limit of each ``(scope, label, budget)`` with its use in the current
        window: what every process spent, plus headroom other processes leased and have
        not yet used (at most a tenth of what remained when they leased it). For a
        rolling window, ``resets_at`` is when its oldest use drops out."""
        now = self._clock()
        limits = [lim for scope, label, budget in scopes for lim in limits_of(scope, label, budget)]
        if not limits:
            return []
        query = select(
            BudgetCounter.scope,
            BudgetCounter.metric,
            BudgetCounter.period,
            BudgetCounter.window_start,
            BudgetCounter.used,
        ).where(BudgetCounter.scope.in_({lim.scope for lim in limits}))
        async with self.engine.connect() as conn:
            stored = [(r[0], r[1], r[2], int(r[3]), float(r[4])) for r in await conn.execute(query)]
        out = []
        for lim in limits:
            slice_start, slice_end = lim.window(now)
            since = slice_end - PERIOD_S[lim.period] if lim.rolling else slice_start
            rows = [
                (start, used)
                for scope, metric, period, start, used in stored
                if (scope, metric, period) == (lim.scope, lim.metric, lim.stored_period)
                and since <= start <= slice_start
            ]
            used = sum(u for _, u in rows)
            for start, _ in rows:  # this process's own unused leases are not use
                mine = self._counters.get((lim.scope, lim.metric, lim.stored_period, start))
                if mine is not None and mine.lease > 0:
                    used -= mine.lease
            if lim.rolling:
                oldest = min((s for s, u in rows if u > 0), default=None)
                window_start, resets_at = (
                    now - PERIOD_S[lim.period],
                    (oldest + PERIOD_S[lim.period] if oldest is not None else now),
                )
            else:
                window_start, resets_at = slice_start, slice_end
            out.append(
                {
                    "scope": lim.scope,
                    "name": lim.label,
                    "limit": f"{lim.metric}_per_{lim.period}",
                    "metric": lim.metric,
                    "period": lim.period,
                    "window": "rolling" if lim.rolling else "calendar",
                    "max": lim.limit,
                    "used": used,
                    "remaining": max(lim.limit - used, 0.0),
                    "window_start": _iso(window_start, lim.zone),
                    "resets_at": _iso(resets_at, lim.zone),
                }
            )
        return out


def _iso(moment: float, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(moment, UTC).astimezone(zone).isoformat()


def _pk(key: Key) -> list[Any]:
    scope, metric, period, start = key
    return [
        BudgetCounter.scope == scope,
        BudgetCounter.metric == metric,
        BudgetCounter.period == period,
        BudgetCounter.window_start == start,
    ]


def _insert_missing(conn: AsyncConnection, key: Key) -> Any:
    scope, metric, period, start = key
    values = {
        "scope": scope,
        "metric": metric,
        "period": period,
        "window_start": start,
        "used": 0.0,
        "updated_at": datetime.now(UTC),
    }
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(BudgetCounter).values(**values).on_conflict_do_nothing()


async def budget_report(
    gate: BudgetGate | None, routes: Mapping[str, ResolvedRoute], keys: KeyStore
) -> list[dict[str, Any]]:
    """Every budget of a route or an active key, each limit with its use in its current
    window: ``GET /admin/api/budgets`` and the dashboard's Budgets page."""
    if gate is None:
        return []
    scopes = [
        (f"route:{name}", f"route {name!r}", route.policy.budget)
        for name, route in routes.items()
        if route.policy.budget is not None
    ]
    scopes += [
        (f"key:{key.id}", f"key {key.name!r}", key.budget)
        for key in await keys.list(include_revoked=False)
        if key.budget is not None
    ]
    return await gate.report(scopes)
