"""Dashboard: the revision history, each revision with its field-level diff against the
one before (header values masked: they are often credentials), and a one-click
rollback that does what the admin API's rollback does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import msgspec
from litestar import Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Template

from providers.config import GatewayConfig
from router.errors import ConfigError
from server.dashboard.common import View
from server.dashboard.forms import READ_ONLY, flatten, parse_revision
from server.dashboard.writes import UNAVAILABLE, done_notice, expected_revision, notice, write
from server.errors import NotFound
from server.store import PolicyStore
from server.store.diff import diff_configs
from server.store.schemas import canonical

__all__ = ["HANDLERS", "revision_diff"]


class DiffLine(NamedTuple):
    sign: str
    """``+`` added, ``-`` removed."""
    text: str

    @property
    def css(self) -> str:
        return "add" if self.sign == "+" else "del"


MARKS = {"add": "+", "remove": "\N{MINUS SIGN}", "change": "~"}


@dataclass(frozen=True)
class DiffEntry:
    label: str
    """``route chat``, ``provider mock``, ``defaults``."""
    action: str
    """``add``, ``remove`` or ``change``."""
    lines: list[DiffLine]

    @property
    def mark(self) -> str:
        return MARKS[self.action]


@dataclass(frozen=True)
class RevisionView:
    id: int
    created_at: Any
    actor: str
    summary: str
    diff: list[DiffEntry]
    error: str | None
    """Why the diff cannot be shown (a revision recorded by an older schema)."""
    current: bool
    """The configuration now: it has nothing to roll back to."""


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


async def _revision_views(s: PolicyStore, limit: int) -> list[RevisionView]:
    """The newest ``limit`` revisions, each with its diff against the one before."""
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
        current = info is infos[0]
        views.append(
            RevisionView(info.id, info.created_at, info.actor, info.summary, diff, error, current)
        )
    return views


@get("/revisions", name="revisions", exception_handlers=UNAVAILABLE)
async def revisions_page(
    view: NamedDependency[View], limit: FromQuery[str | None] = None
) -> Template:
    if view.store is None:
        return notice(view, READ_ONLY + " There is no revision history.", 404, "revisions")
    shown = min(max(parse_revision(limit) or 20, 1), 200)
    revisions = await _revision_views(view.store, shown)
    more = len(revisions) == shown
    return view.page(
        "revisions.html",
        "revisions",
        revisions=revisions,
        current_revision=revisions[0].id if revisions else 0,
        older=f"{view.url('revisions')}?limit={shown * 2}" if more else None,
        notice=done_notice(view, "Revision"),
    )


@post("/revisions/{revision:int}/rollback", name="revisions.rollback", status_code=200)
async def rollback(view: NamedDependency[View], revision: FromPath[int]) -> Response[Any]:
    """What ``POST /admin/api/revisions/{id}/rollback`` does: the configuration of that
    revision restored as a new revision, served before answering."""
    expected = await expected_revision(view)
    return await write(
        view,
        "revisions",
        lambda store: store.rollback(revision, actor=view.actor, expected_revision=expected),
        done=("rolled_back", str(revision)),
        missing=f"There is no revision {revision}.",
        invalid=f"Revision {revision} cannot be restored",
    )


HANDLERS: list[Any] = [revisions_page, rollback]
