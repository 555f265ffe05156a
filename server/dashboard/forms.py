"""What the dashboard's forms and buttons share: error messages placed by key path,
redirects after a write, notices, and reading the configuration the pages show.

A form's values decode through the same msgspec Structs as the TOML file and the
admin API; an error's key path (``$.max_retries``, ``routes.chat.targets[1]``) names
the field its message is shown next to (`field_of`, `error_field`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from typing import Any, NamedTuple

import msgspec
from litestar import Response
from litestar.enums import MediaType
from litestar.response import Redirect, Template
from litestar.types import ExceptionHandlersMap
from sqlalchemy.exc import SQLAlchemyError

from providers.config import GatewayConfig, split_validation_error
from router.errors import ConfigError
from server.dashboard.common import Req, fragment, gateway, is_htmx, page, reloader, store
from server.errors import ConflictError
from server.store import WriteResult

__all__ = [
    "ACTOR",
    "READ_ONLY",
    "REVISIONS",
    "ROUTES",
    "STORE_DOWN",
    "UNAVAILABLE",
    "Current",
    "config_message",
    "conflict_message",
    "current",
    "error_field",
    "field_of",
    "flatten",
    "notice",
    "parse_revision",
    "redirect",
    "show_value",
    "store_down_message",
    "validation_message",
    "with_status",
    "wrote",
]

log = logging.getLogger("llmgate.dashboard")

ACTOR = "dashboard"
"""Recorded as the actor of every revision written from the dashboard."""
ROUTES = "/admin/routes"
REVISIONS = "/admin/revisions"
STORE_DOWN: tuple[type[Exception], ...] = (SQLAlchemyError, OSError)

# --------------------------------------------------------------------------------------
# What the routes and providers pages share: messages, key paths, writes, responses.


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


READ_ONLY = (
    "This gateway serves its configuration file without a database: routes and providers "
    "are read-only here."
)


def parse_revision(value: object) -> int | None:
    text = str(value or "").strip()
    return int(text) if text.isascii() and text.isdigit() else None


def with_status(template: Template, status: int) -> Template:
    template.status_code = status
    return template


def redirect(request: Req, url: str) -> Response[Any]:
    """Where a successful write goes: htmx follows ``HX-Redirect`` (a 3xx would be
    followed by its XHR and swapped into the form); a plain form post gets a 303."""
    if is_htmx(request):
        return Response(b"", media_type=MediaType.HTML, headers={"HX-Redirect": url})
    return Redirect(url, status_code=303)


def notice(
    request: Req, message: str, status: int, *, back: str = ROUTES, active: str = "routes"
) -> Template:
    """An error of a button (delete, roll back): for htmx the notice swapped in above
    the list (``#page-notice``); for a plain post or a page, a page saying it."""
    if is_htmx(request):
        return with_status(fragment("_route_notice.html", message=message, error=True), status)
    return with_status(
        page(request, "routes_error.html", active, message=message, back=back), status
    )


async def wrote(request: Req, result: WriteResult) -> None:
    """Serve the revision just written before answering, as the admin API does."""
    r = reloader(request)
    if r is not None:
        await r.wrote(result)


def _unavailable(request: Req, exc: Exception) -> Response[Any]:
    """A page whose store could not be read: a 503 saying so, never a bare 500."""
    if isinstance(exc, ConfigError):
        message = f"The stored configuration cannot be read: {exc}"
    else:
        message = store_down_message(exc).replace("; nothing was saved", "")
    path = request.url.path
    active = "providers" if path.startswith("/admin/providers") else "routes"
    return notice(request, message, 503, back="/admin", active=active)


UNAVAILABLE: ExceptionHandlersMap = {
    SQLAlchemyError: _unavailable,
    OSError: _unavailable,
    ConfigError: _unavailable,
}
"""Exception handlers of the GET pages that read the store."""


class Current(NamedTuple):
    """The configuration the pages show: the store's current revision, or the file."""

    revision: int
    config: GatewayConfig
    editable: bool


async def current(request: Req) -> Current:
    s = store(request)
    if s is None:
        gw = gateway(request)
        return Current(gw.table.revision, gw.config, False)
    revision, config = await s.load()
    return Current(revision, config, True)


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


# --------------------------------------------------------------------------------------
# The route form.
