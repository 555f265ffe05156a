"""The playground's handlers: the page, the route picker, the form and the stream.

The form (``playground.run``) validates the run and answers with a panel that connects
to ``playground.stream`` with a run token (`server.dashboard.playground.tokens`) through
htmx's SSE extension. The stream renders the engine's events as they happen
(`server.dashboard.playground.render`): text into the answer, attempts, failures, stream
switches and resets into the answer (as markers) and into the event list, and the
outcome at the end, followed by an ``end`` event on which the page closes the
connection (``sse-close``).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import FromQuery
from litestar.response import ServerSentEvent, Template

from server.dashboard.common import View, fragment
from server.dashboard.playground.form import Playground, RunForm, RunPanel
from server.dashboard.playground.render import Renderer, Run, event_pieces
from server.dashboard.playground.run import messages
from server.dashboard.playground.tokens import Refused, TokenBook

__all__ = ["HANDLERS", "MAX_TOKEN_CHARS"]

MAX_TOKEN_CHARS = 8_000
"""The token travels in the stream's URL; servers limit the request line (h11: 16 KiB)."""
_SSE_HEADERS = {"cache-control": "no-store", "x-accel-buffering": "no"}


@get("/playground", name="playground")
async def playground_page(view: NamedDependency[View], route: FromQuery[str] = "") -> Template:
    routes = list(view.gateway.table.routes)
    form = RunForm(route=route if route in routes else (routes[0] if routes else ""))
    return view.page("playground.html", "playground", playground=_panel(view, form))


@get("/playground/route", name="playground.route")
async def playground_route(view: NamedDependency[View], route: FromQuery[str] = "") -> Template:
    """The route's summary and the failure choices, when another route is picked."""
    return fragment("_playground_route.html", playground=_panel(view, RunForm(route=route)))


@post("/playground", name="playground.run", status_code=200)
async def playground_run(
    view: NamedDependency[View], tokens: NamedDependency[TokenBook]
) -> Template:
    playground = _submit(view, tokens, RunForm.posted(await view.request.form()))
    return view.answer("_playground.html", "playground.html", "playground", playground=playground)


@get("/playground/stream", name="playground.stream")
async def playground_stream(
    view: NamedDependency[View], tokens: NamedDependency[TokenBook], token: FromQuery[str] = ""
) -> ServerSentEvent:
    """The run of a token, as SSE. A refused token still answers 200 with a
    ``refused`` event and ``end``: the SSE extension would reconnect after an error
    status, again and again, where ``end`` makes it close."""
    pieces = event_pieces(view)
    try:
        spec = tokens.redeem(token, time.time())
    except Refused as exc:
        return ServerSentEvent(Renderer(pieces).refused(str(exc)), headers=_SSE_HEADERS)
    render = Renderer(pieces, Run.new(spec, view))
    return ServerSentEvent(messages(view.gateway, render), headers=_SSE_HEADERS)


def _panel(view: View, form: RunForm, **rest: Any) -> Playground:
    return Playground.of(view.gateway.table, form, **rest)


def _submit(view: View, tokens: TokenBook, form: RunForm) -> Playground:
    """The form's run with the URL of its stream, or the form with its errors."""
    spec, errors = form.validate(view.gateway.table)
    token = "" if spec is None else tokens.issue(spec, time.time())
    if len(token) > MAX_TOKEN_CHARS:
        errors["prompt"] = "The prompt is too long for the playground: shorten it."
    panel = _panel(view, form, errors=errors)
    if spec is None or errors:
        return panel
    stream_url = f"{view.url('playground.stream')}?{urlencode({'token': token})}"
    return replace(panel, run=RunPanel(stream_url, spec, panel.mock_target))


HANDLERS: list[Any] = [playground_page, playground_route, playground_run, playground_stream]
