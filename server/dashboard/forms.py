"""What the dashboard's forms share: error messages placed by key path, the values a
form shows, and the state every configuration form has (`Form`).

A form's values decode through the same msgspec Structs as the TOML file and the
admin API; an error's key path (``$.max_retries``, ``routes.chat.targets[1]``) names
the field its message is shown next to (`field_of`, `error_field`). What a write
answers (a redirect, a notice, the form again) is in `server.dashboard.writes`.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple, Self

import msgspec
from sqlalchemy.exc import SQLAlchemyError

from providers.config import split_validation_error
from router.errors import ConfigError
from server.errors import ConflictError

__all__ = [
    "READ_ONLY",
    "STORE_DOWN",
    "Form",
    "Refused",
    "config_message",
    "conflict_message",
    "error_field",
    "field_of",
    "flatten",
    "parse_revision",
    "show_value",
    "store_down_message",
    "validation_message",
]

log = logging.getLogger("llmgate.dashboard")

STORE_DOWN: tuple[type[Exception], ...] = (SQLAlchemyError, OSError)

READ_ONLY = (
    "This gateway serves its configuration file without a database: routes and providers "
    "are read-only here."
)


def validation_message(exc: msgspec.ValidationError, value: object = None) -> tuple[str, str]:
    """``(message, key path after $)`` of a msgspec error, e.g. ``("Expected `int` <= 10",
    ".max_retries")``. A form's values are strings, so "got `str`" says little: it names
    the value typed instead."""
    detail, at = split_validation_error(exc)
    if isinstance(value, str) and detail.endswith(", got `str`"):
        detail = detail.removesuffix("`str`") + repr(value)
    return detail, at


def config_message(exc: ConfigError) -> str:
    """A `ConfigError`'s message without its ``where`` prefix (shown next to the field)."""
    return exc.detail


def field_of(path: str, rows: Collection[str] = ()) -> str:
    """The form field a key path inside one table names: ``.breaker.cooldown_s`` is
    ``breaker.cooldown_s``; ``.targets[1]`` is the row ``targets[1]`` when ``targets``
    is in ``rows``, and ``.fallback_on[0]`` or ``.headers[...]`` the whole field."""
    head, bracket, rest = path.lstrip(".").partition("[")
    index = rest.partition("]")[0]
    if bracket and head in rows and index.isdigit():
        return f"{head}[{index}]"
    return head


def error_field(exc: ConfigError, table: str, rows: Collection[str] = ()) -> str | None:
    """The field of ``table`` (``routes.chat``) the key path of a store's `ConfigError`
    names (``where`` is ``config: routes.chat.targets[1]``): ``name`` for the table
    itself, None for a path outside it (shown above the form)."""
    path = exc.path
    if path == table:
        return "name"
    if path.startswith(table) and path[len(table) : len(table) + 1] in (".", "["):
        return field_of(path[len(table) :], rows)
    return None


def conflict_message(exc: ConflictError) -> str:
    return (
        f"Someone else changed the configuration: it is now at revision {exc.current}, "
        f"and this page was loaded at revision {exc.expected}. Reload to see the current "
        f"version before you change it."
    )


def store_down_message(exc: Exception) -> str:
    log.warning("dashboard: the policy store failed: %s: %s", type(exc).__name__, exc)
    return (
        f"The policy store is unavailable ({type(exc).__name__}); nothing was saved. "
        f"See the server log."
    )


def parse_revision(value: object) -> int | None:
    text = str(value or "").strip()
    return int(text) if text.isascii() and text.isdigit() else None


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted key path, value)`` of a table's plain data, nested tables by key."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from flatten(item, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def show_value(value: Any) -> str:
    """A value as the form shows it: ``8`` for 8.0, never ``None``."""
    if value is None:
        return ""
    if isinstance(value, float):
        text = repr(value)
        return text.removesuffix(".0")
    if isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()


class Refused(NamedTuple):
    """Why a write was not done, said with ``status``."""

    message: str
    status: int
    error: ConfigError | None = None
    """The store's refusal of the configuration (422): a form shows it at its field."""
    conflict: bool = False
    """Someone else wrote since the page loaded (409): reloading shows their change."""


@dataclass(kw_only=True)
class Form:
    """What every form of a configuration table (a route, a provider) has besides its
    fields: the table's name, the revision it was loaded at, errors by field, and the
    banner above it. Subclasses name their ``section`` and rows (`field_of`)."""

    section: ClassVar[str]
    """``routes`` or ``providers``: the key path of a table is ``section.name``."""
    rows: ClassVar[tuple[str, ...]] = ()

    name: str
    creating: bool
    expected_revision: int | None
    errors: dict[str, str] = field(default_factory=dict)
    banner: str | None = None
    stale: bool = False
    """Refused as a conflict: the banner offers to reload the form."""

    @property
    def expected(self) -> str:
        """The revision the form was loaded at, as its hidden field sends it."""
        return "" if self.expected_revision is None else str(self.expected_revision)

    @property
    def alert(self) -> str | None:
        """What the banner above the form says: why nothing was saved."""
        if self.banner or not self.errors:
            return self.banner
        fields = "field" if len(self.errors) == 1 else f"{len(self.errors)} fields"
        return f"Nothing was saved: correct the {fields} marked below."

    def store_error(self, exc: ConfigError) -> None:
        """A store's refusal next to its field, or above the form when its key path is
        outside the table, or names the table being edited (its name is not a field)."""
        where = error_field(exc, f"{self.section}.{self.name}", self.rows)
        if where is None or (where == "name" and not self.creating):
            self.banner = str(exc).removeprefix("config: ")
        else:
            self.errors.setdefault(where, config_message(exc))

    def refused(self, refused: Refused) -> Self:
        """The form again, saying why its write was refused."""
        if refused.error is not None:
            self.store_error(refused.error)
        elif refused.message:
            self.banner, self.stale = refused.message, refused.conflict
        return self
