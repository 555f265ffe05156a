"""What the budgets page shows, worked out before a template sees it: each limit beside
its use, and each API key's spend per window, as people read amounts and times."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, NamedTuple

from markupsafe import Markup

from router.policy import Budget
from server.core.keys import ApiKey
from server.dashboard.common import Notice, View
from server.dashboard.key_views import KeyRow
from server.store.traffic import Spend

__all__ = [
    "NO_DATABASE",
    "BudgetsPanel",
    "KeySpend",
    "LimitView",
    "SpendCell",
    "SpendWindow",
    "limit_views",
    "money",
    "spend_windows",
]

NO_DATABASE = Markup(
    "This gateway serves its configuration file without a database, and budget counters "
    "and the request log live in the database: <code>llmgate serve</code> (SQLite by "
    "default, or --database-url) serves from one."
)

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


def key_href(view: View, key_id: str) -> str:
    """The key's row on the keys page."""
    return f"{view.url('keys')}#key-{key_id}"


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
    first: bool
    """The first limit of its owner, the row that names the owner."""

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
    def share_text(self) -> str:
        return f"{self.share * 100:.0f}%"

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


def limit_views(
    view: View,
    report: Sequence[dict[str, Any]],
    routes: dict[str, Budget | None],
    keys: dict[str, ApiKey],
    now: datetime,
) -> list[LimitView]:
    """The report's limits, each with its owner (a route or a key) and its link."""
    views = []
    previous = None
    for entry in report:
        kind, _, ref = str(entry["scope"]).partition(":")
        budget: Budget | None
        if kind == "route":
            who, href, budget = ref, view.url("routes.edit", route=ref), routes.get(ref)
        else:
            key = keys.get(ref)
            who = key.name if key is not None else str(entry["name"])
            href, budget = key_href(view, ref), key.budget if key is not None else None
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
                first=entry["scope"] != previous,
            )
        )
        previous = entry["scope"]
    return views


# --- spend by API key ------------------------------------------------------------------


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


@dataclass(frozen=True, slots=True)
class SpendCell:
    """One key's spend in one window."""

    window: str
    spend: Spend

    @property
    def cost_text(self) -> str:
        """The priced requests' cost; ``—`` when none of them had a price (and
        ``$0.00`` when there was no request)."""
        s = self.spend
        return money(s.cost if s.cost is not None or s.unpriced else 0.0)

    @property
    def unpriced_title(self) -> str:
        s = self.spend
        return f"{s.unpriced} of {s.requests} requests had no price and are not in this cost"

    @property
    def tokens_text(self) -> str:
        return f"{self.spend.tokens:,}"

    @property
    def requests_text(self) -> str:
        return f"{self.spend.requests:,}"


@dataclass(frozen=True)
class KeySpend(KeyRow):
    href: str
    cells: list[SpendCell]
    """One per window, in the windows' order."""


@dataclass
class BudgetsPanel:
    """The page's panel (which the Refresh button reloads)."""

    no_database: ClassVar[Markup] = NO_DATABASE
    has_database: bool
    windows: Sequence[SpendWindow]
    limits: list[LimitView] = field(default_factory=list)
    keys: list[KeySpend] = field(default_factory=list)
    message: str | None = None

    @property
    def notice(self) -> Notice | None:
        """Only ever an error: the database could not be read."""
        return None if self.message is None else Notice(self.message, error=True)

    """Why the budgets could not be read (the database failed)."""

    @property
    def unpriced(self) -> bool:
        """Whether a key made requests this month that had no price."""
        return any(c.spend.unpriced for k in self.keys for c in k.cells if c.window == "month")
