"""Dashboard: budgets (each limit's use in its current window) and each API key's spend.

The budgets table is `server.core.budgets.budget_report`, the very report
``GET /admin/api/budgets`` answers, so the page and the API never disagree. Its ``used``
is the stored counter (`server.core.budgets`): what every process spent plus headroom a
process has leased and not yet spent, which the page says.

Spend by API key is read from the request log (`server.store.traffic.key_spend`), not
from the budget counters: counters exist only for keys with a budget, and only for their
current windows, while the log holds every key's requests with their tokens and cost.
The page shows today and this month (UTC calendar), revoked keys too.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from litestar import get
from litestar.di import NamedDependency
from litestar.response import Template

from server.core.admission import Admission
from server.core.budgets import BudgetGate, budget_report
from server.core.keys import ApiKey
from server.core.reload import Reloader
from server.dashboard.budget_views import (
    BudgetsPanel,
    KeySpend,
    SpendCell,
    key_href,
    limit_views,
    spend_windows,
)
from server.dashboard.common import View, with_status
from server.dashboard.forms import STORE_DOWN
from server.store.traffic import Spend, key_spend

__all__ = ["HANDLERS"]

log = logging.getLogger("llmgate.dashboard")


def _order(keys: Sequence[ApiKey]) -> list[ApiKey]:
    """Active keys first, then revoked ones; by name within each."""
    return sorted(keys, key=lambda k: (not k.active, k.name.casefold(), k.id))


async def _fill(
    panel: BudgetsPanel, view: View, gate: BudgetGate, reloader: Reloader, now: datetime
) -> None:
    """The limits and every key's spend, as the database has them ``now``."""
    routes = view.gateway.table.routes
    report = await budget_report(gate, routes, reloader.keys)
    keys = await reloader.keys.list()
    budgets = {name: route.policy.budget for name, route in routes.items()}
    panel.limits = limit_views(view, report, budgets, {k.id: k for k in keys}, now)
    ids = [k.id for k in keys]
    engine = reloader.store.engine
    spent = {w.key: await key_spend(engine, ids, w.start, w.end) for w in panel.windows}
    panel.keys = [
        KeySpend(
            k,
            key_href(view, k.id),
            [SpendCell(w.key, spent[w.key].get(k.id, Spend())) for w in panel.windows],
        )
        for k in _order(keys)
    ]


@get("/budgets", name="budgets")
async def budgets_page(
    view: NamedDependency[View], admission: NamedDependency[Admission]
) -> Template:
    """The whole page, or the panel alone for htmx (the Refresh button)."""
    gate, reloader, now = admission.budgets, view.reloader, datetime.now(UTC)
    panel = BudgetsPanel(
        has_database=gate is not None and reloader is not None, windows=spend_windows(now)
    )
    status = 200
    if gate is not None and reloader is not None:
        try:
            await _fill(panel, view, gate, reloader, now)
        except STORE_DOWN as exc:
            log.warning("dashboard: budgets: the database failed: %s: %s", type(exc).__name__, exc)
            panel.message = (
                f"The database is unavailable ({type(exc).__name__}): budgets and spend "
                "cannot be read now. See the server log."
            )
            status = 503
    template = view.answer("_budgets.html", "budgets.html", "budgets", panel=panel)
    return with_status(template, status)


HANDLERS: list[Any] = [budgets_page]
