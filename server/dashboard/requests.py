"""Dashboard: the live requests table and the request detail page.

The table lists the request log newest first, filtered by route, status or target, a
keyset page at a time (`server.store.request_log.log_page`): a page link carries the
cursor of the row it starts after, never an offset. The first page also connects to the
live feed (`server.dashboard.live`), so requests appear as they start and their rows
change as they run and end.

The detail page shows one request: its attempts as a timeline, the stream switches, and
what the client was shown (its transcript) with every switch where it happened
(`server.dashboard.request_views`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, HeaderParameter
from litestar.response import Template

from server.dashboard.common import View, fragment, with_status
from server.dashboard.request_views import RequestsTable, RowView
from server.dashboard.timeline import Detail
from server.observe.live import LiveFeed, LiveRow
from server.store.models import NAME_LENGTH, TARGET_LENGTH
from server.store.request_log import STATUSES, Cursor, LogPage, log_entry, log_page

__all__ = ["HANDLERS", "decode_cursor", "encode_cursor"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f]*$")

HxTarget = Annotated[str | None, HeaderParameter(name="hx-target")]
HxTrigger = Annotated[str | None, HeaderParameter(name="hx-trigger")]
"""The ids of the element htmx swaps, and of the one that asked."""


def encode_cursor(cursor: Cursor) -> str:
    """``MICROSECONDS.ID``: exact (a float or a formatted time could round) and short."""
    moment, row_id = cursor
    delta = moment - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return f"{micros}.{row_id}"


def decode_cursor(raw: str) -> Cursor | None:
    """The cursor ``raw`` encodes, or None if it is not one."""
    micros, sep, row_id = raw.partition(".")
    if not sep or not row_id or not (micros.isascii() and micros.isdigit()) or len(micros) > 18:
        return None
    if len(row_id) > 64 or not _PRINTABLE.match(row_id):
        return None
    try:
        return _EPOCH + timedelta(microseconds=int(micros)), row_id
    except OverflowError:
        return None


def _filters(typed: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The filters as typed, and an error per field whose value cannot match anything
    (that filter is then left out of the query, and the form says why)."""
    values = {k: v.strip() for k, v in typed.items()}
    errors: dict[str, str] = {}
    for key, limit in (("route", NAME_LENGTH), ("target", TARGET_LENGTH)):
        if len(values[key]) > limit:
            errors[key] = f"at most {limit} characters"
        elif not _PRINTABLE.match(values[key]):
            errors[key] = "control characters are not allowed"
    if values["status"] and values["status"] not in STATUSES:
        errors["status"] = f"expected one of {', '.join(STATUSES)}"
    return values, errors


def _cursors(before: str, after: str) -> tuple[Cursor | None, Cursor | None, str]:
    """The page's ``before`` and ``after`` cursors; a bad link shows the newest page,
    with the reason (else ``""``)."""
    older, newer = decode_cursor(before), decode_cursor(after)
    if (before and older is None) or (after and newer is None):
        return None, None, "That page link is not valid: showing the newest requests."
    if older is not None and newer is not None:
        return None, None, "A page has either an older or a newer cursor, not both."
    return older, newer, ""


async def _table(view: View, typed: dict[str, str], before: str, after: str) -> RequestsTable:
    filters, errors = _filters(typed)
    valid = {k: v for k, v in filters.items() if v and k not in errors}
    older, newer, errors["cursor"] = _cursors(before, after)
    page = LogPage([], None, None)
    if view.store is not None:
        page = await log_page(view.store.engine, valid, before=older, after=newer)
    # The configured routes and targets are suggested: filling the form never scans the
    # log for its distinct values.
    routes = view.gateway.table.routes
    return RequestsTable(
        view=view,
        filters=filters,
        errors=errors,
        valid=valid,
        rows=[RowView.of(LiveRow.from_log(row), view) for row in page.rows],
        has_log=view.store is not None,
        live=older is None and newer is None,
        newer=encode_cursor(page.newer) if page.newer else "",
        older=encode_cursor(page.older) if page.older else "",
        route_options=sorted(routes),
        target_options=sorted({t.name for r in routes.values() for t in r.targets}),
    )


@get("/requests", name="requests")
async def requests_page(
    view: NamedDependency[View],
    route: FromQuery[str] = "",
    status: FromQuery[str] = "",
    target: FromQuery[str] = "",
    before: FromQuery[str] = "",
    after: FromQuery[str] = "",
    hx_target: HxTarget = None,
    hx_trigger: HxTrigger = None,
) -> Template:
    """The whole page, or the table alone for htmx (filters, pages, a resync)."""
    typed = {"route": route, "status": status, "target": target}
    table = await _table(view, typed, before, after)
    if not (view.htmx and hx_target == "requests"):
        return view.page("requests.html", "requests", table=table)
    response = fragment("_requests.html", table=table)
    if hx_trigger == "requests-filters":  # a form's URL has its empty fields
        response.headers["HX-Push-Url"] = table.url
    return response


@get("/requests/{request_id:str}", name="requests.detail")
async def request_detail(
    view: NamedDependency[View], live_feed: NamedDependency[LiveFeed], request_id: FromPath[str]
) -> Template:
    """A logged request, or what is known of a running one."""
    running = live_feed.running.get(request_id)
    entry = None
    searchable = len(request_id) <= 64 and _PRINTABLE.match(request_id)
    if running is None and view.store is not None and searchable:
        entry = await log_entry(view.store.engine, request_id)
    response = view.page(
        "request_detail.html",
        "requests",
        request_id=request_id,
        short_id=request_id[-12:],
        has_log=view.store is not None,
        running=None if running is None else RowView.of(running, view),
        detail=None if entry is None else Detail.of(entry),
    )
    return response if entry or running else with_status(response, 404)


HANDLERS: list[Any] = [requests_page, request_detail]
