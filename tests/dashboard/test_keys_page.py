"""The API keys page through real HTTP: the list, a created or rotated secret shown once
and working at once against the served gateway, routes limits, revoke, inline errors,
CSRF, and the page of a gateway without a database."""

from __future__ import annotations

import re

import httpx

from tests.dashboard.conftest import MESSAGES, Dashboard, Serve, sign_in

CHAT = {"model": "chat", "messages": MESSAGES}


def _secret(html: str) -> str:
    match = re.search(r'<code id="new-secret">(sk-lg-[A-Za-z0-9_-]+)</code>', html)
    assert match, html
    return match.group(1)


def _error(html: str, field: str) -> str | None:
    match = re.search(rf'<p class="field-error" id="error-{re.escape(field)}">([^<]*)</p>', html)
    return match.group(1) if match else None


def _row(html: str, key_id: str) -> str:
    row = html[html.index(f'id="key-{key_id}"') :]
    return row[: row.index("</tr>")]


def _row_ids(html: str) -> list[str]:
    return re.findall(r'<tr id="key-(key_[0-9a-f]+)"', html)


async def _status(dashboard: Dashboard, secret: str, model: str = "chat") -> int:
    response = await dashboard.gateway.http.post(
        "/v1/chat/completions",
        json={**CHAT, "model": model},
        headers={"authorization": f"Bearer {secret}"},
    )
    return response.status_code


async def _create(dashboard: Dashboard, name: str, routes: list[str] | None = None) -> str:
    response = await dashboard.post("/admin/keys/new", data={"name": name, "routes": routes or []})
    assert response.status_code == 201, response.text
    return _secret(response.text)


async def _id_of(dashboard: Dashboard, name: str) -> str:
    keys = (await dashboard.gateway.admin.get("/keys")).json()["keys"]
    (key_id,) = [k["id"] for k in keys if k["name"] == name and k["active"]]
    return str(key_id)


async def test_a_created_secret_is_shown_once_and_works_at_once(dashboard: Dashboard) -> None:
    empty = await dashboard.get("/admin/keys")
    assert empty.status_code == 200
    assert 'href="/admin/keys" class="active"' in empty.text
    assert 'id="no-keys"' in empty.text and 'id="key-form"' in empty.text
    assert 'id="field-route-chat"' in empty.text

    created = await dashboard.post("/admin/keys/new", data={"name": "app1"})
    assert created.status_code == 201
    assert "<html" not in created.text  # the panel alone, swapped in place of #keys
    assert created.text.lstrip().startswith('<div id="keys"')
    assert created.headers["cache-control"] == "no-store"
    assert "Shown only now; store it." in created.text
    secret = _secret(created.text)
    key_id = await _id_of(dashboard, "app1")
    row = _row(created.text, key_id)
    assert "all routes" in row and f"{secret[:12]}…" in row
    assert 'id="key-state-' + key_id + '">active</span>' in row
    assert _error(created.text, "name") is None
    assert 'name="name" value=""' in created.text  # a fresh form for the next key

    assert await _status(dashboard, secret) == 200
    assert await _status(dashboard, "sk-lg-not-a-key") == 401

    reloaded = await dashboard.get("/admin/keys")
    assert reloaded.status_code == 200
    assert secret not in reloaded.text and 'id="new-secret"' not in reloaded.text
    assert secret[:12] in _row(reloaded.text, key_id)
    assert "no-store" not in reloaded.headers.get("cache-control", "")

    # a plain form post (no htmx) gets the whole page, with the secret once too
    plain = await dashboard.post("/admin/keys/new", data={"name": "app2"}, htmx=False)
    assert plain.status_code == 201 and "<html" in plain.text
    second = _secret(plain.text)
    assert second != secret and await _status(dashboard, second) == 200
    assert secret not in plain.text
    page = await dashboard.get("/admin/keys")
    assert second not in page.text
    ids = _row_ids(page.text)
    assert ids == [await _id_of(dashboard, "app2"), key_id]  # newest first


async def test_a_key_limited_to_a_route_is_refused_another(dashboard: Dashboard) -> None:
    other = await dashboard.gateway.admin.put("/routes/other", json={"targets": ["new/a"]})
    assert other.status_code == 200, other.text
    page = await dashboard.get("/admin/keys")
    assert 'id="field-route-chat"' in page.text and 'id="field-route-other"' in page.text

    secret = await _create(dashboard, "chat-only", ["chat"])
    assert await _status(dashboard, secret) == 200
    assert await _status(dashboard, secret, "other") == 403
    row = _row((await dashboard.get("/admin/keys")).text, await _id_of(dashboard, "chat-only"))
    assert "<code>chat</code>" in row and "other" not in row and "all routes" not in row

    both = await _create(dashboard, "both", ["chat", "other"])
    assert await _status(dashboard, both, "other") == 200


async def test_rotate_and_revoke(dashboard: Dashboard) -> None:
    old = await _create(dashboard, "app1")
    key_id = await _id_of(dashboard, "app1")

    rotated = await dashboard.post(f"/admin/keys/{key_id}/rotate")
    assert rotated.status_code == 200
    assert rotated.headers["cache-control"] == "no-store"
    assert "The previous secret has stopped working." in rotated.text
    new = _secret(rotated.text)
    assert new != old
    assert await _status(dashboard, old) == 401
    assert await _status(dashboard, new) == 200
    row = _row(rotated.text, key_id)
    assert f"{new[:12]}…" in row and row.count('<td class="when">—</td>') == 1  # not revoked
    assert new not in (await dashboard.get("/admin/keys")).text

    revoked = await dashboard.post(f"/admin/keys/{key_id}/revoke")
    assert revoked.status_code == 200
    assert 'id="page-notice"' in revoked.text and "is revoked" in revoked.text
    assert 'id="new-secret"' not in revoked.text
    row = _row(revoked.text, key_id)
    assert f'id="key-state-{key_id}">revoked</span>' in row
    assert f"rotate-{key_id}" not in row and f"revoke-{key_id}" not in row
    assert '<td class="when">—</td>' not in row  # created, rotated and revoked
    assert await _status(dashboard, new) == 401

    again = await dashboard.post(f"/admin/keys/{key_id}/revoke")
    assert again.status_code == 200 and "already revoked" in again.text
    refused = await dashboard.post(f"/admin/keys/{key_id}/rotate")
    assert refused.status_code == 404 and "is revoked" in refused.text
    missing = await dashboard.post("/admin/keys/key_000000000000/revoke")
    assert missing.status_code == 404 and 'class="notice error"' in missing.text

    # the name is free again; the active key is listed before the revoked one
    await _create(dashboard, "app1")
    ids = _row_ids((await dashboard.get("/admin/keys")).text)
    assert ids == [await _id_of(dashboard, "app1"), key_id]


async def test_invalid_names_are_shown_inline_keeping_what_was_typed(
    dashboard: Dashboard,
) -> None:
    await dashboard.get("/admin/keys")
    blank = await dashboard.post("/admin/keys/new", data={"name": "  ", "routes": ["chat"]})
    assert blank.status_code == 422
    assert (_error(blank.text, "name") or "").startswith("Enter a name")
    assert re.search(r'id="field-route-chat" checked', blank.text)
    assert 'id="new-secret"' not in blank.text

    await _create(dashboard, "app1")
    taken = await dashboard.post("/admin/keys/new", data={"name": "app1", "routes": ["chat"]})
    assert taken.status_code == 422
    assert "an active key is already named &#39;app1&#39;" in (_error(taken.text, "name") or "")
    assert 'name="name" value="app1"' in taken.text
    assert re.search(r'id="field-route-chat" checked', taken.text)

    bad = await dashboard.post("/admin/keys/new", data={"name": "tab\there"})
    assert bad.status_code == 422 and "printable" in (_error(bad.text, "name") or "")
    long = await dashboard.post("/admin/keys/new", data={"name": "x" * 300})
    assert long.status_code == 422 and "characters long" in (_error(long.text, "name") or "")

    unknown = await dashboard.post("/admin/keys/new", data={"name": "app2", "routes": ["nope"]})
    assert unknown.status_code == 422
    assert "no route named &#39;nope&#39;" in (_error(unknown.text, "routes") or "")
    assert re.search(r'id="field-route-nope" checked', unknown.text)  # kept as typed
    assert 'name="name" value="app2"' in unknown.text and _error(unknown.text, "name") is None

    keys = (await dashboard.gateway.admin.get("/keys")).json()["keys"]
    assert [k["name"] for k in keys] == ["app1"]


async def test_writes_need_the_csrf_token_and_the_page_a_session(dashboard: Dashboard) -> None:
    await _create(dashboard, "app1")
    key_id = await _id_of(dashboard, "app1")
    for path in ("/admin/keys/new", f"/admin/keys/{key_id}/rotate", f"/admin/keys/{key_id}/revoke"):
        response = await dashboard.web.post(path, data={"name": "x"})
        assert response.status_code == 403, path
    keys = (await dashboard.gateway.admin.get("/keys")).json()["keys"]
    assert [(k["name"], k["active"], k["rotated_at"]) for k in keys] == [("app1", True, None)]
    async with httpx.AsyncClient(base_url=dashboard.gateway.base, timeout=10) as web:
        response = await web.get("/admin/keys")
        assert response.status_code == 303
        assert response.headers["location"].startswith("/admin/login?next=")


async def test_without_a_database_the_page_says_keys_need_one(serve: Serve) -> None:
    gateway = await serve(url=None)
    web = await sign_in(gateway.base)
    try:
        page = await web.get("/admin/keys")
        assert page.status_code == 200
        assert 'id="keys-need-database"' in page.text and "need the database" in page.text
        assert 'id="key-form"' not in page.text
        headers = {"x-csrftoken": web.cookies["llmgate_csrf"], "hx-request": "true"}
        refused = await web.post("/admin/keys/new", data={"name": "app1"}, headers=headers)
        assert refused.status_code == 409 and 'id="page-notice"' in refused.text
    finally:
        await web.aclose()
