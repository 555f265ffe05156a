"""How the configuration pages write to the policy store and answer: `write`.

Every write from a page (save a form, delete a route or provider, roll back) is a call
to the store that may be refused the same few ways, each said the same way:

- no store (the gateway serves its file): 409, the read-only notice;
- someone else wrote since the page loaded (`ConflictError`): 409;
- the item is gone (`NotFound`): 404;
- the configuration it makes is invalid (`ConfigError`), or the form's own checks
  refused it: 422;
- the store is unavailable (`STORE_DOWN`): 503.

A refusal is shown by the page: a form again with its banner or field error
(`Form.refused`), or a notice (`notice`: swapped in above the list for htmx, a page
otherwise). A done write is served by this process first (`Reloader.wrote`, as the
admin API does), then answered with a redirect to the list, whose query says what was
done (`Done`) and which the list shows as its notice (`done_notice`).

The GET pages that read the store answer 503 with a notice when it cannot be read
(`UNAVAILABLE`), never a bare 500.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple, TypeVar
from urllib.parse import urlencode

import msgspec
from litestar import Response
from litestar.enums import MediaType
from litestar.response import Redirect, Template
from litestar.types import ExceptionHandlersMap
from sqlalchemy.exc import SQLAlchemyError

from providers.config import GatewayConfig
from router.errors import ConfigError
from server.dashboard.common import Notice, Req, View, fragment, with_status
from server.dashboard.forms import (
    READ_ONLY,
    STORE_DOWN,
    Form,
    Refused,
    conflict_message,
    parse_revision,
    store_down_message,
    validation_message,
)
from server.errors import ConflictError, NotFound
from server.store import PolicyStore, WriteResult

__all__ = [
    "UNAVAILABLE",
    "Current",
    "Done",
    "current",
    "done_notice",
    "expected_revision",
    "notice",
    "save",
    "write",
]

Run = Callable[[PolicyStore], Awaitable[WriteResult | None]]
"""One write to the store; None when the page's own checks refused it (422: its form
says where)."""
Refuse = Callable[[Refused], Response[Any]]
F = TypeVar("F", bound=Form)
VERBS = ("saved", "deleted", "rolled_back")
"""What a write may have done (`Done.verb`)."""


class Done(NamedTuple):
    """What a write did, carried in the query of the redirect after it
    (``?saved=chat&revision=4``) for the list to say."""

    verb: str
    """``saved``, ``deleted`` or ``rolled_back``."""
    what: str
    """The route or provider; for a rollback, the revision rolled back to."""
    revision: int
    """The revision served after the write."""
    unchanged: bool = False

    def query(self) -> str:
        query = {self.verb: self.what, "revision": str(self.revision)}
        if self.unchanged:
            query["unchanged"] = "1"
        return urlencode(query)

    @classmethod
    def read(cls, query: Mapping[str, str]) -> Done | None:
        verb = next((v for v in VERBS if query.get(v)), None)
        revision = parse_revision(query.get("revision"))
        if verb is None or revision is None:
            return None
        return cls(verb, query[verb], revision, bool(query.get("unchanged")))

    def message(self, noun: str) -> str:
        """What the list says, ``noun`` naming what the write was to (``Route``)."""
        if self.verb == "rolled_back":
            if self.unchanged:
                return f"Nothing changed: revision {self.what} is the current configuration."
            return f"Rolled back to revision {self.what}: revision {self.revision} is served."
        if self.unchanged:
            return f"Nothing changed: the configuration stays at revision {self.revision}."
        return f"{noun} {self.what!r} {self.verb}: revision {self.revision} is served."


def done_notice(view: View, noun: str) -> Notice | None:
    """The notice of a list the redirect after a write led to."""
    done = Done.read(view.request.query_params)
    return None if done is None else Notice(done.message(noun))


async def expected_revision(view: View) -> int | None:
    """The revision a button's form was loaded at (its hidden field)."""
    return parse_revision((await view.request.form()).get("expected_revision"))


def notice(view: View, message: str, status: int, page: str, back: str | None = None) -> Template:
    """An error said on its own: for htmx the notice swapped in above the list
    (``#page-notice``); for a plain post or a page, a page saying it, with a link back to
    the handler ``back`` (``page``, the page it belongs to, by default)."""
    said = Notice(message, error=True)
    if view.htmx:
        return with_status(fragment("_notice.html", notice=said), status)
    answer = view.page("notice.html", page, notice=said, back=view.url(back or page))
    return with_status(answer, status)


def redirect(view: View, url: str) -> Response[Any]:
    """Where a done write goes: htmx follows ``HX-Redirect`` (a 3xx would be followed
    by its XHR and swapped into the form); a plain form post gets a 303."""
    if view.htmx:
        return Response(b"", media_type=MediaType.HTML, headers={"HX-Redirect": url})
    return Redirect(url, status_code=303)


async def write(
    view: View,
    page: str,
    run: Run,
    *,
    done: tuple[str, str],
    missing: str | None = None,
    invalid: str | None = None,
    located: bool = True,
    refuse: Refuse | None = None,
) -> Response[Any]:
    """Run one write of the list ``page`` (``routes``) and answer.

    ``done`` is the verb and subject the list then says (``("saved", "chat")``).
    ``missing`` is what a `NotFound` says, ``invalid`` what a `ConfigError`'s message is
    prefixed with; ``located`` says whether it names the key path it is about (else
    the message alone); ``refuse`` shows a refusal (a form again), a notice of ``page``
    by default.
    """
    store = view.store
    if store is None:
        return notice(view, READ_ONLY, 409, page)
    try:
        result = await run(store)
    except ConflictError as exc:
        refused = Refused(conflict_message(exc), 409, conflict=True)
    except NotFound as exc:
        refused = Refused(missing or str(exc), 404)
    except ConfigError as exc:
        said = f"{exc.path}: {exc.detail}" if located and exc.path else exc.detail
        said = f"{invalid}: {said}" if invalid else said
        refused = Refused(said, 422, exc)
    except msgspec.ValidationError as exc:  # a form checks each field first: not expected
        refused = Refused(validation_message(exc)[0], 422)
    except STORE_DOWN as exc:
        refused = Refused(store_down_message(exc), 503)
    else:
        if result is not None:
            if view.reloader is not None:
                await view.reloader.wrote(result)
            verb, what = done
            query = Done(verb, what, result.revision, not result.written).query()
            return redirect(view, f"{view.url(page)}?{query}")
        refused = Refused("", 422)  # the form's own checks: its fields say why
    if refuse is None:
        assert refused.message, "only a form's write (`save`) may refuse without a message"
        return notice(view, refused.message, refused.status, page)
    return refuse(refused)


async def save(
    view: View, page: str, form: F, run: Run, render: Callable[[View, F, int], Response[Any]]
) -> Response[Any]:
    """`write` what ``form`` holds (``run``); refused, the form again (``render``), saying
    why at its field or above it."""

    def refuse(refused: Refused) -> Response[Any]:
        return render(view, form.refused(refused), refused.status)

    return await write(view, page, run, done=("saved", form.name), refuse=refuse)


class Current(NamedTuple):
    """The configuration the pages show: the store's current revision, or the file."""

    revision: int
    config: GatewayConfig
    editable: bool
    served: int
    """The revision this process serves (behind ``revision`` until it reloads)."""

    @property
    def status(self) -> str:
        if not self.editable:
            return "served from the configuration file, read-only"
        if self.served != self.revision:
            return (
                f"configuration revision {self.revision}; "
                f"this process still serves revision {self.served}"
            )
        return f"configuration revision {self.revision}"


async def current(view: View) -> Current:
    served = view.gateway.table.revision
    if view.store is None:
        return Current(served, view.gateway.config, False, served)
    revision, config = await view.store.load()
    return Current(revision, config, True, served)


def _unavailable(request: Req, exc: Exception) -> Response[Any]:
    """A page whose store could not be read: a 503 saying so, never a bare 500.

    An exception handler gets the request, not the handler's dependencies."""
    if isinstance(exc, ConfigError):
        message = f"The stored configuration cannot be read: {exc}"
    else:
        message = store_down_message(exc).replace("; nothing was saved", "")
    view = View.of(request)
    page = (request.route_handler.name or "overview").partition(".")[0]
    return notice(view, message, 503, page, back="overview")


UNAVAILABLE: ExceptionHandlersMap = {
    SQLAlchemyError: _unavailable,
    OSError: _unavailable,
    ConfigError: _unavailable,
}
"""Exception handlers of the GET pages that read the store."""
