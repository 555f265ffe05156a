"""Dashboard: the overview page, per route, over the last hour and the last day.

Each window is one aggregate query (`server.store.traffic.route_stats`); this module
only lays its numbers out: the totals, the routes busiest first with their charts, the
routes that had no request, and what the live feed sees in this process now.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from litestar import get
from litestar.di import NamedDependency
from litestar.response import Template
from markupsafe import Markup

from server.dashboard.charts import bar_chart
from server.dashboard.common import View
from server.dashboard.request_views import requests_url
from server.observe.live import LiveFeed
from server.store import PolicyStore
from server.store.request_log import any_logged
from server.store.traffic import RouteStats, route_stats

__all__ = ["HANDLERS", "WINDOWS", "LiveTotals", "Window", "WindowView"]

MAX_ROUTES = 50


class Window(NamedTuple):
    key: str
    label: str
    span: timedelta
    buckets: int
    bucket_label: str
    """How long one bar of its chart is."""

    @property
    def step(self) -> timedelta:
        return self.span / self.buckets

    def starts(self, now: datetime) -> list[datetime]:
        """When each bucket starts, oldest first."""
        since = now - self.span
        return [since + self.step * i for i in range(self.buckets)]


WINDOWS = (
    Window("hour", "Last hour", timedelta(hours=1), 12, "5 min"),
    Window("day", "Last 24 hours", timedelta(days=1), 24, "hour"),
)


@dataclass(frozen=True, slots=True)
class LiveTotals:
    """What this process's live feed sees now."""

    running: int
    dashboards: int
    resyncs: int

    @classmethod
    def of(cls, feed: LiveFeed) -> LiveTotals:
        return cls(len(feed.running), feed.subscribers, feed.lagged)

    @property
    def running_noun(self) -> str:
        return _plural(self.running, "running request")

    @property
    def dashboards_text(self) -> str:
        return f"{self.dashboards} {_plural(self.dashboards, 'live dashboard')} connected"

    @property
    def resyncs_text(self) -> str:
        """Empty when no dashboard fell behind."""
        if not self.resyncs:
            return ""
        return f"{self.resyncs} {_plural(self.resyncs, 'resync')} after falling behind"


def _plural(n: int, noun: str) -> str:
    return noun if n == 1 else f"{noun}s"


@dataclass(frozen=True, slots=True)
class RouteLine:
    name: str
    stats: RouteStats
    chart: Markup
    href: str
    """The requests table, filtered on this route."""


@dataclass(frozen=True, slots=True)
class IdleRoute:
    name: str
    href: str


@dataclass(frozen=True, slots=True)
class WindowView:
    """A window's totals, and its routes busiest first, with their charts."""

    window: Window
    total: RouteStats
    chart: Markup
    routes: list[RouteLine]
    more_routes: int
    """How many quieter routes are left out (beyond `MAX_ROUTES`)."""
    idle: list[IdleRoute]
    """The configured routes without a request in the window."""


def _chart(stats: RouteStats, window: Window, starts: Sequence[datetime], **kw: Any) -> Markup:
    step = window.step
    fmt = "%H:%M" if step < timedelta(hours=1) else "%a %H:%M"
    bars = [
        (f"{s:{fmt}} to {s + step:%H:%M} UTC", n, e)
        for s, (n, e) in zip(starts, stats.per_bucket, strict=True)
    ]
    return bar_chart(bars, **kw)


async def window_view(
    view: View, store: PolicyStore, now: datetime, window: Window, configured: Sequence[str]
) -> WindowView:
    starts = window.starts(now)
    by_route = await route_stats(store.engine, starts)
    total = RouteStats(per_bucket=[(0, 0)] * window.buckets)
    for stats in by_route.values():
        total.add(stats)
    ranked = sorted(by_route.items(), key=lambda kv: (-kv[1].requests, kv[0]))
    axis = (f"{starts[0]:%H:%M}", "now")

    def link(name: str) -> str:
        return requests_url(view, {"route": name})

    return WindowView(
        window=window,
        total=total,
        chart=_chart(total, window, starts, width=560, height=96, axis=axis, title=window.label),
        routes=[
            RouteLine(
                name,
                stats,
                _chart(stats, window, starts, width=180, height=28, title=name),
                link(name),
            )
            for name, stats in ranked[:MAX_ROUTES]
        ],
        more_routes=max(len(ranked) - MAX_ROUTES, 0),
        idle=[IdleRoute(name, link(name)) for name in configured if name not in by_route],
    )


@get("/", name="overview")
async def overview(view: NamedDependency[View], live_feed: NamedDependency[LiveFeed]) -> Template:
    windows: list[WindowView] = []
    store = view.store
    logged = store is not None and await any_logged(store.engine)
    if store is not None and logged:
        now, configured = datetime.now(UTC), sorted(view.gateway.table.routes)
        windows = [await window_view(view, store, now, w, configured) for w in WINDOWS]
    return view.page(
        "overview.html",
        "overview",
        live=LiveTotals.of(live_feed),
        has_log=view.store is not None,
        empty=not logged,
        windows=windows,
    )


HANDLERS: list[Any] = [overview]
