"""The routes pages through real HTTP: the list with live health, the route forms
(inline errors, typed values kept, targets reordered), delete, stale edits, and the
revision history with rollback."""

from __future__ import annotations

import re
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.dashboard.conftest import CONFIG, MESSAGES, Dashboard, Serve, sign_in
from tests.eventually import eventually_async

FULL = {
    "name": "fresh",
    "targets": ["new/b", "old/a"],
    "stream_fallback_mode": "user_turn",
    "stream_resume_prompt": "Go on.",
    "max_retries": "1",
    "backoff_base_s": "0.5",
    "backoff_max_s": "4",
    "max_retry_after_s": "10",
    "connect_timeout_s": "5",
    "first_token_timeout_s": "20",
    "stall_timeout_s": "15",
    "request_timeout_s": "120",
    "breaker.failure_threshold": "3",
    "breaker.cooldown_s": "12.5",
    "fallback_on": ["timeout", "upstream_unavailable"],
}


def _error(html: str, field: str) -> str | None:
    """The inline error shown for ``field``, if any."""
    match = re.search(rf'<p class="field-error" id="error-{re.escape(field)}">([^<]*)</p>', html)
    return match.group(1) if match else None


def _value(html: str, name: str) -> str | None:
    match = re.search(rf'<input[^>]*name="{re.escape(name)}"[^>]*value="([^"]*)"', html)
    return match.group(1) if match else None


def _targets(html: str) -> list[str]:
    return re.findall(r'<input type="text" name="targets"[^>]*value="([^"]*)"', html)


async def _revision(dashboard: Dashboard) -> int:
    return await dashboard.gateway.revision()


async def _form(dashboard: Dashboard, path: str = "/admin/routes/new") -> dict[str, Any]:
    """The hidden fields of a form page (its expected revision)."""
    page = await dashboard.get(path)
    assert page.status_code == 200, page.text
    revision = re.search(r'name="expected_revision" value="(\d*)"', page.text)
    assert revision
    return {"expected_revision": revision.group(1)}


async def test_the_list_shows_targets_in_order_with_breaker_state_and_error_rate(
    serve: Serve,
) -> None:
    config = {
        **CONFIG,
        "providers": {**CONFIG["providers"], "down": {"kind": "mock", "fail_status": 503}},
        "routes": {"chat": {"targets": ["down/x", "old/a"], "max_retries": 0}},
    }
    gateway = await serve(config=config)
    web = await sign_in(gateway.base)
    try:
        assert (await gateway.answer("chat"))[:2] == (200, "old/a")
        page = await web.get("/admin/routes")
        assert page.status_code == 200
        html = page.text
        assert html.index("down/x") < html.index("old/a")
        down = html[html.index('data-target="down/x"') : html.index('data-target="old/a"')]
        assert "1/1 failed" in down and "closed" in down
        old = html[html.index('data-target="old/a"') :]
        assert "0/1 failed" in old and 'class="badge closed"' in old
        assert 'id="new-route"' in html and 'id="delete-route-chat"' in html
    finally:
        await web.aclose()


# A pool that takes turns (the first request goes to paced/a, the next to new/b, the
# third to slow/s, which sends one word and then nothing), before a single target; and
# a weighted pool no request reaches.
POOLED: dict[str, Any] = {
    **CONFIG,
    "providers": {
        **CONFIG["providers"],
        "paced": {"kind": "mock", "first_token_latency_ms": 30},
        "slow": {"kind": "mock", "stall_after": 1},
    },
    "routes": {
        "chat": {
            "targets": [
                {"pool": ["paced/a", "new/b", "slow/s"], "balance": "round_robin"},
                "old/a",
            ]
        },
        "spread": {"targets": [{"pool": ["old/a", "new/b"], "weights": [3, 1]}]},
    },
}


def _row(html: str, route: str) -> str:
    start = html.index(f'<tr id="route-{route}">')
    return html[start : html.index("</tr>", start)]


def _member(row: str, target: str) -> str:
    """What the routes list shows of one target of a route's row."""
    start = row.index(f'data-target="{target}"')
    return " ".join(row[start : row.index("</li>", start)].split())


async def test_a_pool_shows_its_strategy_and_each_members_share_load_and_latency(
    serve: Serve,
) -> None:
    gateway = await serve(config=POOLED)
    web = await sign_in(gateway.base)
    try:
        assert (await gateway.answer("chat"))[:2] == (200, "paced/a")
        assert (await gateway.answer("chat"))[:2] == (200, "new/b")
        body = {"model": "chat", "messages": MESSAGES, "stream": True}
        async with gateway.http.stream("POST", "/v1/chat/completions", json=body) as stalled:
            assert stalled.status_code == 200  # slow/s sent its word, and is still going
            html = (await web.get("/admin/routes")).text

        row = _row(html, "chat")
        pool = row[row.index('<li class="pool">') : row.index("</ul>")]
        assert ">round_robin</span>" in pool
        assert [t for t in ("paced/a", "new/b", "slow/s", "old/a") if t in pool] == [
            "paced/a",
            "new/b",
            "slow/s",
        ]
        assert row.index("</ul>") < row.index('data-target="old/a"')  # the next entry
        paced = _member(row, "paced/a")
        assert "0/1 failed" in paced and "50.0% of attempts" in paced and "0 in flight" in paced
        ttft = re.search(r"TTFT (\d+) ms", paced)
        assert ttft and int(ttft.group(1)) >= 30
        assert "50.0% of attempts" in _member(row, "new/b")
        slow = _member(row, "slow/s")
        assert "1 in flight" in slow and "no recent attempts" in slow and "TTFT —" in slow
        unused = _member(row, "old/a")
        assert "no recent attempts" in unused and "0 in flight" in unused
        assert "TTFT —" in unused

        spread = _row(html, "spread")
        assert ">weighted</span>" in spread
        assert "weight 3" in _member(spread, "old/a") and "weight 1" in _member(spread, "new/b")

        async def idle() -> bool:  # the client went away: its request ends
            row = _row((await web.get("/admin/routes")).text, "chat")
            return "0 in flight" in _member(row, "slow/s")

        await eventually_async(idle, "slow/s with nothing in flight")
    finally:
        await web.aclose()


async def test_an_open_breaker_shows_as_open(serve: Serve) -> None:
    config = {
        **CONFIG,
        "providers": {**CONFIG["providers"], "down": {"kind": "mock", "fail_status": 503}},
        "routes": {
            "chat": {
                "targets": ["down/x", "old/a"],
                "max_retries": 0,
                "breaker": {"failure_threshold": 1, "cooldown_s": 3600},
            }
        },
    }
    gateway = await serve(config=config)
    web = await sign_in(gateway.base)
    try:
        await gateway.answer("chat")
        html = (await web.get("/admin/routes")).text
        down = html[html.index('data-target="down/x"') : html.index('data-target="old/a"')]
        assert 'class="badge open"' in down
    finally:
        await web.aclose()


async def test_an_invalid_field_is_shown_next_to_it_with_every_typed_value_kept(
    dashboard: Dashboard,
) -> None:
    form = {**FULL, **await _form(dashboard), "max_retries": "99", "backoff_max_s": "soon"}
    response = await dashboard.post("/admin/routes/new", data=form)
    assert response.status_code == 422
    html = response.text
    assert _error(html, "max_retries") == "Expected `int` &lt;= 10"
    assert _error(html, "backoff_max_s") == "Expected `float`, got &#39;soon&#39;"
    assert 'class="field invalid" id="wrap-max_retries"' in html
    assert _error(html, "name") is None and _error(html, "targets-0") is None
    assert html.lstrip().startswith('<form id="route-form"')  # the form alone, for htmx
    for name in ("name", "breaker.cooldown_s", "breaker.failure_threshold", "connect_timeout_s"):
        assert _value(html, name) == FULL[name]
    assert _value(html, "max_retries") == "99" and _value(html, "backoff_max_s") == "soon"
    assert _targets(html) == ["new/b", "old/a"]
    assert 'value="user_turn" selected' in html
    assert 'value="timeout" checked' in html and 'value="rate_limited" checked' not in html
    assert ">Go on.</textarea>" in html
    # nothing was written
    assert await _revision(dashboard) == 1


async def test_an_unknown_provider_is_an_error_on_its_target_row(dashboard: Dashboard) -> None:
    form = {**FULL, **await _form(dashboard), "targets": ["old/a", "nowhere/m", "bad"]}
    response = await dashboard.post("/admin/routes/new", data=form)
    assert response.status_code == 422
    assert _error(response.text, "targets-2") == (
        "Expected `str` matching regex &#39;^[A-Za-z0-9_.-]+/.+$&#39;"
    )
    assert _error(response.text, "targets-1") is None  # schema first: the rows it accepts
    form["targets"] = ["old/a", "nowhere/m"]
    response = await dashboard.post("/admin/routes/new", data=form)
    assert response.status_code == 422
    message = _error(response.text, "targets-1")
    assert message and message.startswith("unknown provider &#39;nowhere&#39;")
    assert 'class="target-row invalid" id="target-row-1"' in response.text
    assert _targets(response.text) == ["old/a", "nowhere/m"]


async def test_fixing_the_form_saves_a_revision_the_gateway_serves(dashboard: Dashboard) -> None:
    hidden = await _form(dashboard)
    bad = await dashboard.post("/admin/routes/new", data={**FULL, **hidden, "max_retries": "99"})
    assert bad.status_code == 422
    saved = await dashboard.post("/admin/routes/new", data={**FULL, **hidden})
    assert saved.status_code == 200, saved.text
    assert saved.headers["hx-redirect"] == "/admin/routes?saved=fresh&revision=2"
    assert await _revision(dashboard) == 2
    assert await dashboard.gateway.answer("fresh") == (200, "new/b", "new answer")
    stored = (await dashboard.gateway.admin.get("/routes/fresh")).json()
    assert stored["targets"] == ["new/b", "old/a"]
    assert stored["max_retries"] == 1 and stored["breaker"] == {
        "failure_threshold": 3,
        "cooldown_s": 12.5,
    }
    assert stored["fallback_on"] == ["timeout", "upstream_unavailable"]
    revisions = (await dashboard.gateway.admin.get("/revisions")).json()["revisions"]
    assert revisions[0]["actor"] == "dashboard (admin key)"
    page = await dashboard.get(saved.headers["hx-redirect"])
    assert "Route &#39;fresh&#39; saved: revision 2 is served." in page.text
    assert 'id="route-fresh"' in page.text


async def test_empty_fields_take_their_defaults_and_no_reason_checked_is_unset(
    dashboard: Dashboard,
) -> None:
    hidden = await _form(dashboard)
    form = {"name": "plain", "targets": ["old/a", ""], "max_retries": " ", **hidden}
    saved = await dashboard.post("/admin/routes/new", data=form)
    assert saved.status_code == 200, saved.text
    stored = (await dashboard.gateway.admin.get("/routes/plain")).json()
    assert stored["targets"] == ["old/a"]
    assert stored["max_retries"] == 2 and stored["fallback_on"] is None


async def test_invalid_names_are_errors_on_the_name_field(dashboard: Dashboard) -> None:
    hidden = await _form(dashboard)
    for name, message in (
        ("", "Enter a name"),
        ("a/b", "a route name must not contain &#39;/&#39;"),
        ("chat", "a route named &#39;chat&#39; already exists"),
        ("x" * 201, "a name must be 1 to 200 characters long"),
    ):
        response = await dashboard.post("/admin/routes/new", data={**FULL, **hidden, "name": name})
        assert response.status_code == 422
        error = _error(response.text, "name")
        assert error and error.startswith(message), (name, error)
        assert _value(response.text, "name") == name


async def test_no_targets_is_an_error_on_the_targets_field(dashboard: Dashboard) -> None:
    hidden = await _form(dashboard)
    response = await dashboard.post("/admin/routes/new", data={**FULL, **hidden, "targets": [""]})
    assert response.status_code == 422
    assert _error(response.text, "targets") == (
        "expected at least one target of the form provider/model"
    )


async def test_target_rows_are_added_removed_and_reordered(dashboard: Dashboard) -> None:
    await dashboard.get("/admin/routes/new")
    form = {"targets": ["old/a", "new/b", "old/c"], "max_retries": "7"}
    up = await dashboard.post("/admin/routes/targets", data={**form, "op": "up:2"})
    assert up.status_code == 200
    assert up.text.lstrip().startswith('<fieldset id="targets"')
    assert _targets(up.text) == ["old/a", "old/c", "new/b"]
    down = await dashboard.post("/admin/routes/targets", data={**form, "op": "down:0"})
    assert _targets(down.text) == ["new/b", "old/a", "old/c"]
    add = await dashboard.post("/admin/routes/targets", data={**form, "op": "add"})
    assert _targets(add.text) == ["old/a", "new/b", "old/c", ""]
    remove = await dashboard.post("/admin/routes/targets", data={**form, "op": "remove:1"})
    assert _targets(remove.text) == ["old/a", "old/c"]
    edge = await dashboard.post("/admin/routes/targets", data={**form, "op": "up:0"})
    assert _targets(edge.text) == ["old/a", "new/b", "old/c"]
    assert 'id="target-up-0"' in edge.text and "disabled" in edge.text


async def test_reordering_targets_in_an_edit_changes_which_answers(dashboard: Dashboard) -> None:
    hidden = await _form(dashboard)
    saved = await dashboard.post("/admin/routes/new", data={**FULL, **hidden})
    assert saved.status_code == 200
    page = await dashboard.get("/admin/routes/fresh/edit")
    assert _targets(page.text) == ["new/b", "old/a"]
    assert _value(page.text, "breaker.cooldown_s") == "12.5"
    assert 'name="name"' in page.text and 'id="field-name"' not in page.text  # fixed
    moved = await dashboard.post(
        "/admin/routes/targets", data={"targets": _targets(page.text), "op": "down:0"}
    )
    form = {**FULL, **await _form(dashboard, "/admin/routes/fresh/edit")}
    form["targets"] = _targets(moved.text)
    edited = await dashboard.post("/admin/routes/fresh/edit", data=form)
    assert edited.status_code == 200, edited.text
    assert await dashboard.gateway.answer("fresh") == (200, "old/a", "old answer")


async def test_a_stale_edit_is_refused_with_the_revision_it_conflicts_with(
    dashboard: Dashboard,
) -> None:
    form = {**FULL, **await _form(dashboard, "/admin/routes/chat/edit"), "name": "chat"}
    other = await dashboard.gateway.admin.put("/routes/other", json={"targets": ["old/a"]})
    assert other.status_code == 200
    response = await dashboard.post("/admin/routes/chat/edit", data=form)
    assert response.status_code == 409
    assert "Someone else changed the configuration: it is now at revision 2" in response.text
    assert "loaded at revision 1" in response.text and 'id="reload-form"' in response.text
    assert _targets(response.text) == ["new/b", "old/a"]  # what was typed is still there
    stored = (await dashboard.gateway.admin.get("/routes/chat")).json()
    assert stored["targets"] == ["old/a"]


async def test_an_edit_of_a_missing_route_is_a_404_page(dashboard: Dashboard) -> None:
    page = await dashboard.get("/admin/routes/nope/edit")
    assert page.status_code == 404 and "There is no route named &#39;nope&#39;" in page.text


async def test_delete_removes_the_route(dashboard: Dashboard) -> None:
    await dashboard.gateway.admin.put("/routes/extra", json={"targets": ["old/a"]})
    await dashboard.gateway.serves_within(2, 5)
    page = await dashboard.get("/admin/routes")
    assert 'id="delete-route-extra"' in page.text and "hx-confirm=" in page.text
    response = await dashboard.post("/admin/routes/extra/delete", data={"expected_revision": "2"})
    assert response.status_code == 200
    assert response.headers["hx-redirect"] == "/admin/routes?deleted=extra&revision=3"
    assert (await dashboard.gateway.answer("extra"))[0] == 404
    again = await dashboard.post("/admin/routes/extra/delete", data={})
    assert again.status_code == 404
    assert again.text.startswith('<div id="page-notice" class="notice error"')
    stale = await dashboard.post("/admin/routes/chat/delete", data={"expected_revision": "2"})
    assert stale.status_code == 409 and "now at revision 3" in stale.text


async def test_the_revision_history_shows_diffs_and_rolls_back(dashboard: Dashboard) -> None:
    hidden = await _form(dashboard, "/admin/routes/chat/edit")
    form = {**FULL, **hidden, "name": "chat", "max_retries": "4"}
    assert (await dashboard.post("/admin/routes/chat/edit", data=form)).status_code == 200
    assert await dashboard.gateway.answer("chat") == (200, "new/b", "new answer")
    page = await dashboard.get("/admin/revisions")
    assert page.status_code == 200
    html = page.text
    assert html.index('id="revision-2"') < html.index('id="revision-1"')
    second = html[html.index('id="revision-2"') : html.index('id="revision-1"')]
    assert "dashboard" in second and "~route chat" in second
    assert '<div class="mono del">- max_retries = 2</div>' in second
    assert '<div class="mono add">+ max_retries = 4</div>' in second
    assert 'id="rollback-2"' not in second  # the current one
    first = html[html.index('id="revision-1"') :]
    assert '<div class="mono add">+ targets = [&#34;old/a&#34;]</div>' in first
    assert 'id="rollback-1"' in first and "hx-confirm=" in first
    response = await dashboard.post("/admin/revisions/1/rollback", data={"expected_revision": "2"})
    assert response.status_code == 200, response.text
    assert response.headers["hx-redirect"] == "/admin/revisions?rolled_back=1&revision=3"
    assert await dashboard.gateway.answer("chat") == (200, "old/a", "old answer")
    after = await dashboard.get(response.headers["hx-redirect"])
    assert "Rolled back to revision 1: revision 3 is served." in after.text
    stale = await dashboard.post("/admin/revisions/2/rollback", data={"expected_revision": "2"})
    assert stale.status_code == 409 and "now at revision 3" in stale.text


async def test_without_a_store_the_served_file_is_shown_read_only(serve: Serve) -> None:
    gateway = await serve(url=None)
    web = await sign_in(gateway.base)
    try:
        page = await web.get("/admin/routes")
        assert page.status_code == 200
        assert 'id="route-chat"' in page.text and "old/a" in page.text
        assert 'id="new-route"' not in page.text and "delete-route" not in page.text
        assert (await web.get("/admin/routes/new")).status_code == 409
        headers = {"x-csrftoken": web.cookies["llmgate_csrf"], "hx-request": "true"}
        refused = await web.post("/admin/routes/new", data=FULL, headers=headers)
        assert refused.status_code == 409 and "read-only" in refused.text
        assert (await web.get("/admin/revisions")).status_code == 404
    finally:
        await web.aclose()


async def test_a_store_that_cannot_be_read_is_a_503_notice_not_a_500(
    dashboard: Dashboard, engine: AsyncEngine
) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("DROP TABLE routes"))
    for path, active in (("/admin/routes", "Routes"), ("/admin/providers/old/edit", "Providers")):
        page = await dashboard.get(path)
        assert page.status_code == 503, path
        assert "The policy store is unavailable (OperationalError)." in page.text
        assert f'aria-current="page">{active}</a>' in page.text
    swapped = await dashboard.get("/admin/providers", headers={"hx-request": "true"})
    assert swapped.status_code == 503
    assert swapped.text.startswith('<div id="page-notice" class="notice error"')
    refused = await dashboard.post("/admin/routes/chat/delete", data={"expected_revision": "1"})
    assert refused.status_code == 503 and "nothing was saved" in refused.text


async def test_every_write_without_the_csrf_token_is_refused(dashboard: Dashboard) -> None:
    await dashboard.get("/admin/routes")
    for path in (
        "/admin/routes/new",
        "/admin/routes/chat/edit",
        "/admin/routes/targets",
        "/admin/routes/chat/delete",
        "/admin/revisions/1/rollback",
    ):
        response = await dashboard.web.post(path, data={**FULL, "op": "add"})
        assert response.status_code == 403, path
    assert await _revision(dashboard) == 1


async def test_signed_out_pages_redirect_to_sign_in(dashboard: Dashboard) -> None:
    async with httpx.AsyncClient(base_url=dashboard.gateway.base, timeout=10) as web:
        for path in (
            "/admin/routes",
            "/admin/routes/new",
            "/admin/routes/chat/edit",
            "/admin/revisions",
        ):
            response = await web.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/admin/login?next=")


async def test_a_plain_form_post_gets_the_page_or_a_303(dashboard: Dashboard) -> None:
    """Without htmx the form still works: the whole page with the errors, then a 303."""
    hidden = await _form(dashboard)
    form = {**FULL, **hidden, "_csrf_token": dashboard.csrf}
    bad = await dashboard.post("/admin/routes/new", htmx=False, data={**form, "max_retries": "-1"})
    assert bad.status_code == 422
    assert bad.text.lstrip().startswith("<!doctype html>")
    assert _error(bad.text, "max_retries") == "Expected `int` &gt;= 0"
    good = await dashboard.post("/admin/routes/new", htmx=False, data=form)
    assert good.status_code == 303
    assert good.headers["location"] == "/admin/routes?saved=fresh&revision=2"


async def test_a_routes_budget_is_edited_in_the_form_and_kept_by_other_edits(
    dashboard: Dashboard,
) -> None:
    hidden = await _form(dashboard, "/admin/routes/chat/edit")
    fields = {"targets": ["old/a"], "budget.requests_per_minute": "60", "budget.usd_per_day": "5"}
    refused = await dashboard.post(
        "/admin/routes/chat/edit", data={**hidden, **fields, "budget.timezone": "Mars/Olympus"}
    )
    assert refused.status_code == 422
    assert "Mars/Olympus" in (_error(refused.text, "budget.timezone") or "")
    assert _value(refused.text, "budget.usd_per_day") == "5"

    saved = await dashboard.post("/admin/routes/chat/edit", data={**hidden, **fields})
    assert saved.status_code == 200 and "hx-redirect" in saved.headers, saved.text
    stored = (await dashboard.gateway.admin.get("/routes/chat")).json()
    assert stored["budget"] == {"usd_per_day": 5.0, "requests_per_minute": 60}

    # the form shows the budget, so saving it again for another change keeps it
    form = await dashboard.get("/admin/routes/chat/edit")
    assert _value(form.text, "budget.requests_per_minute") == "60"


async def test_a_pool_row_is_saved_shown_again_and_checked_like_the_api(
    dashboard: Dashboard,
) -> None:
    pool = '{"pool": ["old/a", "new/b"], "balance": "least_busy"}'
    form = {**FULL, **await _form(dashboard), "targets": [pool, "new/b"]}
    saved = await dashboard.post("/admin/routes/new", data=form)
    assert saved.status_code == 200, saved.text
    stored = (await dashboard.gateway.admin.get("/routes/fresh")).json()
    assert stored["targets"] == [{"pool": ["old/a", "new/b"], "balance": "least_busy"}, "new/b"]
    edit = await dashboard.get("/admin/routes/fresh/edit")
    shown = [t.replace("&#34;", '"') for t in _targets(edit.text)]
    assert shown == [pool, "new/b"]

    bad = {**form, "name": "other", "targets": ['{"pool": ["old/a", "nowhere/m"]}']}
    refused = await dashboard.post("/admin/routes/new", data=bad)
    assert refused.status_code == 422
    message = _error(refused.text, "targets-0")
    assert message and message.startswith("unknown provider &#39;nowhere&#39;")
    weights = {**bad, "targets": ['{"pool": ["old/a", "new/b"], "weights": [1]}']}
    refused = await dashboard.post("/admin/routes/new", data=weights)
    assert _error(refused.text, "targets-0") == "expected one weight per pool member (2), got 1"


async def test_a_route_named_with_url_characters_is_linked_quoted_once(
    dashboard: Dashboard,
) -> None:
    name = "a b%c#d?e"
    form = {**FULL, **await _form(dashboard), "name": name}
    saved = await dashboard.post("/admin/routes/new", data=form)
    assert saved.status_code == 200, saved.text
    listed = await dashboard.get("/admin/routes")
    edit = "/admin/routes/a%20b%25c%23d%3Fe/edit"
    assert f'href="{edit}"' in listed.text
    page = await dashboard.get(edit)
    assert page.status_code == 200 and "Route a b%c#d?e" in page.text
    updated = await dashboard.post(edit, data={**form, **await _form(dashboard, edit)})
    assert updated.status_code == 200, updated.text
    assert (await dashboard.gateway.admin.get("/routes")).json()["routes"][name]["max_retries"] == 1


async def test_affinity_and_hedging_are_saved_shown_again_and_checked(
    dashboard: Dashboard,
) -> None:
    form = {**FULL, **await _form(dashboard), "affinity": "session", "hedge_after_s": "p95"}
    saved = await dashboard.post("/admin/routes/new", data=form)
    assert saved.status_code == 200, saved.text
    stored = (await dashboard.gateway.admin.get("/routes/fresh")).json()
    assert (stored["affinity"], stored["hedge_after_s"]) == ("session", "p95")
    edit = (await dashboard.get("/admin/routes/fresh/edit")).text
    assert _value(edit, "hedge_after_s") == "p95"
    assert re.search(r'<option value="session" selected>', edit)
    # Saving the form again keeps both (a field the form did not show would be lost).
    again = {**form, **await _form(dashboard, "/admin/routes/fresh/edit"), "hedge_after_s": "1.5"}
    del again["name"]
    updated = await dashboard.post("/admin/routes/fresh/edit", data=again)
    assert updated.status_code == 200, updated.text
    stored = (await dashboard.gateway.admin.get("/routes/fresh")).json()
    assert (stored["affinity"], stored["hedge_after_s"]) == ("session", 1.5)

    bad = {**form, "name": "other", "hedge_after_s": "soon"}
    refused = await dashboard.post("/admin/routes/new", data=bad)
    assert refused.status_code == 422
    assert _error(refused.text, "hedge_after_s")
