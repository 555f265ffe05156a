"""Dashboard: the revision history, each revision with its field-level diff against the
one before (header values masked: they are often credentials), and a one-click
rollback that does what the admin API's rollback does."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import urlencode

import msgspec
from litestar import Response, get, post
from litestar.response import Template

from providers.config import GatewayConfig
from router.errors import ConfigError
from server.dashboard.common import Req, page, store
from server.dashboard.forms import (
    ACTOR,
    READ_ONLY,
    REVISIONS,
    STORE_DOWN,
    UNAVAILABLE,
    conflict_message,
    flatten,
    notice,
    parse_revision,
    redirect,
    store_down_message,
    wrote,
)
from server.errors import ConflictError, NotFound
from server.store import PolicyStore
from server.store.diff import diff_configs
from server.store.schemas import canonical

__all__ = ["HANDLERS", "revision_diff"]

log = logging.getLogger("llmgate.dashboard")


class DiffLine(NamedTuple):
    sign: str
    """``+`` added, ``-`` removed."""
    text: str


@dataclass(frozen=True)
class DiffEntry:
    label: str
    """``route chat``, ``provider mock``, ``defaults``."""
    action: str
    lines: list[DiffLine]


@dataclass(frozen=True)
class RevisionView:
    id: int
    created_at: Any
    actor: str
    summary: str
    diff: list[DiffEntry]
    error: str | None = None


def _shown(value: Any, path: str = "") -> str:
    """A value as the diff shows it; header values (often credentials) as ``•••``."""
    if value is None:
        return "(unset)"
    if path == "headers" or path.startswith("headers."):
        value = {k: "•••" for k in value} if isinstance(value, dict) else "•••"
    return msgspec.json.encode(value).decode()


def revision_diff(old: GatewayConfig, new: GatewayConfig) -> list[DiffEntry]:
    """What changed from ``old`` to ``new``, field by field (`server.store.diff`). An
    added or removed table lists the fields it sets apart from their defaults (and its
    targets or kind), which is what its author wrote."""
    entries = []
    for change in diff_configs(old, new).changes:
        lines: list[DiffLine] = []
        if change.action == "change":
            for f in change.fields:
                lines.append(DiffLine("-", f"{f.path} = {_shown(f.old, f.path)}"))
                lines.append(DiffLine("+", f"{f.path} = {_shown(f.new, f.path)}"))
        else:
            side = new if change.action == "add" else old
            table = getattr(side, change.section)[change.name]
            defaults = dict(flatten(canonical(type(table)())))
            sign = "+" if change.action == "add" else "-"
            lines = [
                DiffLine(sign, f"{p} = {_shown(v, p)}")
                for p, v in flatten(canonical(table))
                if p in ("targets", "kind") or defaults.get(p, ...) != v
            ]
        entries.append(DiffEntry(change.label, change.action, lines))
    return entries


async def _config_at(s: PolicyStore, revision: int) -> GatewayConfig:
    if revision < 1:
        return GatewayConfig()
    try:
        return await s.config_at(revision)
    except NotFound:  # before the first revision kept
        return GatewayConfig()


@get("/revisions", name="revisions", exception_handlers=UNAVAILABLE)
async def revisions_page(request: Req) -> Template:
    s = store(request)
    if s is None:
        return notice(request, READ_ONLY + " There is no revision history.", 404)
    limit = parse_revision(request.query_params.get("limit")) or 20
    limit = min(max(limit, 1), 200)
    infos = await s.revisions(limit)
    configs: dict[int, GatewayConfig] = {}
    views = []
    for info in infos:
        try:
            for rev in (info.id, info.id - 1):
                if rev not in configs:
                    configs[rev] = await _config_at(s, rev)
            diff, error = revision_diff(configs[info.id - 1], configs[info.id]), None
        except ConfigError as exc:  # recorded by an older schema
            diff, error = [], f"cannot be shown: {exc}"
        views.append(RevisionView(info.id, info.created_at, info.actor, info.summary, diff, error))
    q = request.query_params
    done = None
    if q.get("rolled_back"):
        done = (
            f"Nothing changed: revision {q['rolled_back']} is the current configuration."
            if q.get("unchanged")
            else f"Rolled back to revision {q['rolled_back']}: revision {q.get('revision')} "
            f"is served."
        )
    return page(
        request,
        "revisions.html",
        "revisions",
        revisions=views,
        current_revision=infos[0].id if infos else 0,
        limit=limit,
        more=len(infos) == limit,
        notice=done,
    )


@post("/revisions/{revision:int}/rollback", status_code=200)
async def rollback(request: Req) -> Response[Any]:
    """What ``POST /admin/api/revisions/{id}/rollback`` does: the configuration of that
    revision restored as a new revision, served before answering."""
    revision: int = request.path_params["revision"]
    s = store(request)
    if s is None:
        return notice(request, READ_ONLY, 409)
    form = await request.form()
    expected = parse_revision(form.get("expected_revision"))
    try:
        result = await s.rollback(revision, actor=ACTOR, expected_revision=expected)
    except ConflictError as exc:
        return notice(request, conflict_message(exc), 409, back=REVISIONS)
    except NotFound:
        return notice(request, f"There is no revision {revision}.", 404, back=REVISIONS)
    except ConfigError as exc:
        return notice(request, f"Revision {revision} cannot be restored: {exc}", 422)
    except STORE_DOWN as exc:
        return notice(request, store_down_message(exc), 503, back=REVISIONS)
    await wrote(request, result)
    query = {"rolled_back": str(revision), "revision": str(result.revision)}
    if not result.written:
        query["unchanged"] = "1"
    return redirect(request, f"{REVISIONS}?{urlencode(query)}")


HANDLERS: list[Any] = [revisions_page, rollback]
