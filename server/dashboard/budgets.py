"""Dashboard: budgets (each limit's use in its current window) and each API key's spend.

The budgets table is `server.core.budgets.budget_report`, the very report
``GET /admin/api/budgets`` answers, so the page and the API never disagree. Its ``used``
is the stored counter (`server.core.budgets`): what every process spent plus headroom a
process has leased and not yet spent, which the page says.

Spend by API key is read from the request log, not from the budget counters: counters
exist only for keys with a budget, and only for their current windows, while the log
holds every key's requests with their tokens and cost. It is one aggregate query per
window (today and this month, UTC calendar), grouped by ``api_key_id``: the keys' ids in
``IN (...)`` and the window as a ``created_at`` range make each key one range of the
``(api_key_id, created_at)`` index on both databases, and no row is sent to the process.
``SUM(cost_usd)`` skips the requests without a price (``cost_usd`` NULL), so
``COUNT(cost_usd)`` is counted too: the page says how many were left out rather than
showing a cost that looks complete.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, cast
from urllib.parse import quote

from litestar import get
from litestar.response import Template
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import Select

from router.policy import Budget
from server.core.admission import Admission
from server.core.budgets import budget_report
from server.core.keys import ApiKey
from server.dashboard.common import Req, fragment, gateway, is_htmx, page, reloader
from server.dashboard.forms import with_status
from server.store.models import RequestLog

__all__ = [
    "HANDLERS",
    "LimitView",
    "Spend",
    "SpendWindow",
    "key_spend",
    "money",
    "spend_query",
    "spend_windows",
]

log = logging.getLogger("llmgate.dashboard")

NO_DATABASE = (
    "This gateway serves its configuration file without a database, and budget counters "
    "and the request log live in the database: llmgate serve (SQLite by default, or "
    "--database-url) serves from one."
)

UNAVAILABLE: tuple[type[Exception], ...] = (SQLAlchemyError, OSError)

_UNIT = {"requests": ("request", "requests"), "tokens": ("token", "tokens")}


def money(value: float | None) -> str:
    """USD as people read it: ``$5.00``, ``$0.0123``, ``$0.000042``; ``—`` for none."""
    if value is None:
        return "—"
    if value == 0:
        return "$0.00"
    if abs(value) >= 1:
        return f"${value:,.2f}"
    if abs(value) < 0.000001:
        return "<$0.000001"
    digits = f"{value:.6f}".rstrip("0")
    whole, _, frac = digits.partition(".")
    return f"${whole}.{frac.ljust(2, '0')}"


def amount(metric: str, value: float) -> str:
    """A limit's quantity: USD as `money`, tokens and requests as whole numbers (a
    token counter may hold a fraction of a leased block)."""
    if metric == "usd":
        return money(value)
    return f"{round(value):,}"


def _in(seconds: float) -> str:
    """How long until a window resets: ``42 s``, ``38 min``, ``5 h 12 min``, ``12 days``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 2 * 86400:
        h, m = divmod(s // 60, 60)
        return f"{h} h {m} min" if m else f"{h} h"
    return f"{s // 86400} days"


@dataclass(frozen=True)
class LimitView:
    """One limit of `budget_report`, with what the page shows beside it."""

    report: dict[str, Any]
    """The report's entry, exactly as ``GET /admin/api/budgets`` answers it."""
    kind: str
    """``route`` or ``key``."""
    ref: str
    """The route's name or the key's id."""
    who: str
    """The route's or the key's name."""
    href: str
    zone: str | None
    """The budget's time zone, when its owner is still known."""
    downgrade_to: str | None
    now: datetime

    @property
    def metric(self) -> str:
        return str(self.report["metric"])

    @property
    def used(self) -> float:
        return float(self.report["used"])

    @property
    def max(self) -> float:
        return float(self.report["max"])

    @property
    def share(self) -> float:
        return self.used / self.max if self.max > 0 else 1.0

    @property
    def full(self) -> bool:
        return self.share >= 1

    @property
    def width(self) -> str:
        """The progress bar's width, a CSS percentage."""
        return f"{min(self.share, 1.0) * 100:.1f}%"

    @property
    def limit_text(self) -> str:
        """``60 requests per minute``, ``$5.00 per day``."""
        period = self.report["period"]
        if self.metric == "usd":
            return f"{money(self.max)} per {period}"
        one, many = _UNIT[self.metric]
        return f"{amount(self.metric, self.max)} {one if self.max == 1 else many} per {period}"

    @property
    def used_text(self) -> str:
        return amount(self.metric, self.used)

    @property
    def max_text(self) -> str:
        return amount(self.metric, self.max)

    @property
    def remaining_text(self) -> str:
        return amount(self.metric, float(self.report["remaining"]))

    @property
    def start(self) -> datetime:
        return datetime.fromisoformat(self.report["window_start"])

    @property
    def resets_at(self) -> datetime:
        return datetime.fromisoformat(self.report["resets_at"])

    @property
    def window_text(self) -> str:
        """Start → reset in the budget's zone, as the report gives them; the date is
        said once when both ends fall on the same day."""
        start, end = self.start, self.resets_at
        if start.date() == end.date():
            return f"{start:%Y-%m-%d %H:%M} → {end:%H:%M}"
        return f"{start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M}"

    @property
    def zone_text(self) -> str:
        offset = self.start.strftime("%z")
        utc = f"UTC{offset[:3]}:{offset[3:]}" if offset not in ("", "+0000") else "UTC"
        return utc if self.zone in (None, "UTC") else f"{self.zone}, {utc}"

    @property
    def resets_in(self) -> str:
        return _in((self.resets_at - self.now).total_seconds())


def _views(
    report: Sequence[dict[str, Any]],
    routes: dict[str, Budget | None],
    keys: dict[str, ApiKey],
    now: datetime,
) -> list[LimitView]:
    views = []
    for entry in report:
        kind, _, ref = str(entry["scope"]).partition(":")
        budget: Budget | None
        if kind == "route":
            who, href, budget = ref, f"/admin/routes/{quote(ref, safe='')}/edit", routes.get(ref)
        else:
            key = keys.get(ref)
            who = key.name if key is not None else str(entry["name"])
            href, budget = f"/admin/keys#key-{ref}", key.budget if key is not None else None
        views.append(
            LimitView(
                report=entry,
                kind=kind,
                ref=ref,
                who=who,
                href=href,
                zone=budget.timezone if budget is not None else None,
                downgrade_to=budget.downgrade_to if budget is not None else None,
                now=now,
            )
        )
    return views


# --- spend by API key, from the request log ----------------------------------------------


class SpendWindow(NamedTuple):
    key: str
    label: str
    start: datetime
    end: datetime


def spend_windows(now: datetime) -> tuple[SpendWindow, SpendWindow]:
    """Today and this month, UTC calendar, as ``[start, end)``."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    next_month = (month + timedelta(days=32)).replace(day=1)
    return (
        SpendWindow("today", f"Today ({day:%b} {day.day}, UTC)", day, day + timedelta(days=1)),
        SpendWindow("month", f"This month ({month:%B %Y}, UTC)", month, next_month),
    )


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


@dataclass(frozen=True)
class KeySpend:
    key: ApiKey
    spend: dict[str, Spend] = field(default_factory=dict)
    """By window key (``today``, ``month``)."""


def _order(keys: Sequence[ApiKey]) -> list[ApiKey]:
    """Active keys first, then revoked ones; by name within each."""
    return sorted(keys, key=lambda k: (not k.active, k.name.casefold(), k.id))


# --- the page --------------------------------------------------------------------------


@get("/budgets", name="budgets")
async def budgets_page(request: Req) -> Template:
    """The whole page, or the panel alone for htmx (the Refresh button)."""
    gw, r = gateway(request), reloader(request)
    gate = cast(Admission, request.app.state.admission).budgets
    now = datetime.now(UTC)
    windows = spend_windows(now)
    context: dict[str, Any] = {
        "has_database": r is not None and gate is not None,
        "no_database": NO_DATABASE,
        "limits": [],
        "keys": [],
        "windows": windows,
        "message": None,
        "now": now,
        "money": money,
    }
    status = 200
    if r is not None and gate is not None:
        try:
            report = await budget_report(gate, gw.table.routes, r.keys)
            keys = await r.keys.list()
            by_id = {k.id: k for k in keys}
            routes = {name: route.policy.budget for name, route in gw.table.routes.items()}
            context["limits"] = _views(report, routes, by_id, now)
            ids = [k.id for k in keys]
            spent = {w.key: await key_spend(r.store.engine, ids, w.start, w.end) for w in windows}
            context["keys"] = [
                KeySpend(k, {w.key: spent[w.key].get(k.id, Spend()) for w in windows})
                for k in _order(keys)
            ]
        except UNAVAILABLE as exc:
            log.warning("dashboard: budgets: the database failed: %s: %s", type(exc).__name__, exc)
            context["message"] = (
                f"The database is unavailable ({type(exc).__name__}): budgets and spend "
                "cannot be read now. See the server log."
            )
            status = 503
    if is_htmx(request):
        return with_status(fragment("_budgets.html", **context), status)
    return with_status(page(request, "budgets.html", "budgets", **context), status)


HANDLERS: list[Any] = [budgets_page]
