"""Dashboard: the routes with their live health, and forms to change them (the form is
`server.dashboard.route_form`, the revision history `server.dashboard.revisions`).

The list shows every route's entries in order, a pool's members under its strategy, and
per target its breaker state, its recent attempts, failures and share of the route's,
its requests in flight and recent time to first token (`server.dashboard.route_views`).
With a policy store routes are created, edited and deleted here; a gateway serving its
file shows that file read-only.

A form sends the revision it was loaded at, so a save over someone else's newer change
is refused (409) instead of undoing it. An invalid submission answers 422 and a conflict
409, with the form re-rendered in place (``base.html`` configures htmx 2 to swap those);
a saved change answers with ``HX-Redirect`` to the list, which this process already
serves at the new revision (`server.dashboard.writes.write`).
"""

from __future__ import annotations

from typing import Any

from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Template

from router.policy import RoutePolicy
from server.dashboard.common import View, fragment, with_status
from server.dashboard.forms import READ_ONLY
from server.dashboard.route_form import (
    AFFINITIES,
    DEFAULTS,
    GROUPS,
    MODES,
    REASONS,
    RouteForm,
    TargetsField,
    edit_rows,
)
from server.dashboard.route_views import Live, RouteView
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


def _route_view(view: View, live: Live, name: str, policy: RoutePolicy) -> RouteView:
    edit, delete = (view.url(h, route=name) for h in ("routes.edit", "routes.delete"))
    return RouteView(name, policy, live.entries(policy), edit, delete)


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
        affinities=AFFINITIES,
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
            form.name, policy, actor=view.actor, expected_revision=form.expected_revision
        )

    return await save(view, "routes", form, put, _form_page)


@get("/routes", name="routes", exception_handlers=UNAVAILABLE)
async def routes_page(
    view: NamedDependency[View], health: NamedDependency[TargetHealth]
) -> Template:
    now = await current(view)
    engine = view.gateway.engine
    live = Live(health, engine.breaker_states(), engine.loads())
    routes = [_route_view(view, live, *item) for item in sorted(now.config.routes.items())]
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
        lambda store: store.delete_route(route, actor=view.actor, expected_revision=expected),
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
