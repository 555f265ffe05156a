"""What the requests table shows, worked out before a template sees it: the table with
its links, and each row (also the facts of a running request's page)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlencode

import msgspec

from server.dashboard.common import View
from server.observe.live import LiveRow
from server.store.request_log import STATUSES

__all__ = ["RequestsTable", "RowView", "SwitchItem", "query", "requests_url"]


def query(params: Mapping[str, Any], **changes: Any) -> str:
    """``params`` with ``changes`` as a query string (empty values left out)."""
    merged = {**params, **changes}
    return urlencode({k: v for k, v in merged.items() if v not in (None, "")})


def requests_url(view: View, params: Mapping[str, str], **changes: str) -> str:
    """The requests table with these filters (and ``before``/``after`` cursor)."""
    found = query(params, **changes)
    return view.url("requests") + (f"?{found}" if found else "")


class SwitchItem(msgspec.Struct, frozen=True, kw_only=True):
    """A stream switch, as the table, the timeline and the transcript say it."""

    kind: ClassVar[str] = "switch"
    from_target: str = ""
    to_target: str = ""
    mode: str = ""
    reason: str = ""
    chars_delivered: int = 0
    trimmed_chars: int = 0
    reset: bool = False

    @classmethod
    def of(cls, switch: Any) -> SwitchItem:
        """From a stored record's switch (a dict) or a live row's (a `SwitchRecord`)."""
        return msgspec.convert(switch, cls, from_attributes=True)

    @property
    def path(self) -> str:
        return f"{self.from_target} → {self.to_target}"

    @property
    def label(self) -> str:
        """In a table row: ``a/m → b/m (prefill)``."""
        return f"{self.path} ({self.mode}{', reset' if self.reset else ''})"

    @property
    def facts(self) -> str:
        trimmed = f" · {self.trimmed_chars} overlapping chars trimmed" if self.trimmed_chars else ""
        return f"{self.mode} · {self.reason} · {self.chars_delivered} chars delivered{trimmed}"

    @property
    def marker(self) -> str:
        """In the transcript, where it happened."""
        told = " · the client was told to discard the text above" if self.reset else ""
        return f"{self.path} · {self.facts}{told}"


@dataclass(frozen=True, slots=True)
class RowView:
    """A row of the table (also the facts of a running request's page)."""

    live: LiveRow
    href: str

    @classmethod
    def of(cls, row: LiveRow, view: View) -> RowView:
        return cls(row, view.url("requests.detail", request_id=row.id))

    @property
    def short_id(self) -> str:
        return self.live.id[-12:]

    @property
    def route_text(self) -> str:
        return self.live.route or "—"

    @property
    def target_text(self) -> str:
        return self.live.target or "—"

    @property
    def tokens_text(self) -> str:
        tokens = self.live.total_tokens
        return "—" if tokens is None else str(tokens)

    @property
    def switches(self) -> list[SwitchItem]:
        return [SwitchItem.of(s) for s in self.live.switches]


@dataclass(frozen=True, slots=True)
class RequestsTable:
    """The filter form, the table and its links."""

    view: View
    filters: dict[str, str]
    """As typed (kept in the form, even when invalid)."""
    errors: dict[str, str]
    """By field (``route``, ``status``, ``target``, ``cursor``)."""
    valid: dict[str, str]
    """The filters that were applied: set, and without an error."""
    rows: list[RowView]
    has_log: bool
    live: bool
    """The newest page, which the live feed updates; a page reached by a cursor is not."""
    newer: str = ""
    older: str = ""
    """Encoded cursors of the pages around this one, empty where there is none."""
    route_options: list[str] = field(default_factory=list)
    target_options: list[str] = field(default_factory=list)
    statuses: tuple[str, ...] = STATUSES

    @property
    def params(self) -> dict[str, str]:
        """The filters a link keeps: every one that is set."""
        return {k: v for k, v in self.filters.items() if v}

    @property
    def url(self) -> str:
        """The newest page with these filters (its canonical URL)."""
        return requests_url(self.view, self.params)

    @property
    def live_url(self) -> str:
        return self.view.url("live.feed") + "?" + query(self.valid)

    @property
    def newer_url(self) -> str | None:
        return requests_url(self.view, self.params, after=self.newer) if self.newer else None

    @property
    def older_url(self) -> str | None:
        return requests_url(self.view, self.params, before=self.older) if self.older else None

    @property
    def empty_text(self) -> str:
        if not self.live:
            return "No requests on this page."
        if self.params:
            return "No requests match these filters yet."
        if self.has_log:
            return "No requests yet: they appear here as they arrive."
        return "No requests running: they appear here as they arrive."
