"""Signing in and out of the dashboard, and where a request that is not signed in goes.

The secret is the admin key or the admin password (`server.dashboard.auth`), or on a
first run the one-time link ``llmgate serve`` printed (``/admin/login?token=...``), and
failed attempts are throttled per client address. A signed-in session is an encrypted
cookie that expires after ``dashboard_session_hours``.
"""

from __future__ import annotations

import math
import secrets
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException
from litestar.params import FromQuery
from litestar.response import Redirect, Template
from sqlalchemy.ext.asyncio import AsyncEngine

from server.dashboard.auth import DashboardAuth, session_guard
from server.dashboard.common import Req, is_htmx
from server.store.login_links import redeem_link, sign_out

__all__ = ["HANDLERS", "not_signed_in"]


def _home(request: Req) -> str:
    return request.app.route_reverse("overview")


def _safe_next(request: Req, target: str | None) -> str:
    """Only a path inside the dashboard: never an open redirect."""
    home = _home(request)
    if not target:
        return home
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith(home):
        return home
    return target


def _login_page(
    auth: DashboardAuth, assets_ok: bool, next: str, error: str | None = None
) -> Template:
    return Template(
        template_name="login.html",
        context={"auth": auth, "next": next, "error": error, "assets_ok": assets_ok},
    )


@get("/login", name="login")
async def login_page(
    request: Req,
    dashboard_auth: NamedDependency[DashboardAuth],
    assets_ok: NamedDependency[bool],
    database: NamedDependency[AsyncEngine | None],
    next: FromQuery[str | None] = None,
    token: FromQuery[str | None] = None,
) -> Response[Any]:
    auth, target = dashboard_auth, _safe_next(request, next)
    if token is None:
        return _login_page(auth, assets_ok, target)
    client, now = request.client.host if request.client else "", time.monotonic()
    if (
        auth.first_run
        and database is not None
        and not auth.throttled(client, now)
        and await redeem_link(database, token)
    ):
        _sign_in(request, auth, "first-run link")
        return Redirect(target, status_code=303)
    auth.failed(client, now)
    error = (
        "This sign-in link was already used or has expired: restart llmgate serve for a "
        "new one, or set an admin key or password."
        if auth.first_run
        else "Sign-in links are only printed on a first run, with no admin key or password."
    )
    refused = _login_page(auth, assets_ok, target, error)
    refused.status_code = 401
    return refused


def _sign_in(request: Req, auth: DashboardAuth, by: str) -> None:
    now = time.time()
    sid = secrets.token_hex(16)
    request.set_session({"until": now + auth.session_seconds, "at": now, "by": by, "sid": sid})


@post("/login", name="login.submit", status_code=303)
async def login(
    request: Req, dashboard_auth: NamedDependency[DashboardAuth], assets_ok: NamedDependency[bool]
) -> Response[Any]:
    auth = dashboard_auth
    form = await request.form()
    secret = str(form.get("secret") or "")
    target = _safe_next(request, str(form.get("next") or ""))
    client, now = request.client.host if request.client else "", time.monotonic()
    wait = auth.throttled(client, now)
    which = auth.check(secret)
    if wait or (auth.key is None and auth.password is None) or which is None:
        status, headers = 401, {}
        if wait:
            error = f"Too many failed sign-ins: try again in {math.ceil(wait)} s."
            status, headers = 429, {"retry-after": str(math.ceil(wait))}
        elif not auth.enabled:
            error = "The dashboard is disabled: no admin key or password is set."
        elif auth.key is None and auth.password is None:
            error = "No admin key or password is set: sign in with the link llmgate serve printed."
        else:
            error = "That is not the admin key or password."
            auth.failed(client, now)
        refused = _login_page(auth, assets_ok, target, error)
        refused.status_code, refused.headers = status, headers
        return refused
    _sign_in(request, auth, which)
    return Redirect(target, status_code=303)


@post("/logout", name="logout", status_code=303, guards=[session_guard])
async def logout(
    request: Req,
    dashboard_auth: NamedDependency[DashboardAuth],
    database: NamedDependency[AsyncEngine | None],
) -> Redirect:
    """Sign out: this session is refused from now on, wherever its cookie is sent."""
    session = request.session
    sid, until = session.get("sid"), session.get("until")
    if isinstance(sid, str):
        dashboard_auth.signed_out.add(sid)
        if database is not None and isinstance(until, int | float):
            await sign_out(database, sid, datetime.fromtimestamp(until, UTC))
    request.clear_session()
    return Redirect(request.app.route_reverse("login"), status_code=303)


def not_signed_in(request: Req, exc: NotAuthorizedException) -> Response[Any]:
    """Pages redirect to the sign-in page; htmx requests get ``HX-Redirect`` (a swap
    of the sign-in page into a fragment would make no sense)."""
    login_url = (
        request.app.route_reverse("login")
        + "?next="
        + quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""), safe="")
    )
    if is_htmx(request):
        return Response(b"", status_code=401, headers={"HX-Redirect": login_url})
    if request.headers.get("accept", "").startswith("text/event-stream"):
        return Response(b"", status_code=401)
    return Redirect(login_url, status_code=303)


HANDLERS: list[Any] = [login_page, login, logout]
