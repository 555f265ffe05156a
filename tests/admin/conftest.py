"""Gateways serving from a real database: an SQLite file, or a PostgreSQL database of
their own (tests/store's ``database_url`` fixture, which skips PostgreSQL with its
reason unless ``LLMGATE_TEST_DATABASE_URL`` is set).

``serve()`` starts the app on 127.0.0.1 under uvicorn in a thread, on a socket bound
beforehand, and returns once its lifespan (seed, load, watch) has run. The ``store``
fixture is another process's view of the same database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from providers import decode_config
from server.app import create_app
from server.store import PolicyStore
from tests.harness import ServedApp
from tests.store.conftest import database_url, engine, store

__all__ = ["database_url", "engine", "store"]  # tests/store's fixtures, used as they are

ADMIN_KEY = "sk-test-admin"
CLIENT_KEY = "sk-test-client"
ENV = {"LLMGATE_MASTER_KEY": CLIENT_KEY, "LLMGATE_ADMIN_KEY": ADMIN_KEY}

# Two mock providers whose answers name them. The poll is an hour: a gateway here
# learns of a change only through its own write, NOTIFY, or POST /admin/api/reload.
CONFIG: dict[str, Any] = {
    "server": {"reload_poll_s": 3600},
    "providers": {
        "old": {"kind": "mock", "text": "old answer"},
        "new": {"kind": "mock", "text": "new answer"},
    },
    "routes": {"chat": {"targets": ["old/a"]}},
}
MESSAGES = [{"role": "user", "content": "hi"}]


class Clients:
    """A client's and an admin's view of one gateway at ``base``."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.AsyncClient(
            base_url=base, headers={"authorization": f"Bearer {CLIENT_KEY}"}, timeout=10
        )
        self.admin = httpx.AsyncClient(
            base_url=f"{base}/admin/api",
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
            timeout=10,
        )

    async def revision(self) -> int:
        """The revision ``/healthz`` says this gateway serves."""
        revision: int = (await self.http.get("/healthz")).json()["revision"]
        return revision

    async def serves_within(self, revision: int, deadline_s: float) -> float:
        """Seconds until ``/healthz`` reports ``revision``; fails after ``deadline_s``."""
        start = time.monotonic()
        while (served := await self.revision()) != revision:
            elapsed = time.monotonic() - start
            assert elapsed < deadline_s, f"still serving {served} after {elapsed:.3f}s"
            await asyncio.sleep(0.005)
        return time.monotonic() - start

    async def answer(self, model: str = "chat") -> tuple[int, str, str]:
        """Status, the target that answered and its text, for one request to ``model``."""
        response = await self.http.post(
            "/v1/chat/completions", json={"model": model, "messages": MESSAGES}
        )
        body = response.json()
        if response.status_code != 200:
            return response.status_code, "", body["error"]["message"]
        target = body["llmgate"]["attempts"][-1]["target"]
        return 200, target, body["choices"][0]["message"]["content"]

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.admin.aclose()


class ServedGateway(Clients):
    """One gateway process, as far as the database is concerned (`tests.harness`)."""

    def __init__(self, config: dict[str, Any], env: dict[str, str], url: str | None) -> None:
        self.app = create_app(decode_config(config, "test-config"), env=env, database_url=url)
        self._served = ServedApp(self.app)
        super().__init__(self._served.url)

    async def ready(self) -> None:
        await self._served.started()

    async def aclose(self) -> None:
        await super().aclose()
        await self._served.astop()


Serve = Callable[..., Awaitable[ServedGateway]]


@pytest.fixture
async def serve(database_url: str, store: PolicyStore) -> AsyncIterator[Serve]:
    """``await serve(config=CONFIG, env=ENV)``: a gateway on the migrated test database
    (``store`` migrated it); ``url=None`` serves the configuration file alone."""
    started: list[ServedGateway] = []

    async def start(
        config: dict[str, Any] = CONFIG, env: dict[str, str] = ENV, url: str | None = database_url
    ) -> ServedGateway:
        gateway = ServedGateway(config, env, url)
        started.append(gateway)
        await gateway.ready()
        return gateway

    yield start
    for gateway in started:
        await gateway.aclose()
