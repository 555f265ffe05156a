"""The JSON admin API under ``/admin/api``: policies (routes, providers, revisions,
reload), keys and budgets, behind the admin key (`server.admin.guard`)."""

from __future__ import annotations

from litestar import Router
from sqlalchemy.exc import SQLAlchemyError

from router.errors import ConfigError
from server.admin.budgets import BUDGET_HANDLERS
from server.admin.guard import admin_guard
from server.admin.keys import KEY_HANDLERS
from server.admin.policies import (
    POLICY_DEPENDENCIES,
    POLICY_HANDLERS,
    database_error,
    invalid_policy,
)

__all__ = ["ADMIN_PATH", "admin_router"]

ADMIN_PATH = "/admin/api"


def admin_router() -> Router:
    """The admin API, mounted at `ADMIN_PATH`."""
    return Router(
        ADMIN_PATH,
        route_handlers=[*POLICY_HANDLERS, *KEY_HANDLERS, *BUDGET_HANDLERS],
        dependencies=POLICY_DEPENDENCIES,
        guards=[admin_guard],
        exception_handlers={
            ConfigError: invalid_policy,
            SQLAlchemyError: database_error,
            OSError: database_error,
        },
    )
