"""``GET /admin/api/budgets``: every budget of a route or a key, each limit with its use
in its current window."""

from __future__ import annotations

from typing import Any

from litestar import get
from litestar.di import NamedDependency

from server.core.admission import Admission
from server.core.budgets import budget_report
from server.core.gateway import Gateway
from server.store.keys import KeyStore

__all__ = ["BUDGET_HANDLERS"]


@get("/budgets")
async def budgets(
    gateway: NamedDependency[Gateway],
    admission: NamedDependency[Admission],
    keys: NamedDependency[KeyStore],
) -> dict[str, Any]:
    return {"budgets": await budget_report(admission.budgets, gateway.table.routes, keys)}


BUDGET_HANDLERS = [budgets]
