"""The playground page over real HTTP: the form, the signed run token, and the run
streamed as server-sent events, with simulated failures kept off the real gateway."""

from __future__ import annotations

import asyncio
import html
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from providers.mock import MockConfig, MockProvider
from server.store.models import RequestLog
from tests.admin.conftest import Serve
from tests.dashboard.conftest import ENV, Dashboard, sign_in

# Two mocks with the same answer to the same prompt, so a continuation on the second
# target picks up the first one's words exactly; a slow one to disconnect from; a
# provider that is not a mock (never called: only its form is looked at).
PLAY_CONFIG: dict[str, Any] = {
    "server": {"reload_poll_s": 3600, "request_log_flush_s": 0.02},
    "providers": {
        "a": {"kind": "mock", "tokens": 12},
        "b": {"kind": "mock", "tokens": 12},
        "slow": {"kind": "mock", "tokens": 500, "token_latency_ms": 20},
        "cloud": {"kind": "openai", "api_key_env": "OPENAI_API_KEY"},
    },
    "routes": {
        "two": {
            "targets": ["a/x", "b/y"],
            "stream_fallback_mode": "prefill",
            "max_retries": 0,
            "breaker": {"failure_threshold": 1},
        },
        "solo": {"targets": ["a/x"], "max_retries": 0, "breaker": {"failure_threshold": 1}},
        "slow": {"targets": ["slow/z"]},
        "cloud": {"targets": ["cloud/gpt-4o-mini"]},
    },
}
PROMPT = "what does llmgate do?"
ANSWER = MockProvider("a", MockConfig(tokens=12)).answer([{"role": "user", "content": PROMPT}])

Events = list[tuple[str, str]]


Open = Callable[[dict[str, Any]], Awaitable[Dashboard]]


@pytest.fixture
async def open_dashboard(serve: Serve) -> AsyncIterator[Open]:
    """``await open_dashboard(config)``: signed in to a gateway serving ``config``."""
    opened: list[Dashboard] = []

    async def open_(config: dict[str, Any]) -> Dashboard:
        gateway = await serve(config=config, env=ENV)
        opened.append(Dashboard(gateway, await sign_in(gateway.base)))
        return opened[-1]

    yield open_
    for dashboard in opened:
        await dashboard.web.aclose()


@pytest.fixture
async def play(open_dashboard: Open) -> Dashboard:
    return await open_dashboard(PLAY_CONFIG)


async def start(dashboard: Dashboard, **form: str) -> str:
    """Submit the form as htmx does; the stream URL of the run panel it answers."""
    await dashboard.get("/admin/playground")  # the CSRF cookie
    response = await dashboard.post("/admin/playground", data={"prompt": PROMPT, **form})
    assert response.status_code == 200, response.text
    found = re.search(r'sse-connect="([^"]+)"', response.text)
    assert found, response.text
    assert 'sse-close="end"' in response.text
    return html.unescape(found.group(1))


def parse_sse(lines: list[str]) -> Events:
    events: Events = []
    name, data = "message", list[str]()
    for line in lines:
        if not line:
            if data:
                events.append((name, "\n".join(data)))
            name, data = "message", []
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
    return events


async def stream(web: httpx.AsyncClient, url: str) -> Events:
    """Every event of a run, until the server ends the stream."""
    async with web.stream("GET", url, headers={"accept": "text/event-stream"}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return parse_sse([line async for line in response.aiter_lines()])


def names(events: Events) -> list[str]:
    return [name for name, _ in events]


def log_kinds(events: Events) -> list[str]:
    return [
        kind
        for name, data in events
        if name == "log"
        for kind in re.findall(r'data-event="(\w+)"', data)
    ]


def text(events: Events) -> str:
    """The answer as the page shows it, markers left out."""
    answer = "".join(data for name, data in events if name == "answer")
    return html.unescape("".join(re.findall(r'<span class="t">(.*?)</span>', answer, re.S)))


def request_id(events: Events) -> str:
    found = re.search(r'data-request-id="([^"]+)"', events[0][1])
    assert found, events[0]
    return found.group(1)


async def logged(engine: AsyncEngine, rid: str, deadline_s: float = 5.0) -> RequestLog:
    until = time.monotonic() + deadline_s
    while True:
        async with engine.connect() as conn:
            row = (await conn.execute(select(RequestLog).where(RequestLog.id == rid))).first()
        if row is not None:
            return row  # type: ignore[return-value]
        assert time.monotonic() < until, f"{rid} was not logged within {deadline_s}s"
        await asyncio.sleep(0.02)


async def breakers(dashboard: Dashboard) -> dict[str, str]:
    states: dict[str, str] = (await dashboard.gateway.http.get("/healthz")).json()["breakers"]
    return states


# --- the page -------------------------------------------------------------------------


async def test_the_page_lists_the_routes_and_where_a_failure_can_be_simulated(
    dashboard: Dashboard,
) -> None:
    page = await dashboard.get("/admin/playground")
    assert page.status_code == 200
    for needle in ('id="playground-form"', 'id="route"', 'id="prompt"', 'id="run"', 'id="result"'):
        assert needle in page.text
    assert '<option value="chat" selected>chat</option>' in page.text
    assert "old/a</span>, the route's first mock target" in page.text
    assert "/admin/static/playground.css" in page.text
    css = await dashboard.get("/admin/static/playground.css")
    assert css.status_code == 200


async def test_a_route_without_a_mock_target_cannot_simulate(play: Dashboard) -> None:
    info = await play.get("/admin/playground/route", params={"route": "cloud"})
    assert info.status_code == 200
    assert re.search(r'<select id="simulate"[^>]* disabled', info.text)
    assert "this route has no mock target" in info.text
    info = await play.get("/admin/playground/route", params={"route": "two"})
    assert not re.search(r'<select id="simulate"[^>]* disabled', info.text)
    assert "a/x</span>, the route" in info.text
    # A crafted post is refused all the same.
    await play.get("/admin/playground")
    response = await play.post(
        "/admin/playground", data={"route": "cloud", "prompt": "hi", "simulate": "cut", "n": "2"}
    )
    assert "sse-connect" not in response.text
    assert 'id="simulate-error"' in response.text


async def test_bad_input_is_shown_next_to_its_field_and_kept(dashboard: Dashboard) -> None:
    await dashboard.get("/admin/playground")
    response = await dashboard.post(
        "/admin/playground",
        data={"route": "nope", "prompt": "  ", "max_tokens": "many", "simulate": "boom"},
    )
    assert response.status_code == 200
    assert "sse-connect" not in response.text
    for field in ("route", "prompt", "max_tokens", "simulate"):
        assert f'id="{field}-error"' in response.text
    assert 'value="many"' in response.text
    response = await dashboard.post(
        "/admin/playground",
        data={"route": "chat", "prompt": "<b>hi</b>", "simulate": "stall", "n": "-1"},
    )
    assert 'id="simulate-n-error"' in response.text
    assert "&lt;b&gt;hi&lt;/b&gt;</textarea>" in response.text


async def test_a_prompt_too_long_for_the_stream_url_is_refused_inline(
    dashboard: Dashboard,
) -> None:
    await dashboard.get("/admin/playground")
    prompt = os.urandom(7500).hex()  # does not compress below the URL's limit
    response = await dashboard.post("/admin/playground", data={"route": "chat", "prompt": prompt})
    assert "sse-connect" not in response.text
    assert 'id="prompt-error"' in response.text
    assert "too long" in response.text


async def test_a_plain_form_post_gets_the_whole_page(dashboard: Dashboard) -> None:
    page = await dashboard.get("/admin/playground")
    token = re.search(r'name="_csrf_token" value="([^"]+)"', page.text)
    assert token
    response = await dashboard.web.post(
        "/admin/playground",
        data={"route": "chat", "prompt": "hi", "_csrf_token": token.group(1)},
    )
    assert response.status_code == 200
    assert response.text.startswith("<!doctype html>")
    assert 'sse-connect="/admin/playground/stream?token=' in response.text


async def test_a_post_without_the_csrf_token_is_refused(dashboard: Dashboard) -> None:
    await dashboard.get("/admin/playground")
    response = await dashboard.web.post(
        "/admin/playground", data={"route": "chat", "prompt": "hi"}, headers={"hx-request": "true"}
    )
    assert response.status_code == 403


async def test_the_stream_needs_a_signed_in_session(dashboard: Dashboard) -> None:
    url = await start(dashboard, route="chat")
    async with httpx.AsyncClient(base_url=dashboard.gateway.base) as stranger:
        response = await stranger.get(url, headers={"accept": "text/event-stream"})
    assert response.status_code == 401


# --- normal runs ----------------------------------------------------------------------


async def test_a_run_streams_the_answer_and_is_a_logged_request(
    play: Dashboard, engine: AsyncEngine
) -> None:
    events = await stream(play.web, await start(play, route="two"))
    assert text(events) == ANSWER
    assert log_kinds(events) == ["begin", "attempt_started", "done"]
    assert names(events)[-2:] == ["outcome", "end"]
    assert "badge ok" in events[-2][1]
    rid = request_id(events)
    row = await logged(engine, rid)
    assert (row.route, row.status, row.target) == ("two", "ok", "a/x")


async def test_max_tokens_reaches_the_target(play: Dashboard) -> None:
    events = await stream(play.web, await start(play, route="two", max_tokens="3"))
    assert text(events) == " ".join(ANSWER.split()[:3]) + "."


async def test_the_answer_is_escaped(open_dashboard: Open) -> None:
    config = {
        **PLAY_CONFIG,
        "providers": {"evil": {"kind": "mock", "text": "<script>alert(1)</script> & co"}},
        "routes": {"evil": {"targets": ["evil/m"]}},
    }
    dashboard = await open_dashboard(config)
    events = await stream(dashboard.web, await start(dashboard, route="evil"))
    raw = "".join(data for name, data in events if name == "answer")
    assert "<script>" not in raw
    assert text(events) == "<script>alert(1)</script> & co"


async def test_closing_the_stream_ends_the_run(play: Dashboard, engine: AsyncEngine) -> None:
    url = await start(play, route="slow")
    lines: list[str] = []
    async with play.web.stream("GET", url) as response:
        async for line in response.aiter_lines():
            lines.append(line)
            if any(name == "answer" for name, _ in parse_sse(lines)):
                break
    rid = request_id(parse_sse(lines))
    row = await logged(engine, rid)
    assert row.status == "partial"
    assert "disconnected" in (row.error or "")


async def test_a_failed_run_says_so(open_dashboard: Open) -> None:
    config = {
        **PLAY_CONFIG,
        "providers": {"down": {"kind": "mock", "fail_status": 500}},
        "routes": {"down": {"targets": ["down/m"], "max_retries": 0}},
    }
    dashboard = await open_dashboard(config)
    events = await stream(dashboard.web, await start(dashboard, route="down"))
    assert log_kinds(events) == ["begin", "attempt_started", "attempt_failed", "failed"]
    assert "badge failed" in dict(events)["outcome"]
    assert text(events) == ""


# --- simulated runs -------------------------------------------------------------------


async def test_a_simulated_cut_switches_to_the_next_target(
    play: Dashboard, engine: AsyncEngine
) -> None:
    before = await breakers(play)
    url = await start(play, route="two", simulate="cut", n="4")
    events = await stream(play.web, url)
    assert text(events) == ANSWER  # the continuation picks up the words exactly
    kinds = log_kinds(events)
    assert kinds == [
        "begin",
        "attempt_started",
        "attempt_failed",
        "attempt_started",
        "stream_switch",
        "done",
    ]
    switch = next(d for n, d in events if n == "log" and 'data-event="stream_switch"' in d)
    assert "a/x → b/y" in html.unescape(switch)
    assert "prefill" in switch
    answer = "".join(d for n, d in events if n == "answer")
    assert 'class="marker" data-event="stream_switch"' in answer
    assert "b/y" in dict(events)["outcome"]
    assert "simulated run" in events[0][1]
    # Rehearsed on a private engine: the real breakers never heard of it...
    assert await breakers(play) == before
    # ...and the request log neither: a real request logged after it is the only row.
    real = await stream(play.web, await start(play, route="solo"))
    await logged(engine, request_id(real))
    async with engine.connect() as conn:
        ids = (await conn.execute(select(RequestLog.id))).scalars().all()
    assert ids == [request_id(real)]
    assert request_id(events).startswith("playground-sim-")


async def test_a_simulated_failure_before_the_first_token_falls_back(play: Dashboard) -> None:
    before = await breakers(play)
    events = await stream(play.web, await start(play, route="two", simulate="fail"))
    assert text(events) == ANSWER
    failed = next(d for n, d in events if n == "log" and "attempt_failed" in d)
    assert "HTTP 503" in failed
    assert "b/y" in dict(events)["outcome"]
    assert await breakers(play) == before


async def test_a_simulated_run_where_every_target_fails(play: Dashboard) -> None:
    events = await stream(play.web, await start(play, route="solo", simulate="fail"))
    assert log_kinds(events)[-1] == "failed"
    assert "badge failed" in dict(events)["outcome"]
    assert names(events)[-1] == "end"
    # The real target still answers: the failure was only simulated.
    assert text(await stream(play.web, await start(play, route="solo"))) == ANSWER


async def test_a_simulated_stall_fails_over_on_the_stall_timeout(open_dashboard: Open) -> None:
    routes = {"two": {**PLAY_CONFIG["routes"]["two"], "stall_timeout_s": 0.1}}
    dashboard = await open_dashboard({**PLAY_CONFIG, "routes": routes})
    events = await stream(
        dashboard.web, await start(dashboard, route="two", simulate="stall", n="2")
    )
    assert text(events) == ANSWER
    failed = next(d for n, d in events if n == "log" and "attempt_failed" in d)
    assert "timeout" in failed


async def test_a_simulated_slow_first_token_rehearses_a_hedge(open_dashboard: Open) -> None:
    routes = {"two": {**PLAY_CONFIG["routes"]["two"], "hedge_after_s": 0.05}}
    dashboard = await open_dashboard({**PLAY_CONFIG, "routes": routes})
    events = await stream(
        dashboard.web, await start(dashboard, route="two", simulate="slow", n="30000")
    )
    assert text(events) == ANSWER
    assert log_kinds(events) == ["begin", "attempt_started", "hedged", "attempt_started", "done"]
    hedged = next(d for n, d in events if n == "log" and 'data-event="hedged"' in d)
    assert "b/y" in hedged and "50 ms" in hedged
    outcome = dict(events)["outcome"]
    assert "b/y" in outcome and "the hedge answered first" in outcome


# --- the token ------------------------------------------------------------------------


def _app_state(dashboard: Dashboard) -> Any:
    # ServedGateway keeps the app only in its uvicorn server's config.
    app: Any = dashboard.gateway.app
    return app.state


async def test_a_token_runs_once(play: Dashboard) -> None:
    url = await start(play, route="two")
    assert text(await stream(play.web, url)) == ANSWER
    again = await stream(play.web, url)
    assert names(again) == ["refused", "outcome", "end"]
    assert "already been streamed" in again[0][1]


async def test_a_token_runs_on_another_worker_of_the_same_database(
    play: Dashboard, serve: Serve
) -> None:
    """The token's key follows the session secret the lifespan takes from the database,
    so any worker can stream a run another one started (the session cookie, under the
    same secret, signs in to both)."""
    other = await serve(config=PLAY_CONFIG, env=ENV)
    url = await start(play, route="two")
    assert text(await stream(play.web, other.base + url)) == ANSWER


async def test_a_tampered_token_is_refused(play: Dashboard) -> None:
    url = await start(play, route="two")
    payload, signature = url.split("token=", 1)[1].split(".")
    other = await start(play, route="solo")
    other_payload = other.split("token=", 1)[1].split(".")[0]
    # the first character of the signature: all six of its bits are signature bits
    forged = ("B" if signature[0] == "A" else "A") + signature[1:]
    for token in (f"{other_payload}.{signature}", f"{payload}.{forged}", payload, ""):
        events = await stream(play.web, f"/admin/playground/stream?token={token}")
        assert names(events) == ["refused", "outcome", "end"], token
    # The untouched token still works.
    assert text(await stream(play.web, url)) == ANSWER


async def test_an_expired_token_is_refused(play: Dashboard) -> None:
    tokens = _app_state(play).playground_tokens
    ttl_s, tokens.ttl_s = tokens.ttl_s, 0.0
    try:
        events = await stream(play.web, await start(play, route="two"))
    finally:
        tokens.ttl_s = ttl_s
    assert names(events) == ["refused", "outcome", "end"]
    assert "expired" in events[0][1]
