"""What every dashboard handler answers with: a `View` of the request, provided by name.

A handler takes ``view: View`` (and, like any handler of the app, ``gateway: Gateway``,
``health: TargetHealth``... from `server.deps`) as a typed parameter. The view renders
whole pages inside the shell (``base.html``: navigation, served revision, banners) or
the bare fragment when htmx asks, and builds URLs from handler names, so that no
handler or template spells a dashboard path.

Handler names follow the page: ``routes`` for a page, ``routes.edit`` for an action on
it; templates link with ``url_for("routes.edit", name=...)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import quote

from litestar import Request
from litestar.di import Provide
from litestar.response import Template
from litestar.template import TemplateProtocol

from server.core.gateway import Gateway
from server.core.reload import Reloader
from server.store import PolicyStore

__all__ = [
    "DEPENDENCIES",
    "NAV",
    "Notice",
    "Req",
    "View",
    "fragment",
    "is_htmx",
    "with_status",
]

Req = Request[Any, Any, Any]

NAV = (
    ("overview", "Overview"),
    ("routes", "Routes"),
    ("providers", "Providers"),
    ("keys", "API keys"),
    ("budgets", "Budgets"),
    ("revisions", "Revisions"),
    ("requests", "Requests"),
    ("playground", "Playground"),
)
"""``(handler name, label)`` of each page in the navigation; the name is also the
``active`` key a page passes to `View.page`."""


@dataclass(frozen=True, slots=True)
class View:
    """One dashboard request: what it may read and how it answers."""

    request: Req
    gateway: Gateway
    reloader: Reloader | None
    """None when the gateway serves its file: the pages then show it read-only."""
    assets_ok: bool
    """Whether htmx is installed (``make install``); the shell says so when it is not."""

    @classmethod
    def of(cls, request: Req) -> View:
        """The view of ``request``, from what the app holds (`create_app` sets it once):
        the ``view`` dependency, and what an exception handler, which gets no
        dependencies, answers with."""
        state = request.app.state
        return cls(request, state.gateway, state.reloader, state.dashboard_assets_ok)

    @property
    def store(self) -> PolicyStore | None:
        return None if self.reloader is None else self.reloader.store

    @property
    def htmx(self) -> bool:
        return is_htmx(self.request)

    @property
    def actor(self) -> str:
        """Who a write is recorded as: the dashboard, and how its user signed in."""
        session = self.request.scope.get("session")
        by = session.get("by") if isinstance(session, dict) else None
        return f"dashboard ({by})" if isinstance(by, str) and by else "dashboard"

    def url(self, handler: str, /, **path_params: Any) -> str:
        """The path of the handler named ``handler``, its string parameters quoted (a
        route's name may hold any character but ``/``). No path parameter is called
        ``name``: `Litestar.route_reverse` takes that itself."""
        quoted = {
            key: quote(value, safe="") if isinstance(value, str) else value
            for key, value in path_params.items()
        }
        return self.request.app.route_reverse(handler, **quoted)

    def template(self, name: str) -> TemplateProtocol:
        """A template of the app's engine, for what renders outside a `Template`
        response: an event stream renders each of its events itself."""
        engine = self.request.app.template_engine
        assert engine is not None  # `create_app` configures one
        template: TemplateProtocol = engine.get_template(name)
        return template

    def page(self, template: str, active: str, **context: Any) -> Template:
        """A whole page (``template`` extends ``base.html``)."""
        return Template(
            template_name=template,
            context={
                "nav": NAV,
                "active": active,
                "revision": self.gateway.table.revision,
                "has_store": self.reloader is not None,
                "assets_ok": self.assets_ok,
                **context,
            },
        )

    def answer(self, fragment_name: str, page_name: str, active: str, **context: Any) -> Template:
        """The fragment alone for htmx (swapped in place), else the page around it."""
        if self.htmx:
            return fragment(fragment_name, **context)
        return self.page(page_name, active, **context)


class Notice(NamedTuple):
    """A message above a page's list (``#page-notice``): what was done, or an error."""

    message: str
    error: bool = False

    @property
    def css(self) -> str:
        return "notice error" if self.error else "notice"

    @property
    def role(self) -> str:
        return "alert" if self.error else "status"


def fragment(template: str, **context: Any) -> Template:
    """A ``_``-prefixed partial, for an htmx swap."""
    return Template(template_name=template, context=context)


def with_status(template: Template, status: int) -> Template:
    template.status_code = status
    return template


def is_htmx(request: Req) -> bool:
    """Whether htmx sent the request (read from the header: exception handlers get a
    plain `Request`, not an `HTMXRequest`)."""
    return request.headers.get("hx-request") == "true"


DEPENDENCIES = {"view": Provide(View.of, sync_to_thread=False)}
"""The dashboard router's own dependencies (the app's are in `server.deps`)."""
