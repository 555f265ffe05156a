"""The providers pages through real HTTP: the list (kind, key status, the routes using
each), the kind-specific forms with inline errors, delete, and that an API key's value
never reaches a page."""

from __future__ import annotations

import re

import httpx

from tests.dashboard.conftest import CONFIG, ENV, Dashboard, Serve, sign_in

SECRET = "secret-value-4f9a"


def _error(html: str, field: str) -> str | None:
    match = re.search(rf'<p class="field-error" id="error-{re.escape(field)}">([^<]*)</p>', html)
    return match.group(1) if match else None


def _value(html: str, name: str) -> str | None:
    match = re.search(rf'<input[^>]*name="{re.escape(name)}"[^>]*value="([^"]*)"', html)
    return match.group(1) if match else None


async def _expected(dashboard: Dashboard, path: str = "/admin/providers/new") -> str:
    page = await dashboard.get(path)
    assert page.status_code == 200, page.text
    match = re.search(r'name="expected_revision" value="(\d+)"', page.text)
    assert match
    return match.group(1)


async def test_the_list_shows_kind_options_key_status_and_routes(serve: Serve) -> None:
    config = {
        **CONFIG,
        "providers": {
            **CONFIG["providers"],
            "up": {
                "kind": "openai",
                "base_url": "http://127.0.0.1:9/v1",
                "api_key_env": "X_KEY",
                "headers": {"X-Org": "acme"},
            },
            "nokey": {"kind": "openai", "api_key_env": "MISSING_KEY"},
        },
        "routes": {"chat": {"targets": ["old/a", "up/gpt-x", "up/gpt-y"]}},
    }
    gateway = await serve(config=config, env={**ENV, "X_KEY": SECRET})
    web = await sign_in(gateway.base)
    try:
        page = await web.get("/admin/providers")
        assert page.status_code == 200
        html = page.text
        assert SECRET not in html
        up = html[html.index('id="provider-up"') :]
        up = up[: up.index("</tr>")]
        assert "openai" in up and "http://127.0.0.1:9/v1" in up
        assert '<code>X_KEY</code> <span class="badge ok" id="key-status-up">set</span>' in up
        assert "headers: X-Org" in up and "acme" not in up  # header values may be secrets
        assert '<a href="/admin/routes#route-chat">chat</a>' in up and "gpt-x, gpt-y" in up
        assert 'id="key-status-nokey">not set</span>' in html
        old = html[html.index('id="provider-old"') :]
        old = old[: old.index("</tr>")]
        assert "text=&#39;old answer&#39;" in old and "none needed" in old
        new = html[html.index('id="provider-new"') :]
        assert "no route" in new[: new.index("</tr>")]

        edit = await web.get("/admin/providers/up/edit")
        assert edit.status_code == 200
        assert SECRET not in edit.text
        assert _value(edit.text, "api_key_env") == "X_KEY"
        assert 'id="key-status">set</span>' in edit.text
        assert ">X-Org=••••••</textarea>" in edit.text and "acme" not in edit.text
    finally:
        await web.aclose()


async def test_switching_the_kind_renders_that_kinds_fields(dashboard: Dashboard) -> None:
    page = await dashboard.get("/admin/providers/new")
    assert 'id="provider-form"' in page.text and 'hx-get="/admin/providers/fields"' in page.text
    for name in ("tokens", "token_latency_ms", "cut_after", "fail_status", "fail_times"):
        assert f'name="{name}"' in page.text
    fields = await dashboard.get(
        "/admin/providers/fields", params={"kind": "anthropic"}, headers={"hx-request": "true"}
    )
    assert fields.status_code == 200
    html = fields.text
    assert html.lstrip().startswith('<fieldset id="kind-fields"')
    assert 'data-kind="anthropic"' in html and 'name="tokens"' not in html
    assert _value(html, "base_url") == "https://api.anthropic.com"
    assert _value(html, "api_key_env") == "ANTHROPIC_API_KEY"
    assert 'name="supports_prefill" value="true" checked' in html
    assert 'name="headers"' in html and 'id="key-status">not set</span>' in html


async def test_an_invalid_field_is_shown_inline_and_fixing_it_saves(dashboard: Dashboard) -> None:
    form = {
        "expected_revision": await _expected(dashboard),
        "name": "flaky",
        "kind": "mock",
        "tokens": "0",
        "token_latency_ms": "1.5",
        "fail_status": "200",
        "fail_times": "2",
        "cut_after": "",
        "stall_after": "x",
        "supports_prefill": "true",
        "text": "fixed",
    }
    response = await dashboard.post("/admin/providers/new", data=form)
    assert response.status_code == 422
    html = response.text
    assert html.lstrip().startswith('<form id="provider-form"')
    assert _error(html, "tokens") == "Expected `int` &gt;= 1"
    assert _error(html, "fail_status") == "Expected `int` &gt;= 400"
    assert _error(html, "stall_after") == "Expected `int | null`, got &#39;x&#39;"
    assert 'class="field invalid" id="wrap-tokens"' in html
    assert _error(html, "fail_times") is None and _error(html, "name") is None
    for name in ("name", "tokens", "token_latency_ms", "fail_status", "fail_times", "text"):
        assert _value(html, name) == form[name], name
    assert 'name="supports_prefill" value="true" checked' in html
    assert await dashboard.gateway.revision() == 1

    form.update(tokens="5", fail_status="503", stall_after="")
    saved = await dashboard.post("/admin/providers/new", data=form)
    assert saved.status_code == 200, saved.text
    assert saved.headers["hx-redirect"] == "/admin/providers?saved=flaky&revision=2"
    stored = (await dashboard.gateway.admin.get("/providers/flaky")).json()
    assert stored["tokens"] == 5 and stored["fail_status"] == 503 and stored["fail_times"] == 2
    assert stored["stall_after"] is None and stored["text"] == "fixed"
    revisions = (await dashboard.gateway.admin.get("/revisions")).json()["revisions"]
    assert revisions[0]["actor"] == "dashboard (admin key)"  # who signed in, and how
    page = await dashboard.get(saved.headers["hx-redirect"])
    assert "Provider &#39;flaky&#39; saved: revision 2 is served." in page.text


async def test_headers_lines_names_and_unbuildable_urls_are_checked(dashboard: Dashboard) -> None:
    base = {"expected_revision": await _expected(dashboard), "kind": "openai"}
    bad_headers = {**base, "name": "oa", "headers": "X-A=1\nno equals sign"}
    response = await dashboard.post("/admin/providers/new", data=bad_headers)
    assert response.status_code == 422
    assert _error(response.text, "headers") == (
        "line 2: expected key=value, not &#39;no equals sign&#39;"
    )
    assert "X-A=1\nno equals sign</textarea>" in response.text
    for name, message in (
        ("old", "a provider named &#39;old&#39; already exists"),
        ("a/b", "a provider name may only use letters"),
        ("", "Enter a name"),
    ):
        response = await dashboard.post("/admin/providers/new", data={**base, "name": name})
        assert response.status_code == 422
        error = _error(response.text, "name")
        assert error and error.startswith(message), (name, error)
    url = {**base, "name": "oa", "base_url": "http://[::1"}
    response = await dashboard.post("/admin/providers/new", data=url)
    assert response.status_code == 422
    assert _error(response.text, "base_url")
    assert _value(response.text, "base_url") == "http://[::1"
    assert await dashboard.gateway.revision() == 1


async def test_editing_a_provider_changes_what_its_routes_answer(dashboard: Dashboard) -> None:
    page = await dashboard.get("/admin/providers/old/edit")
    assert _value(page.text, "text") == "old answer"
    assert 'id="field-name"' not in page.text
    form = {
        "expected_revision": await _expected(dashboard, "/admin/providers/old/edit"),
        "kind": "mock",
        "text": "edited answer",
        "supports_prefill": "true",
    }
    saved = await dashboard.post("/admin/providers/old/edit", data=form)
    assert saved.status_code == 200, saved.text
    assert await dashboard.gateway.answer("chat") == (200, "old/a", "edited answer")
    stale = await dashboard.post("/admin/providers/old/edit", data={**form, "text": "again"})
    assert stale.status_code == 409
    assert "it is now at revision 2" in stale.text and _value(stale.text, "text") == "again"


async def test_delete_is_refused_while_a_route_uses_the_provider(dashboard: Dashboard) -> None:
    await dashboard.get("/admin/providers")
    used = await dashboard.post("/admin/providers/old/delete", data={"expected_revision": "1"})
    assert used.status_code == 422
    notice = re.search(r'<div id="page-notice"[^>]*>([^<]*)</div>', used.text)
    assert notice and notice.group(1) == (
        "provider &#39;old&#39; is still used by route &#39;chat&#39; (&#39;old/a&#39;); "
        "change or delete the route first"
    )
    unused = await dashboard.post("/admin/providers/new/delete", data={"expected_revision": "1"})
    assert unused.status_code == 200
    assert unused.headers["hx-redirect"] == "/admin/providers?deleted=new&revision=2"
    providers = (await dashboard.gateway.admin.get("/providers")).json()["providers"]
    assert sorted(providers) == ["old"]


async def test_without_a_store_providers_are_read_only(serve: Serve) -> None:
    gateway = await serve(url=None)
    web = await sign_in(gateway.base)
    try:
        page = await web.get("/admin/providers")
        assert page.status_code == 200 and 'id="provider-old"' in page.text
        assert 'id="new-provider"' not in page.text and "delete-provider" not in page.text
        assert (await web.get("/admin/providers/old/edit")).status_code == 409
    finally:
        await web.aclose()


async def test_writes_need_the_csrf_token_and_pages_a_session(dashboard: Dashboard) -> None:
    await dashboard.get("/admin/providers")
    for path in (
        "/admin/providers/new",
        "/admin/providers/old/edit",
        "/admin/providers/new/delete",
    ):
        response = await dashboard.web.post(path, data={"name": "x", "kind": "mock"})
        assert response.status_code == 403, path
    assert await dashboard.gateway.revision() == 1
    async with httpx.AsyncClient(base_url=dashboard.gateway.base, timeout=10) as web:
        for path in ("/admin/providers", "/admin/providers/new", "/admin/providers/old/edit"):
            response = await web.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"].startswith("/admin/login?next=")


async def test_prices_are_edited_in_the_provider_form_and_validated(dashboard: Dashboard) -> None:
    form = {
        "expected_revision": await _expected(dashboard, "/admin/providers/old/edit"),
        "kind": "mock",
        "text": "old answer",
        "supports_prefill": "true",
        "prices": '{"a": {"input_per_mtok": -1, "output_per_mtok": 2}}',
    }
    refused = await dashboard.post("/admin/providers/old/edit", data=form)
    assert refused.status_code == 422
    assert "&gt;= 0" in (_error(refused.text, "prices") or "")

    form["prices"] = '{"a": {"input_per_mtok": 1.5, "output_per_mtok": 2}}'
    saved = await dashboard.post("/admin/providers/old/edit", data=form)
    assert saved.status_code == 200, saved.text
    stored = (await dashboard.gateway.admin.get("/providers/old")).json()
    assert stored["prices"] == {"a": {"input_per_mtok": 1.5, "output_per_mtok": 2.0}}


async def test_a_masked_header_value_is_kept_on_save_and_a_new_one_must_be_typed(
    dashboard: Dashboard,
) -> None:
    base = {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key_env": "X_KEY"}
    created = await dashboard.post(
        "/admin/providers/new",
        data={
            **base,
            "name": "hdr",
            "headers": "X-Org=acme",
            "expected_revision": await _expected(dashboard),
        },
    )
    assert created.status_code == 200, created.text
    edit = "/admin/providers/hdr/edit"
    page = await dashboard.get(edit)
    assert "acme" not in page.text
    saved = await dashboard.post(
        edit,
        data={
            **base,
            "headers": "X-Org=••••••\nX-Team=search",
            "expected_revision": await _expected(dashboard, edit),
        },
    )
    assert saved.status_code == 200, saved.text
    stored = (await dashboard.gateway.admin.get("/providers/hdr")).json()
    assert stored["headers"] == {"X-Org": "acme", "X-Team": "search"}
    refused = await dashboard.post(
        edit,
        data={
            **base,
            "headers": "X-New=••••••",
            "expected_revision": await _expected(dashboard, edit),
        },
    )
    assert refused.status_code == 422
    assert _error(refused.text, "headers") == "line 1: type the value of X-New"
