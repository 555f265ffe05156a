"""Signing in to the dashboard: the admin key or password, a hardened session cookie,
CSRF on every write, sign-out; nothing under /admin without it."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import httpx

from providers.config import ServerSettings
from server.cli import first_run_link
from server.dashboard.auth import FIRST_RUN_ENV
from server.store import create_engine, migrate
from server.store.login_links import LINK_TTL, issue_link
from tests.dashboard.conftest import ADMIN_KEY, CLIENT_KEY, ENV, Dashboard, Serve, sign_in
from tests.store.conftest import empty_database


@asynccontextmanager
async def _login(
    base: str, secret: str, next_: str = "/admin"
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.Response]]:
    async with httpx.AsyncClient(base_url=base, timeout=10) as web:
        await web.get("/admin/login")
        response = await web.post(
            "/admin/login",
            data={"secret": secret, "next": next_, "_csrf_token": web.cookies["llmgate_csrf"]},
        )
        yield web, response


async def test_signed_out_pages_redirect_to_sign_in_and_htmx_requests_are_told_to(
    serve: Serve,
) -> None:
    gateway = await serve()
    async with httpx.AsyncClient(base_url=gateway.base, timeout=10) as web:
        page = await web.get("/admin?view=1")
        assert page.status_code == 303
        assert page.headers["location"] == "/admin/login?next=%2Fadmin%3Fview%3D1"
        fragment = await web.get("/admin", headers={"hx-request": "true"})
        assert fragment.status_code == 401
        assert fragment.headers["hx-redirect"].startswith("/admin/login?next=")
        feed = await web.get("/admin/live/requests", headers={"accept": "text/event-stream"})
        assert feed.status_code == 401


async def test_the_admin_key_signs_in_with_an_httponly_strict_session(serve: Serve) -> None:
    gateway = await serve()
    async with _login(gateway.base, ADMIN_KEY, "/admin/requests") as (web, response):
        assert response.status_code == 303 and response.headers["location"] == "/admin/requests"
        cookie = next(
            v
            for k, v in response.headers.multi_items()
            if k == "set-cookie" and v.startswith("llmgate_session=")
        )
        flags = {part.strip().lower() for part in cookie.split(";")}
        assert "httponly" in flags and "samesite=strict" in flags and "path=/admin" in flags
        assert ADMIN_KEY not in cookie  # the session is encrypted, not the key
        assert (await web.get("/admin")).status_code == 200


async def test_wrong_secrets_and_the_client_key_are_refused(serve: Serve) -> None:
    gateway = await serve()
    for secret in ("nope", CLIENT_KEY, ""):
        async with _login(gateway.base, secret) as (web, response):
            assert response.status_code in (400, 401)
            assert (await web.get("/admin", follow_redirects=False)).status_code == 303
    async with _login(gateway.base, "nope") as (web, response):
        assert "not the admin key or password" in response.text


async def test_a_configured_password_signs_in_too(serve: Serve) -> None:
    gateway = await serve(env={**ENV, "LLMGATE_ADMIN_PASSWORD": "correct horse"})
    async with _login(gateway.base, "correct horse") as (web, response):
        assert response.status_code == 303
        assert (await web.get("/admin")).status_code == 200


async def test_without_an_admin_key_or_password_the_dashboard_is_disabled(serve: Serve) -> None:
    gateway = await serve(env={"LLMGATE_MASTER_KEY": CLIENT_KEY})
    async with httpx.AsyncClient(base_url=gateway.base, timeout=10) as web:
        page = await web.get("/admin/login")
        assert "The dashboard is disabled" in page.text and "LLMGATE_ADMIN_KEY" in page.text
    async with _login(gateway.base, CLIENT_KEY) as (web, response):
        assert response.status_code == 401
        assert (await web.get("/admin", follow_redirects=False)).status_code == 303


async def test_sign_in_never_redirects_off_the_dashboard(serve: Serve) -> None:
    gateway = await serve()
    for target in ("https://evil.example/admin", "//evil.example/admin", "/v1/models"):
        async with _login(gateway.base, ADMIN_KEY, target) as (_, response):
            assert response.headers["location"] == "/admin"


async def test_writes_need_the_csrf_token(dashboard: Dashboard) -> None:
    await dashboard.get("/admin")
    refused = await dashboard.web.post("/admin/logout")
    assert refused.status_code == 403
    wrong = await dashboard.web.post("/admin/logout", headers={"x-csrftoken": "forged"})
    assert wrong.status_code == 403
    assert (await dashboard.get("/admin")).status_code == 200  # still signed in


async def test_sign_out_ends_the_session(dashboard: Dashboard) -> None:
    await dashboard.get("/admin")
    out = await dashboard.post("/admin/logout", htmx=False)
    assert out.status_code == 303 and out.headers["location"] == "/admin/login"
    assert (await dashboard.get("/admin", follow_redirects=False)).status_code == 303


async def test_a_tampered_session_cookie_is_not_signed_in(serve: Serve) -> None:
    gateway = await serve()
    web = await sign_in(gateway.base)
    try:
        value = web.cookies["llmgate_session"]
        raw = base64.b64decode(value)
        # one byte changed at a time, from the ciphertext to the plain-text expiry at its
        # end: a bad tag, or an expiry that is no longer JSON
        for i in [*range(1, 40), len(raw) // 2, len(raw) - 1]:
            forged = bytearray(raw)
            forged[-i] ^= 0x01
            web.cookies.set(
                "llmgate_session", base64.b64encode(bytes(forged)).decode(), path="/admin"
            )
            response = await web.get("/admin", follow_redirects=False)
            assert response.status_code == 303, (i, response.status_code)
    finally:
        await web.aclose()


async def test_repeated_failed_sign_ins_are_throttled(serve: Serve) -> None:
    gateway = await serve()
    async with httpx.AsyncClient(base_url=gateway.base, timeout=10) as web:
        await web.get("/admin/login")
        token = web.cookies["llmgate_csrf"]
        statuses = []
        for secret in ["wrong"] * 11 + [ADMIN_KEY]:
            response = await web.post(
                "/admin/login", data={"secret": secret, "next": "/admin", "_csrf_token": token}
            )
            statuses.append(response.status_code)
        assert statuses[:10] == [401] * 10
        assert statuses[10:] == [429, 429]  # even the right key waits out the window
        assert 1 <= int(response.headers["retry-after"]) <= 60


async def test_every_process_on_one_database_accepts_the_same_session(serve: Serve) -> None:
    a, b = await serve(), await serve()
    web = await sign_in(a.base)
    try:
        session = web.cookies["llmgate_session"]
        async with httpx.AsyncClient(base_url=b.base, timeout=10) as other:
            other.cookies.set("llmgate_session", session, path="/admin")
            assert (await other.get("/admin", follow_redirects=False)).status_code == 200
    finally:
        await web.aclose()


async def test_the_cookie_keys_are_random_not_derived_from_the_admin_secrets(
    serve: Serve, tmp_path: Path
) -> None:
    # The same admin key on two separate databases: each has its own random key, so a
    # session from one is worthless on the other, and no cookie anyone can fetch lets
    # them test guesses of the admin key or password offline.
    a = await serve()
    web = await sign_in(a.base)
    try:
        (tmp_path / "other").mkdir()
        async with empty_database("sqlite", tmp_path / "other") as url:
            engine = create_engine(url)
            await migrate(engine)
            await engine.dispose()
            b = await serve(url=url)
            async with httpx.AsyncClient(base_url=b.base, timeout=10) as other:
                other.cookies.set("llmgate_session", web.cookies["llmgate_session"], path="/admin")
                assert (await other.get("/admin", follow_redirects=False)).status_code == 303
    finally:
        await web.aclose()


# --- the first-run link ------------------------------------------------------------------

FIRST_RUN = {"LLMGATE_MASTER_KEY": CLIENT_KEY, FIRST_RUN_ENV: "1"}


async def _link(database_url: str, ttl: timedelta = LINK_TTL) -> str:
    engine = create_engine(database_url)
    try:
        return await issue_link(engine, ttl)
    finally:
        await engine.dispose()


async def test_a_first_run_link_signs_in_once_and_never_again(
    serve: Serve, database_url: str
) -> None:
    gateway = await serve(env=FIRST_RUN)
    token = await _link(database_url)
    async with httpx.AsyncClient(base_url=gateway.base, timeout=10) as web:
        page = await web.get("/admin/login")
        assert 'id="first-run"' in page.text and "llmgate serve" in page.text
        followed = await web.get(f"/admin/login?token={token}")
        assert (followed.status_code, followed.headers["location"]) == (303, "/admin")
        assert (await web.get("/admin")).status_code == 200  # signed in: the overview
    async with httpx.AsyncClient(base_url=gateway.base, timeout=10) as other:
        again = await other.get(f"/admin/login?token={token}")
        assert again.status_code == 401 and "already used or has expired" in again.text
        assert (await other.get("/admin")).status_code == 303  # not signed in


async def test_an_expired_or_unknown_link_is_refused(serve: Serve, database_url: str) -> None:
    gateway = await serve(env=FIRST_RUN)
    expired = await _link(database_url, timedelta(seconds=-1))
    async with httpx.AsyncClient(base_url=gateway.base, timeout=10) as web:
        for token in (expired, "not-a-token"):
            refused = await web.get(f"/admin/login?token={token}")
            assert refused.status_code == 401
        assert (await web.get("/admin")).status_code == 303


async def test_a_link_signs_in_only_on_a_first_run(serve: Serve, database_url: str) -> None:
    gateway = await serve()  # an admin key is set: serve prints no link
    token = await _link(database_url)
    async with httpx.AsyncClient(base_url=gateway.base, timeout=10) as web:
        refused = await web.get(f"/admin/login?token={token}")
        assert refused.status_code == 401 and "only printed on a first run" in refused.text


def test_serve_prints_a_link_only_on_loopback_without_an_admin_secret() -> None:
    settings = ServerSettings()
    assert first_run_link("127.0.0.1", settings, {})
    assert first_run_link("localhost", settings, {"LLMGATE_MASTER_KEY": "sk-client"})
    assert not first_run_link("0.0.0.0", settings, {})  # any other host: credentials only
    assert not first_run_link("127.0.0.1", settings, {"LLMGATE_ADMIN_KEY": "sk-admin"})
    assert not first_run_link("127.0.0.1", settings, {"LLMGATE_ADMIN_PASSWORD": "secret"})


async def test_signing_out_stops_a_copy_of_the_cookie_in_every_process(serve: Serve) -> None:
    first, second = await serve(), await serve()  # two processes, one database
    web = await sign_in(first.base)
    copied = {"llmgate_session": web.cookies["llmgate_session"]}
    async with httpx.AsyncClient(base_url=second.base, cookies=copied, timeout=10) as thief:
        assert (await thief.get("/admin")).status_code == 200  # the session is valid there
        out = await web.post("/admin/logout", headers={"x-csrftoken": web.cookies["llmgate_csrf"]})
        assert out.status_code == 303
        assert (await thief.get("/admin")).status_code == 303  # refused: it was signed out
    async with httpx.AsyncClient(base_url=first.base, cookies=copied, timeout=10) as again:
        assert (await again.get("/admin")).status_code == 303
    await web.aclose()
