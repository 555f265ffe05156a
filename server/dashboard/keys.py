"""Dashboard: the virtual API keys (`server.store.keys`): list, create, rotate, revoke.

A key's secret exists in clear only in the answer to the request that created or rotated
it: the store keeps its SHA-256, so this page cannot show it again, and it is never put
in a URL, a redirect or the session. That is why a write answers with the keys panel
itself (``_keys.html``, swapped in place of ``#keys``) holding the secret, instead of
redirecting to the list as the routes pages do: a reload of the keys page shows the
list without it. Answers holding a secret are sent with ``Cache-Control: no-store``.

Each change is served by this process before the answer is sent
(`server.core.reload.Reloader.reload_keys`), as the admin API does, so a secret shown here
works at once. A gateway serving its file without a database has no key store: the page
says so and every write is refused (409).

The create form names the routes this process serves; none checked is every route
(``routes`` NULL), which also covers the routes added later. The store checks the name
(printable, not the name of another active key) and the routes (each one stored); its
refusals are shown next to their field with what was typed kept.
"""

from __future__ import annotations

from typing import Any

from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Template

from router.errors import ConfigError
from server.core.keys import ApiKey
from server.dashboard.common import Req, View, with_status
from server.dashboard.forms import STORE_DOWN, store_down_message
from server.dashboard.key_views import NO_DATABASE, KeyForm, KeysPanel, KeyView, Shown, order
from server.errors import KeyNameTaken, NotFound
from server.store.keys import CreatedKey

__all__ = ["HANDLERS"]

REFUSED: tuple[type[Exception], ...] = (NotFound, *STORE_DOWN)
"""What a rotate or revoke may fail with: the key is gone or revoked, or the store is."""


async def _panel(
    view: View,
    *,
    form: KeyForm | None = None,
    shown: Shown | None = None,
    message: str | None = None,
    error: bool = False,
    status: int = 200,
) -> Template:
    """The keys panel (notice, secret, form, list) for htmx, else the whole page with it.
    A store that cannot be listed is said above an empty list (503), never a 500."""
    served = sorted(view.gateway.table.routes)
    keys: list[ApiKey] = []
    if view.reloader is not None:
        try:
            keys = await view.reloader.keys.list()
        except STORE_DOWN as exc:
            message, error, status = store_down_message(exc), True, 503
    panel = KeysPanel(
        has_keys=view.reloader is not None,
        keys=[KeyView(k, frozenset(k.routes or ()) - set(served)) for k in order(keys)],
        served_routes=served,
        form=form or KeyForm(),
        shown=shown,
        message=message,
        error=error,
    )
    template = view.answer("_keys.html", "keys.html", "keys", panel=panel)
    if shown is not None:
        template.headers["Cache-Control"] = "no-store"
    return with_status(template, status)


def _shown(created: CreatedKey, action: str) -> Shown:
    return Shown(created.key, created.secret, action)


def _refusal(exc: Exception) -> tuple[str, int]:
    """The notice and status of a rotate or revoke the store refused."""
    if isinstance(exc, NotFound):
        return str(exc), 404
    return store_down_message(exc), 503


@get("/keys", name="keys")
async def keys_page(view: NamedDependency[View]) -> Template:
    return await _panel(view)


@post("/keys/new", name="keys.create", status_code=201)
async def create_key(view: NamedDependency[View], request: Req) -> Template:
    r = view.reloader
    if r is None:
        return await _panel(view, message=NO_DATABASE, error=True, status=409)
    form = KeyForm.read(await request.form())
    form.check()
    status = 422
    if not form.errors:
        try:
            created = await r.keys.create(form.name, form.routes or None)
        except KeyNameTaken:
            form.errors["name"] = (
                f"an active key is already named {form.name!r}: "
                "pick another name, or rotate or revoke that key"
            )
        except ConfigError as exc:
            form.store_error(exc)
        except NotFound as exc:  # the database holds no configuration yet
            form.banner, status = str(exc), 409
        except STORE_DOWN as exc:
            form.banner, status = store_down_message(exc), 503
        else:
            await r.reload_keys()
            return await _panel(view, shown=_shown(created, "created"), status=201)
    return await _panel(view, form=form, status=status)


@post("/keys/{key_id:str}/rotate", name="keys.rotate", status_code=200)
async def rotate_key(view: NamedDependency[View], key_id: FromPath[str]) -> Template:
    """A new secret for the key, shown once; the old one stops working at once."""
    r = view.reloader
    if r is None:
        return await _panel(view, message=NO_DATABASE, error=True, status=409)
    try:
        created = await r.keys.rotate(key_id)
    except REFUSED as exc:
        message, status = _refusal(exc)
        return await _panel(view, message=message, error=True, status=status)
    await r.reload_keys()
    return await _panel(view, shown=_shown(created, "rotated"))


@post("/keys/{key_id:str}/revoke", name="keys.revoke", status_code=200)
async def revoke_key(view: NamedDependency[View], key_id: FromPath[str]) -> Template:
    """Revoke the key (a second revoke changes nothing and says so)."""
    r = view.reloader
    if r is None:
        return await _panel(view, message=NO_DATABASE, error=True, status=409)
    try:
        was_active = (await r.keys.get(key_id)).active
        key = await r.keys.revoke(key_id)
    except REFUSED as exc:
        message, status = _refusal(exc)
        return await _panel(view, message=message, error=True, status=status)
    await r.reload_keys()
    if not was_active:
        return await _panel(view, message=f"Key {key.name!r} ({key.id}) was already revoked.")
    return await _panel(
        view, message=f"Key {key.name!r} ({key.id}) is revoked: its secret no longer works."
    )


HANDLERS: list[Any] = [keys_page, create_key, rotate_key, revoke_key]
