"""What the keys page shows, worked out before a template sees it: the create form with
its errors, the list, and a secret shown once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar

from litestar.datastructures import FormMultiDict

from router.errors import ConfigError
from server.core.keys import ApiKey
from server.dashboard.common import Notice
from server.dashboard.forms import config_message
from server.store.models import NAME_LENGTH

__all__ = ["NO_DATABASE", "KeyForm", "KeyRow", "KeyView", "KeysPanel", "Shown", "order"]

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

    @property
    def errors_text(self) -> str:
        """``field`` or ``2 fields``: how many the banner asks to correct."""
        n = len(self.errors)
        return "field" if n == 1 else f"{n} fields"


@dataclass(frozen=True)
class KeyRow:
    """A key in a table: its state, as its row and its badge say it."""

    key: ApiKey

    @property
    def state(self) -> str:
        return "active" if self.key.active else "revoked"

    @property
    def badge(self) -> str:
        return "ok" if self.key.active else "revoked"


@dataclass(frozen=True)
class KeyView(KeyRow):
    """One row of the list: a key, and which of its routes this process does not serve."""

    gone: frozenset[str]
    """Routes the key names that no longer exist (deleted after the key was made)."""


@dataclass(frozen=True)
class Shown:
    """A secret shown once, with what it belongs to and what was done."""

    key: ApiKey
    secret: str
    action: str
    """``created`` or ``rotated``."""

    @property
    def rotated(self) -> bool:
        return self.action == "rotated"

    @property
    def title(self) -> str:
        return "New secret of key" if self.rotated else "New key"

    @property
    def routes_label(self) -> str:
        """What precedes the key's routes in "it may use ...": ``every route`` (which
        names none), ``the route`` or ``the routes``."""
        routes = self.key.routes
        if routes is None:
            return "every route"
        return "the routes" if len(routes) > 1 else "the route"


def order(keys: Sequence[ApiKey]) -> list[ApiKey]:
    """Active keys first, newest first; then the revoked ones, last revoked first."""
    epoch = datetime.min.replace(tzinfo=UTC)
    active = sorted((k for k in keys if k.active), key=lambda k: k.created_at, reverse=True)
    revoked = sorted(
        (k for k in keys if not k.active), key=lambda k: k.revoked_at or epoch, reverse=True
    )
    return [*active, *revoked]


@dataclass(frozen=True)
class KeysPanel:
    """What a write did (a notice, or a secret shown once), the create form and the
    list; every write answers with it."""

    no_database: ClassVar[str] = NO_DATABASE
    has_keys: bool
    """Whether there is a key store (the gateway serves from a database)."""
    keys: list[KeyView]
    served_routes: list[str]
    form: KeyForm = field(default_factory=KeyForm)
    shown: Shown | None = None
    message: str | None = None
    error: bool = False

    @property
    def active_count(self) -> int:
        return sum(1 for v in self.keys if v.key.active)

    @property
    def revoked_count(self) -> int:
        return len(self.keys) - self.active_count

    @property
    def notice(self) -> Notice | None:
        return None if self.message is None else Notice(self.message, self.error)

    @property
    def route_choices(self) -> list[str]:
        """The routes served, and any the form names that are not (kept as typed)."""
        return self.served_routes + [r for r in self.form.routes if r not in self.served_routes]
