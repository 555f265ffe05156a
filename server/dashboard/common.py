"""What every dashboard page uses: the gateway, the store, and page rendering."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.response import Template

from server.core.gateway import Gateway
from server.core.reload import Reloader
from server.store import PolicyStore

__all__ = ["NAV", "Req", "fragment", "gateway", "page", "reloader", "store"]

Req = Request[Any, Any, Any]

NAV = (
    ("overview", "Overview", "/admin"),
    ("routes", "Routes", "/admin/routes"),
    ("providers", "Providers", "/admin/providers"),
    ("keys", "API keys", "/admin/keys"),
    ("budgets", "Budgets", "/admin/budgets"),
    ("revisions", "Revisions", "/admin/revisions"),
    ("requests", "Requests", "/admin/requests"),
    ("playground", "Playground", "/admin/playground"),
)


def gateway(request: Req) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


def reloader(request: Req) -> Reloader | None:
    r: Reloader | None = request.app.state.reloader
    return r


def store(request: Req) -> PolicyStore | None:
    """The policy store, or None when the gateway serves its file (pages then show the
    file's configuration read-only)."""
    r = reloader(request)
    return None if r is None else r.store


def page(request: Req, template: str, active: str, **context: Any) -> Template:
    """A whole page (``template`` extends ``base.html``), or just its ``content`` block
    when htmx asks (``hx-boost`` navigation keeps the shell)."""
    return Template(
        template_name=template,
        context={
            "nav": NAV,
            "active": active,
            "revision": gateway(request).table.revision,
            "has_store": reloader(request) is not None,
            "assets_ok": request.app.state.dashboard_assets_ok,
            **context,
        },
    )


def fragment(template: str, **context: Any) -> Template:
    """A ``_``-prefixed partial, for an htmx swap."""
    return Template(template_name=template, context=context)


def is_htmx(request: Req) -> bool:
    """Whether htmx sent the request (read from the header: exception handlers get a
    plain `Request`, not an `HTMXRequest`)."""
    return request.headers.get("hx-request") == "true"
