"""Dashboard: the virtual API keys (`server.store.keys`): list, create, rotate, revoke.

A key's secret exists in clear only in the answer to the request that created or rotated
it: the store keeps its SHA-256, so this page cannot show it again, and it is never put
in a URL, a redirect or the session. That is why a write answers with the keys panel
itself (``_keys.html``, swapped in place of ``#keys``) holding the secret, instead of
redirecting to the list as the routes pages do: a reload of ``/admin/keys`` shows the
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

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from litestar import get, post
from litestar.datastructures import FormMultiDict
from litestar.response import Template

from router.errors import ConfigError
from server.core.keys import ApiKey
from server.dashboard.common import Req, fragment, gateway, is_htmx, page, reloader
from server.dashboard.forms import STORE_DOWN, config_message, store_down_message, with_status
from server.errors import KeyNameTaken, NotFound
from server.store.keys import CreatedKey
from server.store.models import NAME_LENGTH

__all__ = ["HANDLERS", "KeyForm", "KeyView"]

REFUSED: tuple[type[Exception], ...] = (NotFound, *STORE_DOWN)
"""What a rotate or revoke may fail with: the key is gone or revoked, or the store is."""

NO_DATABASE = (
    "This gateway serves its configuration file without a database, and virtual API keys "
    "live in the database: `llmgate serve` (SQLite by default, or --database-url) serves "
    "from one. Clients use the master key meanwhile."
)


@dataclass
class KeyForm:
    """The create form as typed, and its errors by field (``name``, ``routes``)."""

    name: str = ""
    routes: list[str] = field(default_factory=list)
    """The checked routes; none is every route."""
    errors: dict[str, str] = field(default_factory=dict)
    banner: str | None = None

    @classmethod
    def read(cls, form: FormMultiDict) -> KeyForm:
        checked = [str(r).strip() for r in form.getall("routes", [])]
        return cls(name=str(form.get("name") or "").strip(), routes=[r for r in checked if r])

    def check(self) -> None:
        """What the store would refuse, said in the form's words (the store checks again)."""
        if not self.name:
            self.errors["name"] = "Enter a name: it tells this key apart from the others."
        elif len(self.name) > NAME_LENGTH:
            self.errors["name"] = f"a key name must be 1 to {NAME_LENGTH} characters long"
        elif not self.name.isprintable():
            self.errors["name"] = "a key name may only use printable characters"

    def store_error(self, exc: ConfigError) -> None:
        """A store's `ConfigError` next to its field (``where`` is ``key: name`` or
        ``key: routes``), or above the form."""
        where = exc.path
        if where in ("name", "routes"):
            self.errors.setdefault(where, config_message(exc))
        else:
            self.banner = str(exc)


@dataclass(frozen=True)
class KeyView:
    """One row of the list: a key, and which of its routes this process does not serve."""

    key: ApiKey
    gone: frozenset[str]
    """Routes the key names that no longer exist (deleted after the key was made)."""

    @property
    def state(self) -> str:
        return "active" if self.key.active else "revoked"


@dataclass(frozen=True)
class Shown:
    """A secret shown once, with what it belongs to and what was done."""

    key: ApiKey
    secret: str
    action: str
    """``created`` or ``rotated``."""


def _order(keys: list[ApiKey]) -> list[ApiKey]:
    """Active keys first, newest first; then the revoked ones, last revoked first."""
    epoch = datetime.min.replace(tzinfo=UTC)
    active = sorted((k for k in keys if k.active), key=lambda k: k.created_at, reverse=True)
    revoked = sorted(
        (k for k in keys if not k.active), key=lambda k: k.revoked_at or epoch, reverse=True
    )
    return [*active, *revoked]


async def _panel(
    request: Req,
    *,
    form: KeyForm | None = None,
    shown: Shown | None = None,
    message: str | None = None,
    error: bool = False,
    status: int = 200,
) -> Template:
    """The keys panel (notice, secret, form, list) for htmx, else the whole page with it.
    A store that cannot be listed is said above an empty list (503), never a 500."""
    served = sorted(gateway(request).table.routes)
    r = reloader(request)
    views: list[KeyView] = []
    if r is not None:
        try:
            keys = await r.keys.list()
        except STORE_DOWN as exc:
            message, error, status = store_down_message(exc), True, 503
            keys = []
        views = [KeyView(k, frozenset(k.routes or ()) - set(served)) for k in _order(keys)]
    context = {
        "has_keys": r is not None,
        "keys": views,
        "form": form or KeyForm(),
        "served_routes": served,
        "shown": shown,
        "message": message,
        "error": error,
        "no_database": NO_DATABASE,
    }
    if is_htmx(request):
        template = fragment("_keys.html", **context)
    else:
        template = page(request, "keys.html", "keys", **context)
    if shown is not None:
        template.headers["Cache-Control"] = "no-store"
    return with_status(template, status)


def _shown(created: CreatedKey, action: str) -> Shown:
    return Shown(created.key, created.secret, action)


@get("/keys", name="keys")
async def keys_page(request: Req) -> Template:
    return await _panel(request)


@post("/keys/new", status_code=201)
async def create_key(request: Req) -> Template:
    r = reloader(request)
    if r is None:
        return await _panel(request, message=NO_DATABASE, error=True, status=409)
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
            return await _panel(request, shown=_shown(created, "created"), status=201)
    return await _panel(request, form=form, status=status)


def _refusal(exc: Exception) -> tuple[str, int]:
    """The notice and status of a rotate or revoke the store refused."""
    if isinstance(exc, NotFound):
        return str(exc), 404
    return store_down_message(exc), 503


@post("/keys/{id:str}/rotate", status_code=200)
async def rotate_key(request: Req) -> Template:
    """A new secret for the key, shown once; the old one stops working at once."""
    r = reloader(request)
    if r is None:
        return await _panel(request, message=NO_DATABASE, error=True, status=409)
    try:
        created = await r.keys.rotate(request.path_params["id"])
    except REFUSED as exc:
        message, status = _refusal(exc)
        return await _panel(request, message=message, error=True, status=status)
    await r.reload_keys()
    return await _panel(request, shown=_shown(created, "rotated"))


@post("/keys/{id:str}/revoke", status_code=200)
async def revoke_key(request: Req) -> Template:
    """Revoke the key (a second revoke changes nothing and says so)."""
    r = reloader(request)
    if r is None:
        return await _panel(request, message=NO_DATABASE, error=True, status=409)
    key_id: str = request.path_params["id"]
    try:
        was_active = (await r.keys.get(key_id)).active
        key = await r.keys.revoke(key_id)
    except REFUSED as exc:
        message, status = _refusal(exc)
        return await _panel(request, message=message, error=True, status=status)
    await r.reload_keys()
    if not was_active:
        return await _panel(request, message=f"Key {key.name!r} ({key.id}) was already revoked.")
    return await _panel(
        request, message=f"Key {key.name!r} ({key.id}) is revoked: its secret no longer works."
    )


HANDLERS: list[Any] = [keys_page, create_key, rotate_key, revoke_key]
