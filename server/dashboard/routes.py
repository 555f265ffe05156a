"""Dashboard: the routes with their live health, and forms to change them (the form is
`server.dashboard.route_form`, the revision history `server.dashboard.revisions`).

The list shows every route's targets in order, with each target's circuit breaker state
(`router.engine.Engine.breaker_states`; a target never tried is closed) and its attempts
and failures of the last minutes (`server.observe.health.TargetHealth`). With a policy
store routes are created, edited and deleted here; a gateway serving its file shows that
file read-only.

A form sends the revision it was loaded at, so a save over someone else's newer change
is refused (409) instead of undoing it. An invalid submission answers 422 and a conflict
409, with the form re-rendered in place (``base.html`` configures htmx 2 to swap those);
a saved change answers with ``HX-Redirect`` to the list, which this process already
serves at the new revision (`server.dashboard.writes.write`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Template

from router.policy import RoutePolicy
from server.dashboard.common import View, fragment, with_status
from server.dashboard.filters import percent
from server.dashboard.forms import ACTOR, READ_ONLY, show_value
from server.dashboard.route_form import (
    DEFAULTS,
    GROUPS,
    MODES,
    REASONS,
    RouteForm,
    TargetsField,
    edit_rows,
)
from server.dashboard.writes import (
    UNAVAILABLE,
    current,
    done_notice,
    expected_revision,
    notice,
    save,
    write,
)
from server.observe.health import TargetHealth
from server.store import PolicyStore, WriteResult

__all__ = ["HANDLERS"]


@dataclass(frozen=True)
class TargetView:
    name: str
    state: str
    """The circuit breaker's: ``closed``, ``open`` or ``half_open``."""
    attempts: int
    failures: int

    @property
    def state_label(self) -> str:
        return self.state.replace("_", " ")

    @property
    def rate(self) -> float | None:
        return self.failures / self.attempts if self.attempts else None

    @property
    def rate_class(self) -> str:
        rate = self.rate or 0.0
        return "bad" if rate >= 0.5 else ("warn" if self.failures else "good")

    @property
    def outcome(self) -> str:
        failed = f"{self.failures}/{self.attempts} failed"
        return f"{failed} ({percent(self.rate)})" if self.failures else failed


@dataclass(frozen=True)
class RouteView:
    name: str
    policy: RoutePolicy
    targets: list[TargetView]
    edit_url: str
    delete_url: str

    @property
    def fallback_on(self) -> str | None:
        reasons = self.policy.fallback_on
        return None if reasons is None else ", ".join(sorted(reasons))

    @property
    def timeouts(self) -> str:
        p = self.policy
        seconds = (p.connect_timeout_s, p.first_token_timeout_s, p.stall_timeout_s)
        return " / ".join(show_value(t) for t in (*seconds, p.request_timeout_s)) + " s"

    @property
    def breaker(self) -> str:
        b = self.policy.breaker
        return f"opens after {b.failure_threshold} failures, for {show_value(b.cooldown_s)} s"


def _route_view(
    view: View, health: TargetHealth, states: dict[str, str], name: str, policy: RoutePolicy
) -> RouteView:
    targets = [
        TargetView(t, states.get(t, "closed"), *health.error_rate(t)) for t in policy.members()
    ]
    edit, delete = (view.url(h, route=name) for h in ("routes.edit", "routes.delete"))
    return RouteView(name, policy, targets, edit, delete)


def _target_options(view: View) -> list[str]:
    """Suggestions for a target row: ``provider/`` of each provider served."""
    return [f"{name}/" for name in sorted(view.gateway.table.providers)]


def _form_page(view: View, form: RouteForm, status: int = 200) -> Template:
    """The form alone for htmx (swapped in place of itself), else the whole page."""
    action = (
        view.url("routes.create") if form.creating else view.url("routes.update", route=form.name)
    )
    answer = view.answer(
        "_route_form.html",
        "routes_form.html",
        "routes",
        form=form,
        targets=form.targets_field(_target_options(view)),
        modes=MODES,
        reasons=REASONS,
        defaults=DEFAULTS,
        groups=GROUPS,
        action=action,
    )
    return with_status(answer, status)


async def _save(view: View, name: str | None) -> Response[Any]:
    """Create (``name`` None) or replace a route from the submitted form."""
    form = RouteForm.read(await view.request.form(), name=name)

    async def put(store: PolicyStore) -> WriteResult | None:
        _, config = await store.load()
        form.check(config)
        if form.errors:
            return None
        policy = form.policy()
        return await store.put_route(
            form.name, policy, actor=ACTOR, expected_revision=form.expected_revision
        )

    return await save(view, "routes", form, put, _form_page)


@get("/routes", name="routes", exception_handlers=UNAVAILABLE)
async def routes_page(
    view: NamedDependency[View], health: NamedDependency[TargetHealth]
) -> Template:
    now = await current(view)
    states = view.gateway.engine.breaker_states()
    routes = [
        _route_view(view, health, states, *item) for item in sorted(now.config.routes.items())
    ]
    return view.page(
        "routes.html",
        "routes",
        routes=routes,
        current=now,
        notice=done_notice(view, "Route"),
        window_min=max(1, round(health.window_s / 60)),
    )


@get("/routes/new", name="routes.new", exception_handlers=UNAVAILABLE)
async def new_route(view: NamedDependency[View]) -> Template:
    now = await current(view)
    if not now.editable:
        return notice(view, READ_ONLY, 409, "routes")
    return _form_page(view, RouteForm.of("", RoutePolicy(), creating=True, revision=now.revision))


@post("/routes/new", name="routes.create", status_code=200)
async def create_route(view: NamedDependency[View]) -> Response[Any]:
    return await _save(view, None)


@get("/routes/{route:str}/edit", name="routes.edit", exception_handlers=UNAVAILABLE)
async def edit_route(view: NamedDependency[View], route: FromPath[str]) -> Template:
    now = await current(view)
    if not now.editable:
        return notice(view, READ_ONLY, 409, "routes")
    policy = now.config.routes.get(route)
    if policy is None:
        return notice(view, f"There is no route named {route!r}.", 404, "routes")
    return _form_page(view, RouteForm.of(route, policy, creating=False, revision=now.revision))


@post("/routes/{route:str}/edit", name="routes.update", status_code=200)
async def update_route(view: NamedDependency[View], route: FromPath[str]) -> Response[Any]:
    return await _save(view, route)


@post("/routes/targets", name="routes.targets", status_code=200)
async def route_targets(view: NamedDependency[View]) -> Template:
    """The targets fieldset again, from the submitted form, with one row added, removed
    or moved (``op`` is ``add``, ``remove:I``, ``up:I`` or ``down:I``). Only the fieldset
    is swapped: the rest of the form keeps what was typed."""
    form = await view.request.form()
    targets = edit_rows(
        [str(t).strip() for t in form.getall("targets", [])], str(form.get("op") or "")
    )
    field = TargetsField.of(targets, {}, _target_options(view))
    return fragment("_route_targets.html", targets=field)


@post("/routes/{route:str}/delete", name="routes.delete", status_code=200)
async def delete_route(view: NamedDependency[View], route: FromPath[str]) -> Response[Any]:
    expected = await expected_revision(view)
    return await write(
        view,
        "routes",
        lambda store: store.delete_route(route, actor=ACTOR, expected_revision=expected),
        done=("deleted", route),
        missing=f"There is no route named {route!r} any more.",
    )


HANDLERS: list[Any] = [
    routes_page,
    new_route,
    create_route,
    route_targets,
    edit_route,
    update_route,
    delete_route,
]
