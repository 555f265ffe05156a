"""The admin dashboard under ``/admin``: server-rendered jinja2 pages and htmx partials.

htmx and its SSE extension come from their npm packages (``package.json``, installed by
``make install`` into ``node_modules``) and are served as static files under
``/admin/static/vendor``; the dashboard's own stylesheet is ``/admin/static/dashboard.css``.
Pages live in the modules of this package, each exporting ``HANDLERS``; `dashboard_routers`
puts them behind the session guard and CSRF protection (`server.dashboard.auth`), with
sign-in and sign-out (`server.dashboard.login`) outside the guard. This module only
assembles them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from litestar import Router
from litestar.exceptions import NotAuthorizedException
from litestar.plugins.htmx import HTMXRequest
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from server.core.admission import Admission
from server.core.gateway import Gateway
from server.dashboard import filters, login
from server.dashboard.auth import DashboardAuth, session_guard
from server.dashboard.common import DEPENDENCIES

__all__ = ["DASHBOARD_PATH", "dashboard_routers", "template_config"]

log = logging.getLogger("llmgate.dashboard")

DASHBOARD_PATH = "/admin"
ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"
NODE_MODULES = ROOT / "node_modules"
VENDOR = {
    "htmx": NODE_MODULES / "htmx.org" / "dist",
    "htmx-ext-sse": NODE_MODULES / "htmx-ext-sse" / "dist",
}
STATIC = Path(__file__).resolve().parent / "static"


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    def setup(engine: JinjaTemplateEngine) -> None:
        engine.engine.filters.update(filters.FILTERS)
        engine.engine.globals.update(filters.GLOBALS)

    return TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine, engine_callback=setup)


def assets_ok() -> bool:
    """Whether the npm packages are installed (``make install``)."""
    return all(
        (d / name).is_file()
        for d, name in ((VENDOR["htmx"], "htmx.min.js"), (VENDOR["htmx-ext-sse"], "sse.js"))
    )


def dashboard_routers(gateway: Gateway, admission: Admission) -> tuple[list[Router], DashboardAuth]:
    """The dashboard (signed-in pages and the sign-in page, with sessions and CSRF) and
    its static files."""
    from server.dashboard import (
        budgets,
        keys,
        live,
        overview,
        playground,
        providers,
        requests,
        revisions,
        routes,
    )

    auth = DashboardAuth(gateway, admission)
    pages = Router(
        path="/",
        route_handlers=[
            *overview.HANDLERS,
            *routes.HANDLERS,
            *revisions.HANDLERS,
            *providers.HANDLERS,
            *keys.HANDLERS,
            *budgets.HANDLERS,
            *requests.HANDLERS,
            *playground.HANDLERS,
            *live.HANDLERS,
        ],
        guards=[session_guard],
    )
    dashboard = Router(
        path=DASHBOARD_PATH,
        route_handlers=[*login.HANDLERS, pages],
        dependencies=DEPENDENCIES,
        middleware=auth.middleware(),
        request_class=HTMXRequest,
        exception_handlers={NotAuthorizedException: login.not_signed_in},
        include_in_schema=False,
    )
    routers = [dashboard]
    if assets_ok():
        for name, directory in VENDOR.items():
            routers.append(
                create_static_files_router(
                    path=f"{DASHBOARD_PATH}/static/vendor/{name}",
                    directories=[directory],
                    name=f"vendor-{name}",
                    include_in_schema=False,
                )
            )
    else:
        log.error("dashboard: htmx is not installed (node_modules); run `make install`")
    routers.append(
        create_static_files_router(
            path=f"{DASHBOARD_PATH}/static",
            directories=[STATIC],
            name="dashboard-static",
            include_in_schema=False,
        )
    )
    return routers, auth
