"""The admin dashboard under ``/admin``: server-rendered jinja2 pages and htmx partials.

htmx and its SSE extension come from their npm packages (``package.json``, installed by
``make install`` into ``node_modules``) and are served as static files under
``/admin/static/vendor``; the dashboard's own stylesheet is ``/admin/static/dashboard.css``.
Pages live in the modules of this package, each exporting ``HANDLERS``; `dashboard_router`
puts them behind the session guard and CSRF protection (`server.dashboard.auth`).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from litestar import Response, Router, get, post
from litestar.exceptions import NotAuthorizedException
from litestar.plugins.htmx import HTMXRequest
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from server.core.admission import Admission
from server.core.gateway import Gateway
from server.dashboard import filters
from server.dashboard.auth import DashboardAuth, session_guard
from server.dashboard.common import Req, is_htmx

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


def _auth(request: Req) -> DashboardAuth:
    auth: DashboardAuth = request.app.state.dashboard_auth
    return auth


def _safe_next(target: str | None) -> str:
    """Only a path inside the dashboard: never an open redirect."""
    if not target:
        return DASHBOARD_PATH
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith(DASHBOARD_PATH):
        return DASHBOARD_PATH
    return target


@get("/login", name="dashboard-login")
async def login_page(request: Req) -> Template:
    auth = _auth(request)
    next = request.query_params.get("next")
    return Template(
        template_name="login.html",
        context={
            "auth": auth,
            "next": _safe_next(next),
            "error": None,
            "assets_ok": request.app.state.dashboard_assets_ok,
        },
    )


@post("/login", status_code=303)
async def login(request: Req) -> Response[Any]:
    auth = _auth(request)
    form = await request.form()
    secret = str(form.get("secret") or "")
    target = _safe_next(str(form.get("next") or ""))
    client, now = request.client.host if request.client else "", time.monotonic()
    wait = auth.throttled(client, now)
    if wait or not auth.enabled or not auth.check(secret):
        status, headers = 401, {}
        if wait:
            error = f"Too many failed sign-ins: try again in {math.ceil(wait)} s."
            status, headers = 429, {"retry-after": str(math.ceil(wait))}
        elif not auth.enabled:
            error = "The dashboard is disabled: no admin key or password is set."
        else:
            error = "That is not the admin key or password."
            auth.failed(client, now)
        return Template(
            template_name="login.html",
            context={
                "auth": auth,
                "next": target,
                "error": error,
                "assets_ok": request.app.state.dashboard_assets_ok,
            },
            status_code=status,
            headers=headers,
        )
    request.set_session({"until": time.time() + auth.session_seconds, "at": time.time()})
    return Redirect(target, status_code=303)


@post("/logout", status_code=303, guards=[session_guard])
async def logout(request: Req) -> Redirect:
    request.clear_session()
    return Redirect(f"{DASHBOARD_PATH}/login", status_code=303)


def _not_signed_in(request: Req, exc: NotAuthorizedException) -> Response[Any]:
    """Pages redirect to the sign-in page; htmx requests get ``HX-Redirect`` (a swap
    of the sign-in page into a fragment would make no sense)."""
    login_url = f"{DASHBOARD_PATH}/login?next=" + quote(
        request.url.path + (f"?{request.url.query}" if request.url.query else ""), safe=""
    )
    if is_htmx(request):
        return Response(b"", status_code=401, headers={"HX-Redirect": login_url})
    if request.headers.get("accept", "").startswith("text/event-stream"):
        return Response(b"", status_code=401)
    return Redirect(login_url, status_code=303)


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
        route_handlers=[login_page, login, logout, pages],
        middleware=auth.middleware(),
        request_class=HTMXRequest,
        exception_handlers={NotAuthorizedException: _not_signed_in},
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
