"""`PolicyStore`: every write is one validated revision, or nothing at all."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import msgspec
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from providers.mock import MockConfig
from router.errors import ConfigError
from router.policy import RoutePolicy
from server.errors import NotFound
from server.store import PolicyStore, WriteResult
from server.store.models import ConfigState, RevisionRow, RouteRow
from tests.store.conftest import base_config


async def seeded(store: PolicyStore) -> int:
    result = await store.seed_if_empty(base_config())
    assert result.written
    return result.revision


async def test_an_empty_database_is_at_revision_zero_with_nothing_configured(
    store: PolicyStore,
) -> None:
    revision, config = await store.load()
    assert (revision, config.providers, config.routes) == (0, {}, {})
    assert await store.revisions() == []


async def test_seed_if_empty_seeds_once(store: PolicyStore) -> None:
    first = await store.seed_if_empty(base_config(), actor="worker-1")
    second = await store.seed_if_empty(base_config(routes={}), actor="worker-2")
    assert (first.written, first.revision) == (True, 1)
    assert (second.written, second.revision) == (False, 1)
    revision, config = await store.load()
    assert (revision, config) == (1, base_config())
    [info] = await store.revisions()
    assert (info.id, info.actor, info.created_at.utcoffset()) == (1, "worker-1", timedelta(0))
    assert info.summary.startswith("seed: +provider mock")


Write = Callable[[PolicyStore], Awaitable[WriteResult]]
WRITES: dict[str, Write] = {
    "put a new route": lambda s: s.put_route("new", {"targets": ["mock/x"]}, actor="a"),
    "change a route": lambda s: s.put_route(
        "chat", RoutePolicy(targets=["mock/echo"], max_retries=5), actor="a"
    ),
    "delete a route": lambda s: s.delete_route("chat", actor="a"),
    "put a new provider": lambda s: s.put_provider("m2", {"kind": "mock"}, actor="a"),
    "change a provider": lambda s: s.put_provider("mock", MockConfig(tokens=3), actor="a"),
    "delete an unused provider": lambda s: s.delete_provider("spare", actor="a"),
    "apply": lambda s: s.apply(base_config(routes={}), prune=True, actor="a"),
}


@pytest.mark.parametrize("write", WRITES.values(), ids=WRITES.keys())
async def test_every_write_bumps_the_revision_and_records_it(
    store: PolicyStore, write: Write
) -> None:
    before = await seeded(store)
    result = await write(store)
    assert (result.written, result.revision) == (True, before + 1)
    revision, config = await store.load()
    assert (revision, config) == (before + 1, result.config)
    assert [r.id for r in await store.revisions()] == [before + 1, before]
    assert await store.config_at(before + 1) == config


async def test_a_write_that_changes_nothing_writes_no_revision(store: PolicyStore) -> None:
    await seeded(store)
    result = await store.put_route("chat", {"targets": ["mock/echo"]}, actor="a")
    assert (result.written, result.revision, bool(result.diff)) == (False, 1, False)
    assert await store.current_revision() == 1


async def test_dry_run_validates_and_reports_without_writing(store: PolicyStore) -> None:
    await seeded(store)
    result = await store.put_route(
        "chat", {"targets": ["mock/echo"], "max_retries": 4}, actor="a", dry_run=True
    )
    assert (result.written, result.revision) == (False, 1)
    assert result.config.routes["chat"].max_retries == 4
    assert [c.render() for c in result.diff.changes[0].fields] == ["max_retries: 2 -> 4"]
    _, config = await store.load()
    assert config.routes["chat"].max_retries == 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"targets": ["mock/echo"], "max_retries": "two"},
            "config: routes.chat.max_retries: Expected `int`, got `str`",
        ),
        (
            {"targets": ["mock/echo"], "retries": 1},
            "config: routes.chat: Object contains unknown field",
        ),
        ({"targets": ["nope/echo"]}, "config: routes.chat.targets[0]: unknown provider 'nope'"),
        ({"targets": []}, "config: routes.chat.targets: expected at least one target"),
        (
            {"targets": ["mock/echo"], "stream_fallback_mode": "retry"},
            "config: routes.chat.stream_fallback_mode: Invalid enum value 'retry'",
        ),
    ],
    ids=["wrong-type", "unknown-field", "unknown-provider", "no-targets", "bad-mode"],
)
async def test_an_invalid_route_is_refused_with_its_key_path_and_nothing_is_written(
    store: PolicyStore, data: dict[str, Any], message: str
) -> None:
    await seeded(store)
    with pytest.raises(ConfigError) as refused:
        await store.put_route("chat", data, actor="a")
    assert str(refused.value).startswith(message)
    revision, config = await store.load()
    assert (revision, config) == (1, base_config())


async def test_a_route_that_is_not_a_table_is_refused(store: PolicyStore) -> None:
    await seeded(store)
    with pytest.raises(ConfigError, match=r"^config: routes\.chat: Expected `object`, got `array`"):
        await store.put_route("chat", ["mock/echo"], actor="a")  # type: ignore[arg-type]


async def test_an_invalid_provider_is_refused_with_its_key_path(store: PolicyStore) -> None:
    await seeded(store)
    with pytest.raises(ConfigError, match=r"providers\.mock\.kind: Invalid value 'vertex'"):
        await store.put_provider("mock", {"kind": "vertex"}, actor="a")
    assert await store.current_revision() == 1


async def test_deleting_a_provider_a_route_uses_is_refused(store: PolicyStore) -> None:
    await seeded(store)
    with pytest.raises(ConfigError, match=r"routes\.cloud\.targets\[0\]: provider 'openai' is"):
        await store.delete_provider("openai", actor="a")
    assert "openai" in (await store.load())[1].providers


async def test_apply_with_prune_cannot_leave_a_route_without_its_provider(
    store: PolicyStore,
) -> None:
    await seeded(store)
    with pytest.raises(ConfigError, match=r"routes\.cloud\.targets\[0\]: unknown provider"):
        await store.apply(base_config(providers={"mock": {"kind": "mock"}}), prune=False, actor="a")
    assert await store.current_revision() == 1


@pytest.mark.parametrize("kind", ["route", "provider"])
async def test_deleting_what_does_not_exist_is_not_found(store: PolicyStore, kind: str) -> None:
    await seeded(store)
    delete = store.delete_route if kind == "route" else store.delete_provider
    with pytest.raises(NotFound, match=f"no {kind} named 'ghost'"):
        await delete("ghost", actor="a")


async def test_apply_without_prune_keeps_what_the_file_does_not_mention(
    store: PolicyStore,
) -> None:
    await seeded(store)
    incoming = base_config(routes={"extra": {"targets": ["mock/x"]}})
    result = await store.apply(incoming, prune=False, actor="a")
    assert sorted(result.config.routes) == ["chat", "cloud", "extra"]
    assert result.diff.summary() == "+route extra"
    pruned = await store.apply(incoming, prune=True, actor="a")
    assert sorted(pruned.config.routes) == ["extra"]
    assert pruned.diff.summary() == "-route chat, -route cloud"


async def test_rollback_restores_an_earlier_snapshot_as_a_new_revision(
    store: PolicyStore,
) -> None:
    await seeded(store)
    await store.put_route("chat", {"targets": ["mock/echo"], "max_retries": 7}, actor="a")
    await store.delete_route("cloud", actor="a")
    result = await store.rollback(1, actor="admin")
    assert (result.written, result.revision) == (True, 4)
    revision, config = await store.load()
    assert (revision, config) == (4, base_config())
    newest = (await store.revisions(limit=1))[0]
    assert (newest.actor, newest.summary) == (
        "admin",
        "rollback to revision 1: ~route chat, +route cloud",
    )


async def test_rollback_to_an_unknown_revision_is_not_found(store: PolicyStore) -> None:
    with pytest.raises(NotFound, match="no revision 9"):
        await store.rollback(9, actor="a")


async def test_defaults_are_stored_and_changed_like_routes(store: PolicyStore) -> None:
    await seeded(store)
    result = await store.apply(base_config(defaults={"max_retries": 0}), prune=False, actor="a")
    assert result.diff.summary() == "~defaults"
    assert (await store.load())[1].defaults.max_retries == 0


async def test_load_validates_the_rows_instead_of_trusting_them(
    store: PolicyStore, engine: AsyncEngine
) -> None:
    await seeded(store)
    async with engine.begin() as conn:
        await conn.execute(
            update(RouteRow).where(RouteRow.name == "chat").values(policy={"targets": "oops"})
        )
    with pytest.raises(ConfigError, match=r"^database: routes\.chat\.targets: Expected `array`"):
        await store.load()


async def test_rows_and_snapshots_hold_the_canonical_struct_json(
    store: PolicyStore, engine: AsyncEngine
) -> None:
    await seeded(store)
    policy = {"targets": ["mock/echo"], "fallback_on": ["timeout", "rate_limited"]}
    await store.put_route("chat", policy, actor="a")
    async with engine.connect() as conn:
        row = (await conn.execute(select(RouteRow.policy).where(RouteRow.name == "chat"))).one()
        snap = (await conn.execute(select(RevisionRow.snapshot).where(RevisionRow.id == 2))).one()
        state = (await conn.execute(select(ConfigState.revision))).one()
    expected = msgspec.to_builtins(msgspec.convert(policy, RoutePolicy), order="deterministic")
    assert row.policy == expected
    assert row.policy["fallback_on"] == ["rate_limited", "timeout"]
    assert snap.snapshot["routes"]["chat"] == expected
    assert state.revision == 2
