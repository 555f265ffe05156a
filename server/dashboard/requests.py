"""Dashboard: the live requests table and the request detail page.

The table lists the request log newest first, filtered by route, status or target. It
pages with a keyset cursor on ``(created_at, id)``: a page is one index range scan
(``created_at`` alone, or ``(route|status|target, created_at)`` with a filter) of at
most ``PAGE_SIZE + 1`` rows however deep it is, where ``OFFSET`` would read and drop
every row before it. The first page also connects to the live feed (`server.dashboard.live`),
so requests appear as they start and their rows change as they run and end.

The detail page shows one request: its attempts as a timeline, the stream switches, and
what the client was shown (its transcript) with every switch where it happened.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from litestar import get
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Template
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.elements import ColumnElement

from server.dashboard.common import Req, fragment, gateway, page, store
from server.dashboard.filters import query
from server.dashboard.live import LiveFeed, LiveRow
from server.store.models import NAME_LENGTH, TARGET_LENGTH, RequestLog

__all__ = [
    "HANDLERS",
    "PAGE_SIZE",
    "Cursor",
    "decode_cursor",
    "encode_cursor",
    "log_page",
    "timeline",
    "transcript_view",
]

PAGE_SIZE = 50
STATUSES = ("ok", "partial", "failed")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PRINTABLE = re.compile(r"^[^\x00-\x1f\x7f]*$")
_LIST_COLUMNS = (
    RequestLog.id,
    RequestLog.created_at,
    RequestLog.route,
    RequestLog.target,
    RequestLog.status,
    RequestLog.latency_ms,
    RequestLog.ttft_ms,
    RequestLog.total_tokens,
    RequestLog.cost_usd,
    RequestLog.error,
    RequestLog.record,
)

# What a record written by an older version may lack (`AttemptRecord`, `SwitchRecord`).
_ATTEMPT = {
    "attempt": 0,
    "target": "",
    "shape": "original",
    "outcome": "running",
    "error_type": None,
    "error": None,
    "status": None,
    "start_ms": None,
    "ttft_ms": None,
    "duration_ms": None,
    "chars": 0,
    "usage": None,
}
_SWITCH = {
    "from_target": "",
    "to_target": "",
    "mode": "",
    "reason": "",
    "chars_delivered": 0,
    "trimmed_chars": 0,
    "reset": False,
}

Cursor = tuple[datetime, str]
"""A row's place in the table's order: ``(created_at, id)``."""


def aware(moment: datetime) -> datetime:
    """SQLite gives back naive datetimes; every stored moment is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def encode_cursor(cursor: Cursor) -> str:
    """``MICROSECONDS.ID``: exact (a float or a formatted time could round) and short."""
    moment, row_id = cursor
    delta = aware(moment) - _EPOCH
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


# --- the table -------------------------------------------------------------------------


def _filters(params: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The filters as typed, and an error per field whose value cannot match anything
    (that filter is then left out of the query, and the form says why)."""
    values = {k: params.get(k, "").strip() for k in ("route", "status", "target")}
    errors: dict[str, str] = {}
    for key, limit in (("route", NAME_LENGTH), ("target", TARGET_LENGTH)):
        if len(values[key]) > limit:
            errors[key] = f"at most {limit} characters"
        elif not _PRINTABLE.match(values[key]):
            errors[key] = "control characters are not allowed"
    if values["status"] and values["status"] not in STATUSES:
        errors["status"] = f"expected one of {', '.join(STATUSES)}"
    return values, errors


def _cursors(params: dict[str, str]) -> tuple[Cursor | None, Cursor | None, str]:
    """The page's ``before`` and ``after`` cursors; a bad link shows the newest page,
    with the reason (else ``""``)."""
    before, after = (decode_cursor(params.get(k) or "") for k in ("before", "after"))
    if (params.get("before") and before is None) or (params.get("after") and after is None):
        return None, None, "That page link is not valid: showing the newest requests."
    if before is not None and after is not None:
        return None, None, "A page has either an older or a newer cursor, not both."
    return before, after, ""


async def log_page(
    engine: AsyncEngine,
    where: list[ColumnElement[bool]],
    *,
    before: Cursor | None = None,
    after: Cursor | None = None,
    size: int = PAGE_SIZE,
) -> tuple[list[LiveRow], Cursor | None, Cursor | None]:
    """One page of the log newest first: its rows, and the cursors of the pages newer
    (``after=``) and older (``before=``) than it, None where there are none.

    The range conditions are written as ``created_at <= t AND (created_at < t OR id < i)``
    rather than a row-value comparison: both databases use any index on ``created_at``
    for the first term, and the order's tie-break on ``id`` only sorts equal times.
    """
    at, row_id = RequestLog.created_at, RequestLog.id
    stmt = select(*_LIST_COLUMNS).where(*where)
    if after is not None:
        t, i = after
        stmt = stmt.where(at >= t, or_(at > t, row_id > i)).order_by(at.asc(), row_id.asc())
    else:
        if before is not None:
            t, i = before
            stmt = stmt.where(at <= t, or_(at < t, row_id < i))
        stmt = stmt.order_by(at.desc(), row_id.desc())
    async with engine.connect() as conn:
        found = list((await conn.execute(stmt.limit(size + 1))).all())
    more = len(found) > size
    found = found[:size]
    if after is not None:
        found.reverse()
    rows = [LiveRow.from_log(r) for r in found]
    for row in rows:
        row.created_at = aware(row.created_at)
    first = (rows[0].created_at, rows[0].id) if rows else None
    last = (rows[-1].created_at, rows[-1].id) if rows else None
    if after is not None:
        return rows, first if more else None, last
    if before is not None:
        return rows, first, last if more else None
    return rows, None, last if more else None


def _options(request: Req) -> tuple[list[str], list[str]]:
    """Routes and targets to suggest: the configured ones, so that filling the form
    never scans the log for its distinct values."""
    routes = gateway(request).table.routes
    targets = sorted({t.name for r in routes.values() for t in r.targets})
    return sorted(routes), targets


@get("/requests", name="requests")
async def requests_page(request: Req) -> Template:
    params = dict(request.query_params)
    values, errors = _filters(params)
    valid = {k: v for k, v in values.items() if v and k not in errors}
    before, after, errors["cursor"] = _cursors(params)
    policy_store = store(request)
    rows: list[LiveRow] = []
    newer = older = None
    if policy_store is not None:
        where = [getattr(RequestLog, k) == v for k, v in valid.items()]
        rows, newer, older = await log_page(policy_store.engine, where, before=before, after=after)
    route_options, target_options = _options(request)
    context: dict[str, Any] = {
        "filters": values,
        "errors": errors,
        "params": {k: v for k, v in values.items() if v},
        "live_filter": valid,
        "live": before is None and after is None,
        "paged": before is not None or after is not None,
        "rows": rows,
        "newer": encode_cursor(newer) if newer else None,
        "older": encode_cursor(older) if older else None,
        "has_log": policy_store is not None,
        "statuses": STATUSES,
        "route_options": route_options,
        "target_options": target_options,
    }
    if isinstance(request, HTMXRequest) and request.htmx and request.htmx.target == "requests":
        response = fragment("_requests.html", **context)
        if request.htmx.trigger == "requests-filters":  # a form's URL has its empty fields
            canonical = query(context["params"])
            response.headers["HX-Push-Url"] = "/admin/requests" + (
                f"?{canonical}" if canonical else ""
            )
        return response
    return page(request, "requests.html", "requests", **context)


# --- one request -----------------------------------------------------------------------


def timeline(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The attempts in order, each stream switch just before the attempt it switched
    to (the first later attempt of its target that delivered text), skipped targets
    first."""
    items: list[dict[str, Any]] = [
        {"kind": "skipped", "target": t} for t in record.get("skipped") or []
    ]
    switches = [{**_SWITCH, **s} for s in record.get("switches") or []]
    for attempt in ({**_ATTEMPT, **a} for a in record.get("attempts") or []):
        if (
            switches
            and attempt["target"] == switches[0]["to_target"]
            and (attempt["chars"] or attempt["outcome"] == "ok")
            and attempt["attempt"] > 1
        ):
            items.append({"kind": "switch", **switches.pop(0)})
        items.append({"kind": "attempt", **attempt})
    items.extend({"kind": "switch", **s} for s in switches)
    return items


def transcript_view(segments: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The transcript's pieces for the template; text shown before a ``reset`` switch is
    marked ``discarded``: the client was told to throw it away."""
    pieces: list[dict[str, Any]] = []
    since_reset: list[dict[str, Any]] = []
    for seg in segments or []:
        if "switch" in seg:
            switch = {**_SWITCH, **seg["switch"]}
            if switch["reset"]:
                for piece in since_reset:
                    piece["discarded"] = True
                since_reset = []
            pieces.append({"kind": "switch", **switch})
        elif "tool_call" in seg:
            piece = {"kind": "tool", "discarded": False, **seg["tool_call"]}
            pieces.append(piece)
            since_reset.append(piece)
        elif "omitted_chars" in seg:
            pieces.append({"kind": "omitted", "chars": seg["omitted_chars"]})
        else:
            text = seg.get("text")
            chars = len(text) if text is not None else seg.get("chars", 0)
            piece = {"kind": "text", "target": seg.get("target", ""), "text": text}
            piece.update(chars=chars, discarded=False)
            pieces.append(piece)
            since_reset.append(piece)
    return pieces


@get("/requests/{request_id:str}")
async def request_detail(request: Req) -> Template:
    request_id: str = request.path_params["request_id"]
    feed: LiveFeed = request.app.state.live_feed
    policy_store = store(request)
    running = feed.running.get(request_id)
    entry = None
    if running is None and policy_store is not None and len(request_id) <= 64:
        if _PRINTABLE.match(request_id):
            async with policy_store.engine.connect() as conn:
                found = await conn.execute(select(RequestLog).where(RequestLog.id == request_id))
                entry = found.first()
    context: dict[str, Any] = {
        "request_id": request_id,
        "has_log": policy_store is not None,
        "running": running,
        "entry": entry,
    }
    if entry is not None:
        record = entry.record or {}
        context.update(
            created_at=aware(entry.created_at),
            timeline=timeline(record),
            switches=record.get("switches") or [],
            transcript=transcript_view(entry.transcript),
            has_transcript=entry.transcript is not None,
        )
    response = page(request, "request_detail.html", "requests", **context)
    if entry is None and running is None:
        response.status_code = 404
    return response


HANDLERS: list[Any] = [requests_page, request_detail]
