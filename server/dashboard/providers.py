"""Dashboard: the providers, which routes use each, and forms to add, edit and delete
them (the form is `server.dashboard.provider_form`, its fields
`server.dashboard.provider_fields`).

A provider's form has the fields of its kind; switching the kind fetches that kind's
fields (``hx-get``). Writes answer as the routes pages' do (`server.dashboard.writes`).
The pages say whether this gateway's environment has a provider's key variable set,
never its value, and show header names without their values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Template

from providers.config import GatewayConfig
from router.errors import ConfigError
from server.dashboard.common import View, fragment, with_status
from server.dashboard.forms import READ_ONLY, show_value
from server.dashboard.provider_fields import FIRST_KIND, KINDS
from server.dashboard.provider_form import KeyStatus, ProviderForm, key_status
from server.dashboard.writes import (
    UNAVAILABLE,
    current,
    done_notice,
    expected_revision,
    notice,
    save,
    write,
)
from server.store import PolicyStore, WriteResult
from server.store.schemas import canonical

__all__ = ["HANDLERS"]

SHOWN_APART = ("base_url", "api_key_env", "headers")
"""Fields the list shows in their own columns; the others are its options summary."""


class RouteUse(NamedTuple):
    """A route with targets on a provider: its models there, and its row in the list."""

    route: str
    models: list[str]
    href: str


@dataclass(frozen=True)
class ProviderView:
    name: str
    kind: str
    base_url: str | None
    key_env: str | None
    key_status: KeyStatus | None
    headers: list[str]
    """Header names only: their values may be credentials."""
    options: list[str]
    routes: list[RouteUse]
    """Every route with a target on this provider."""
    edit_url: str
    delete_url: str

    @property
    def used_by(self) -> str | None:
        """Why deleting it is refused: the routes naming it."""
        return ", ".join(r.route for r in self.routes) or None


def _options(config: Any) -> list[str]:
    """The fields that differ from the kind's defaults, except those shown apart."""
    data = canonical(config)
    defaults = canonical(type(config)())
    shown = []
    for key, value in data.items():
        if key == "kind" or key in SHOWN_APART or defaults.get(key) == value:
            continue
        if isinstance(value, dict | list):
            shown.append(f"{key}: {len(value)}")
        elif isinstance(value, str):
            text = value if len(value) <= 40 else value[:39] + "…"
            shown.append(f"{key}={text!r}")
        else:
            shown.append(f"{key}={show_value(value)}")
    return shown


def _provider_view(view: View, name: str, config: Any, all_config: GatewayConfig) -> ProviderView:
    data = canonical(config)
    kind = str(data["kind"])
    routes = view.url("routes")
    uses = []
    for route, policy in sorted(all_config.routes.items()):
        models = [t.partition("/")[2] for t in policy.members() if t.partition("/")[0] == name]
        if models:
            uses.append(RouteUse(route, models, f"{routes}#route-{route}"))
    key_env = data.get("api_key_env")
    return ProviderView(
        name=name,
        kind=kind,
        base_url=data.get("base_url"),
        key_env=key_env,
        key_status=key_status(view.gateway.env, kind, {"api_key_env": key_env or ""}),
        headers=sorted(data.get("headers") or {}),
        options=_options(config),
        routes=uses,
        edit_url=view.url("providers.edit", provider=name),
        delete_url=view.url("providers.delete", provider=name),
    )


def _kind(kind: str | None) -> str:
    return kind if kind in KINDS else FIRST_KIND


def _form_page(view: View, form: ProviderForm, status: int = 200) -> Template:
    """The form alone for htmx (swapped in place of itself), else the whole page."""
    creating = form.creating
    answer = view.answer(
        "_provider_form.html",
        "providers_form.html",
        "providers",
        form=form,
        kinds=tuple(KINDS),
        key_status=key_status(view.gateway.env, form.kind, form.values),
        action=view.url("providers.create")
        if creating
        else view.url("providers.update", provider=form.name),
    )
    return with_status(answer, status)


async def _save(view: View, name: str | None) -> Response[Any]:
    """Add (``name`` None) or replace a provider from the submitted form."""
    form = ProviderForm.read(await view.request.form(), name=name)

    async def put(store: PolicyStore) -> WriteResult | None:
        _, config = await store.load()
        provider = form.check(config)
        if provider is None:
            return None
        try:
            view.gateway.check_provider(form.name, provider)
        except ConfigError as exc:
            form.build_error(exc)
            return None
        return await store.put_provider(
            form.name, provider, actor=view.actor, expected_revision=form.expected_revision
        )

    return await save(view, "providers", form, put, _form_page)


@get("/providers", name="providers", exception_handlers=UNAVAILABLE)
async def providers_page(view: NamedDependency[View]) -> Template:
    now = await current(view)
    providers = now.config.providers
    views = [_provider_view(view, n, providers[n], now.config) for n in sorted(providers)]
    return view.page(
        "providers.html",
        "providers",
        providers=views,
        current=now,
        notice=done_notice(view, "Provider"),
    )


@get("/providers/new", name="providers.new", exception_handlers=UNAVAILABLE)
async def new_provider(view: NamedDependency[View], kind: FromQuery[str | None] = None) -> Template:
    now = await current(view)
    if not now.editable:
        return notice(view, READ_ONLY, 409, "providers")
    return _form_page(view, ProviderForm.blank(_kind(kind), revision=now.revision))


@get("/providers/fields", name="providers.fields")
async def provider_fields(
    view: NamedDependency[View], kind: FromQuery[str | None] = None
) -> Template:
    """The fields of another kind, at its defaults, when the kind select changes."""
    form = ProviderForm.blank(_kind(kind), revision=None)
    status = key_status(view.gateway.env, form.kind, form.values)
    return fragment("_provider_fields.html", form=form, key_status=status)


@post("/providers/new", name="providers.create", status_code=200)
async def create_provider(view: NamedDependency[View]) -> Response[Any]:
    return await _save(view, None)


@get("/providers/{provider:str}/edit", name="providers.edit", exception_handlers=UNAVAILABLE)
async def edit_provider(view: NamedDependency[View], provider: FromPath[str]) -> Template:
    now = await current(view)
    if not now.editable:
        return notice(view, READ_ONLY, 409, "providers")
    config = now.config.providers.get(provider)
    if config is None:
        return notice(view, f"There is no provider named {provider!r}.", 404, "providers")
    return _form_page(
        view, ProviderForm.of(provider, config, creating=False, revision=now.revision)
    )


@post("/providers/{provider:str}/edit", name="providers.update", status_code=200)
async def update_provider(view: NamedDependency[View], provider: FromPath[str]) -> Response[Any]:
    return await _save(view, provider)


@post("/providers/{provider:str}/delete", name="providers.delete", status_code=200)
async def delete_provider(view: NamedDependency[View], provider: FromPath[str]) -> Response[Any]:
    """Refused by the store while a route names the provider; its message says which."""
    expected = await expected_revision(view)
    return await write(
        view,
        "providers",
        lambda store: store.delete_provider(provider, actor=view.actor, expected_revision=expected),
        done=("deleted", provider),
        missing=f"There is no provider named {provider!r} any more.",
        located=False,  # the store's message names the route that uses it
    )


HANDLERS: list[Any] = [
    providers_page,
    new_provider,
    provider_fields,
    create_provider,
    edit_provider,
    update_provider,
    delete_provider,
]
