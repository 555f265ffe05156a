"""The requests table's live feed (`server.observe.live.LiveFeed`) over server-sent events.

``GET /admin/live/requests`` is the endpoint the table connects to with htmx's SSE
extension (``sse-connect``). Its events carry rendered ``<tr>``s:

- ``row``: a request this page has not shown yet, to put at the top of the table;
- ``update``: a new state of a row the page already shows, swapped in by its id
  (``hx-swap-oob``);
- ``resync``: the page fell behind; it reloads the table.

When it connects, a page first gets a ``: connected`` comment, once it is subscribed
(every request that starts from then on reaches it), then every running request (each
as ``row``), so every later ``update`` finds its row.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from litestar import get
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.template import TemplateProtocol

from server.dashboard.common import View
from server.dashboard.request_views import RowView
from server.observe.live import LiveFeed, LiveRow, RowFilter

__all__ = ["HANDLERS"]

Render = Callable[[LiveRow, str], ServerSentEventMessage]


async def _events(
    feed: LiveFeed, row_filter: RowFilter, heartbeat_s: float, render: Render
) -> AsyncIterator[ServerSentEventMessage]:
    """Subscribes when the response starts streaming, inside the ``try`` whose
    ``finally`` unsubscribes: a connection that drops before then leaves nothing."""
    sub = feed.subscribe(row_filter)
    try:
        yield ServerSentEventMessage(comment="connected")
        for first in feed.first_rows(sub):
            yield render(first, "row")
        while True:
            try:
                async with asyncio.timeout(heartbeat_s):
                    row = await sub.queue.get()
            except TimeoutError:
                yield ServerSentEventMessage(comment="keep-alive")
                continue
            if row is None:
                return
            if sub.resync():
                yield ServerSentEventMessage(data="resync", event="resync")
            elif event := sub.event_for(row):
                yield render(row, event)
    finally:
        feed.unsubscribe(sub)


@dataclass(frozen=True, slots=True)
class RowEvents:
    """Renders a row as an event: the row partial alone, on one line (an SSE data field
    cannot hold raw newlines), swapped out of band when it replaces a row shown. A
    stream of events is not one `Template` response, so it renders each row itself."""

    template: TemplateProtocol
    details: str
    """The path of a request's page, less its id."""

    @classmethod
    def of(cls, view: View) -> RowEvents:
        details = view.url("requests.detail", request_id="-").removesuffix("-")
        return cls(view.template("_request_row.html"), details)

    def __call__(self, row: LiveRow, event: str) -> ServerSentEventMessage:
        href = self.details + quote(row.id, safe="")
        html = self.template.render(row=RowView(row, href), oob=event == "update")
        return ServerSentEventMessage(data=html.replace("\n", " "), event=event)


@get("/live/requests", name="live.feed")
async def live_requests(
    view: NamedDependency[View],
    live_feed: NamedDependency[LiveFeed],
    live_heartbeat_s: NamedDependency[float],
    route: FromQuery[str] = "",
    status: FromQuery[str] = "",
    target: FromQuery[str] = "",
) -> ServerSentEvent:
    """The requests table's feed, filtered like the table."""
    return ServerSentEvent(
        _events(live_feed, RowFilter(route, status, target), live_heartbeat_s, RowEvents.of(view)),
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


HANDLERS: list[Any] = [live_requests]
