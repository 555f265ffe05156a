"""The dashboard served for real (uvicorn on 127.0.0.1, a migrated database), and an
admin's browser-like HTTP client signed in to it.

``dashboard`` is a `Dashboard`: the gateway (``.gateway``, with its client and admin API
clients) and ``.web``, an httpx client holding the session and CSRF cookies, which sends
the CSRF token with every write as htmx does (header ``x-csrftoken``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.admin.conftest import (
    ADMIN_KEY,
    CLIENT_KEY,
    CONFIG,
    ENV,
    MESSAGES,
    Serve,
    ServedGateway,
    engine,
    serve,
    store,
)
from tests.store.conftest import empty_database

__all__ = [
    "ADMIN_KEY",
    "CLIENT_KEY",
    "CONFIG",
    "ENV",
    "MESSAGES",
    "Dashboard",
    "database_url",
    "engine",
    "serve",
    "sign_in",
    "store",
]


class Dashboard:
    def __init__(self, gateway: ServedGateway, web: httpx.AsyncClient) -> None:
        self.gateway = gateway
        self.web = web

    @property
    def csrf(self) -> str:
        token = self.web.cookies.get("llmgate_csrf")
        assert token, "no CSRF cookie: GET a page first"
        return token

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.web.get(path, **kwargs)

    async def post(self, path: str, *, htmx: bool = True, **kwargs: Any) -> httpx.Response:
        """A form post as htmx sends it: the CSRF header, and ``HX-Request`` unless
        ``htmx=False`` (a plain form submit)."""
        headers = {"x-csrftoken": self.csrf, **kwargs.pop("headers", {})}
        if htmx:
            headers["hx-request"] = "true"
        return await self.web.post(path, headers=headers, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"x-csrftoken": self.csrf, "hx-request": "true"}
        return await self.web.delete(path, headers=headers, **kwargs)


async def sign_in(base: str, secret: str = ADMIN_KEY) -> httpx.AsyncClient:
    """A client signed in to the dashboard at ``base`` with ``secret``."""
    web = httpx.AsyncClient(base_url=base, timeout=10)
    await web.get("/admin/login")
    response = await web.post(
        "/admin/login",
        data={"secret": secret, "next": "/admin", "_csrf_token": web.cookies["llmgate_csrf"]},
    )
    assert response.status_code == 303, response.text
    return web


@pytest.fixture(params=["sqlite"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """SQLite unless a test asks for more: the pages do not depend on the backend, and a
    test of a query that does parametrizes it,
    ``@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)``."""
    async with empty_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
async def dashboard(serve: Serve) -> AsyncIterator[Dashboard]:
    """A signed-in dashboard on a gateway serving the ``CONFIG`` routes from a database."""
    gateway = await serve()
    web = await sign_in(gateway.base)
    yield Dashboard(gateway, web)
    await web.aclose()
