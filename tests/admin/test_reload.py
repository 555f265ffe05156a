"""Hot reload inside a gateway: what another process writes reaches it within a second
(NOTIFY on PostgreSQL, the revision poll on SQLite), and the database stays the source
of truth once seeded."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from server.store import PolicyStore
from tests.admin.conftest import CONFIG, Serve
from tests.eventually import eventually_async

ROUTE = {"targets": ["new/b"]}
LISTENER = (
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN %'"
)


async def test_a_write_by_another_process_is_served_within_a_second(
    serve: Serve, store: PolicyStore, database_url: str
) -> None:
    # PostgreSQL: an hour's poll, so only NOTIFY can be this fast. SQLite: only the poll.
    poll = 0.1 if database_url.startswith("sqlite") else 3600
    gw = await serve(config={**CONFIG, "server": {"reload_poll_s": poll}})
    result = await store.put_route("chat", ROUTE, actor="elsewhere")
    await gw.serves_within(result.revision, 1.0)
    assert (await gw.answer())[1] == "new/b"


async def test_the_file_seeds_only_an_empty_database(serve: Serve) -> None:
    first = await serve()
    assert (await first.admin.put("/routes/chat", json=ROUTE)).status_code == 200
    other_file = {**CONFIG, "routes": {"chat": {"targets": ["old/z"]}, "extra": ROUTE}}
    second = await serve(config=other_file)
    assert await second.revision() == 2
    assert await second.answer() == (200, "new/b", "new answer")
    assert (await second.answer("extra"))[0] == 404


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_listen_reopens_its_connection_when_the_database_drops_it(
    serve: Serve, store: PolicyStore, engine: AsyncEngine
) -> None:
    gw = await serve()  # an hour's poll: only NOTIFY can deliver the change below
    listener = await _listener(engine)
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": listener})
    await _listener(engine, other_than=listener)

    result = await store.put_route("chat", ROUTE, actor="elsewhere")
    await gw.serves_within(result.revision, 1.0)
    assert (await gw.answer())[1] == "new/b"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_serving_goes_on_when_the_database_drops_every_connection(
    serve: Serve, store: PolicyStore, engine: AsyncEngine
) -> None:
    gw = await serve(config={**CONFIG, "server": {"reload_poll_s": 0.05}})
    async with engine.connect() as conn:
        await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    assert await gw.answer() == (200, "old/a", "old answer")
    assert (await gw.admin.put("/routes/chat", json=ROUTE)).json()["revision"] == 2
    result = await store.put_route("chat", {"targets": ["old/c"]}, actor="elsewhere")
    await gw.serves_within(result.revision, 1.0)
    assert (await gw.answer())[1] == "old/c"


async def _listener(engine: AsyncEngine, other_than: int | None = None) -> int:
    """The backend of the gateway's LISTEN connection, once there is one."""

    async def listening() -> list[int]:
        async with engine.connect() as conn:
            rows = (await conn.execute(text(LISTENER))).scalars()
            return [int(pid) for pid in rows if pid != other_than]

    [pid] = await eventually_async(listening, "the gateway's LISTEN connection", within_s=5)
    return pid


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_circuit_breakers_survive_a_reload(serve: Serve) -> None:
    config = {
        **CONFIG,
        "providers": {**CONFIG["providers"], "down": {"kind": "mock", "fail_status": 503}},
        "routes": {
            **CONFIG["routes"],
            "fragile": {
                "targets": ["down/x"],
                "max_retries": 0,
                "breaker": {"failure_threshold": 1},
            },
        },
    }
    gw = await serve(config=config)
    assert (await gw.answer("fragile"))[0] == 502
    before = (await gw.http.get("/healthz")).json()["breakers"]
    assert before["down/x"] == "open"

    assert (await gw.admin.put("/routes/chat", json=ROUTE)).json()["revision"] == 2
    after = (await gw.http.get("/healthz")).json()
    assert (after["revision"], after["breakers"]) == (2, before)
