"""Concurrent writers: optimistic concurrency on the revision, and no lost update.

Separate engines stand for separate gateway processes (or admins) on one database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from server.errors import ConflictError
from server.store import NOTIFY_CHANNEL, PolicyStore, WriteResult, create_engine
from tests.store.conftest import base_config

WRITERS = 5


@pytest.fixture
async def stores(database_url: str, store: PolicyStore) -> AsyncIterator[list[PolicyStore]]:
    """A seeded database (revision 1) and one store per writer, each with its own engine."""
    await store.seed_if_empty(base_config())
    engines = [create_engine(database_url) for _ in range(WRITERS)]
    try:
        yield [PolicyStore(e) for e in engines]
    finally:
        for engine in engines:
            await engine.dispose()


async def test_the_second_writer_from_the_same_revision_gets_a_conflict(
    store: PolicyStore,
) -> None:
    await store.seed_if_empty(base_config())
    await store.put_route(
        "chat", {"targets": ["mock/echo"], "max_retries": 3}, actor="alice", expected_revision=1
    )
    with pytest.raises(ConflictError) as conflict:
        await store.put_route(
            "chat", {"targets": ["mock/echo"], "max_retries": 4}, actor="bob", expected_revision=1
        )
    assert (conflict.value.expected, conflict.value.current, conflict.value.status) == (1, 2, 409)
    assert "revision 2, not 1" in str(conflict.value)
    revision, config = await store.load()
    assert (revision, config.routes["chat"].max_retries) == (2, 3)


async def test_racing_writers_with_the_same_expected_revision_one_wins_the_rest_conflict(
    store: PolicyStore, stores: list[PolicyStore]
) -> None:
    results = await asyncio.gather(
        *(
            s.put_route(
                "chat",
                {"targets": ["mock/echo"], "max_retries": i},  # each differs from the seed's 2
                actor=f"admin-{i}",
                expected_revision=1,
            )
            for i, s in enumerate(stores, start=3)
        ),
        return_exceptions=True,
    )
    [winner] = [r for r in results if isinstance(r, WriteResult)]
    assert winner.written
    conflicts = [r for r in results if isinstance(r, ConflictError)]
    assert len(conflicts) == WRITERS - 1
    revision, config = await store.load()
    assert (revision, config) == (2, winner.config)


async def test_racing_writers_without_expected_revision_are_serialised_and_lose_nothing(
    store: PolicyStore, stores: list[PolicyStore]
) -> None:
    results = await asyncio.gather(
        *(s.put_route(f"r{i}", {"targets": ["mock/x"]}, actor="a") for i, s in enumerate(stores))
    )
    assert sorted(r.revision for r in results) == list(range(2, WRITERS + 2))
    revision, config = await store.load()
    assert revision == WRITERS + 1
    assert {f"r{i}" for i in range(WRITERS)} <= config.routes.keys()


async def test_racing_seeders_seed_exactly_once(stores: list[PolicyStore]) -> None:
    # `stores` seeded revision 1 already; every later seed must be a no-op.
    results = await asyncio.gather(*(s.seed_if_empty(base_config(routes={})) for s in stores))
    assert [r.written for r in results] == [False] * WRITERS
    assert {r.revision for r in results} == {1}


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_every_revision_is_notified_on_postgresql_and_nothing_else(
    engine: AsyncEngine, store: PolicyStore
) -> None:
    received: asyncio.Queue[str] = asyncio.Queue()
    async with engine.connect() as conn:
        listener = (await conn.get_raw_connection()).driver_connection
        assert listener is not None

        def on_notify(_conn: object, _pid: int, channel: str, payload: str) -> None:
            assert channel == NOTIFY_CHANNEL
            received.put_nowait(payload)

        await listener.add_listener(NOTIFY_CHANNEL, on_notify)
        try:
            await store.seed_if_empty(base_config())
            await store.put_route("chat", {"targets": ["mock/echo"]}, actor="a")  # no change
            await store.put_route("chat", {"targets": ["mock/a"]}, actor="a", dry_run=True)
            with pytest.raises(ConflictError):
                await store.delete_route("chat", actor="a", expected_revision=0)
            await store.delete_route("chat", actor="a")
            first = await asyncio.wait_for(received.get(), 5)
            second = await asyncio.wait_for(received.get(), 5)
        finally:
            await listener.remove_listener(NOTIFY_CHANNEL, on_notify)
    assert (first, second) == ("1", "2")
    assert received.empty()
