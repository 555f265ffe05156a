"""The admin API against a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from server.store import PolicyStore
from server.store.models import ConfigState, RouteRow
from tests.admin.conftest import ADMIN_KEY, CLIENT_KEY, CONFIG, ENV, Serve

ROUTE = {"targets": ["new/b"], "max_retries": 1}


async def test_only_the_admin_key_opens_the_admin_api_and_a_client_key_is_refused(
    serve: Serve,
) -> None:
    gw = await serve()
    async with httpx.AsyncClient(base_url=f"{gw.base}/admin/api") as anonymous:
        for headers, says in [
            ({}, "You didn't provide the admin key"),
            ({"authorization": f"Bearer {CLIENT_KEY}"}, "That is a client key"),
            ({"authorization": "Bearer sk-wrong"}, "Incorrect admin key"),
            ({"authorization": f"Basic {ADMIN_KEY}"}, "You didn't provide the admin key"),
        ]:
            for response in (
                await anonymous.get("/routes", headers=headers),
                await anonymous.put("/routes/chat", headers=headers, json=ROUTE),
                await anonymous.post("/reload", headers=headers),
            ):
                assert response.status_code == 401
                error = response.json()["error"]
                assert says in error["message"] and error["code"] == "invalid_admin_key"
    assert (await gw.admin.get("/routes")).status_code == 200
    assert await gw.revision() == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"LLMGATE_MASTER_KEY": CLIENT_KEY}, "LLMGATE_ADMIN_KEY is not set"),
        (
            {"LLMGATE_MASTER_KEY": CLIENT_KEY, "LLMGATE_ADMIN_KEY": CLIENT_KEY},
            "LLMGATE_ADMIN_KEY must differ from the client key",
        ),
    ],
    ids=["unset", "same-as-client-key"],
)
async def test_without_a_distinct_admin_key_the_admin_api_is_disabled(
    serve: Serve, env: dict[str, str], says: str
) -> None:
    gw = await serve(env=env)
    response = await gw.admin.get("/routes", headers={"authorization": f"Bearer {CLIENT_KEY}"})
    assert response.status_code == 403
    assert says in response.json()["error"]["message"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_admin_key_env_names_the_variable_holding_the_admin_key(serve: Serve) -> None:
    config = {**CONFIG, "server": {"admin_key_env": "TEAM_ADMIN_KEY"}}
    gw = await serve(config=config, env={**ENV, "TEAM_ADMIN_KEY": "sk-team"})
    refused = await gw.admin.get("/routes")  # sends $LLMGATE_ADMIN_KEY, no longer the key
    assert refused.status_code == 401
    response = await gw.admin.get("/routes", headers={"authorization": "Bearer sk-team"})
    assert response.status_code == 200


async def test_a_route_put_through_the_api_is_served_by_this_process_at_once(
    serve: Serve,
) -> None:
    gw = await serve()
    response = await gw.admin.put("/routes/fresh", json=ROUTE)
    assert response.status_code == 200
    result = response.json()
    assert (result["revision"], result["written"], result["summary"]) == (2, True, "+route fresh")
    assert result["route"]["targets"] == ["new/b"] and result["route"]["max_retries"] == 1
    assert await gw.revision() == 2
    assert await gw.answer("fresh") == (200, "new/b", "new answer")

    got = await gw.admin.get("/routes/fresh")
    assert got.headers["etag"] == '"2"'
    assert {k: got.json()[k] for k in ROUTE} == ROUTE
    listed = (await gw.admin.get("/routes")).json()
    assert listed["revision"] == 2 and set(listed["routes"]) == {"chat", "fresh"}

    deleted = await gw.admin.delete("/routes/fresh")
    assert deleted.status_code == 200 and deleted.json()["summary"] == "-route fresh"
    assert (await gw.admin.get("/routes/fresh")).status_code == 404
    status, _, message = await gw.answer("fresh")
    assert status == 404 and "'fresh' does not exist" in message
    assert (await gw.admin.delete("/routes/fresh")).status_code == 404


async def test_providers_are_edited_and_listed_and_no_key_is_ever_returned(
    serve: Serve,
) -> None:
    gw = await serve(env={**ENV, "TEAM_OPENAI_KEY": "sk-upstream-secret"})
    provider = {
        "kind": "openai",
        "base_url": "http://127.0.0.1:9/v1",
        "api_key_env": "TEAM_OPENAI_KEY",
    }
    assert (await gw.admin.put("/providers/team", json=provider)).status_code == 200
    assert (await gw.admin.put("/routes/team", json={"targets": ["team/gpt-x"]})).status_code == 200

    got = await gw.admin.get("/providers/team")
    listed = await gw.admin.get("/providers")
    assert got.json()["api_key_env"] == "TEAM_OPENAI_KEY"
    assert set(listed.json()["providers"]) == {"new", "old", "team"}
    for response in (got, listed):
        assert "sk-upstream-secret" not in response.text

    in_use = await gw.admin.delete("/providers/team")
    assert in_use.status_code == 422
    assert in_use.json()["error"]["param"] == "routes.team.targets[0]"
    assert "still used by route 'team'" in in_use.json()["error"]["message"]
    assert (await gw.admin.delete("/routes/team")).status_code == 200
    assert (await gw.admin.delete("/providers/team")).status_code == 200
    assert (await gw.admin.get("/providers/team")).status_code == 404


async def test_a_dry_run_shows_the_changes_and_saves_nothing(serve: Serve) -> None:
    gw = await serve()
    response = await gw.admin.put("/routes/chat", params={"dry_run": "1"}, json=ROUTE)
    assert response.status_code == 200
    result = response.json()
    assert (result["revision"], result["written"], result["dry_run"]) == (1, False, True)
    [change] = result["changes"]
    assert (change["name"], change["action"]) == ("chat", "change")
    assert {"path": "targets", "old": ["old/a"], "new": ["new/b"]} in change["fields"]

    assert (await gw.admin.get("/routes/chat")).json()["targets"] == ["old/a"]
    assert len((await gw.admin.get("/revisions")).json()["revisions"]) == 1
    assert await gw.revision() == 1
    assert (await gw.answer())[1] == "old/a"


INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    # (path, body, the key path named, what the message says)
    ("/routes/chat", {"targets": ["old/a"], "max_retries": "two"}, "routes.chat.max_retries", "Expected `int`, got `str`"),
    ("/routes/chat", {"targets": ["gone/a"]}, "routes.chat.targets[0]", "unknown provider 'gone'"),
    ("/routes/chat", {"targets": ["old/a"], "retries": 2}, "routes.chat", "unknown field `retries`"),
    ("/routes/chat", {"targets": ["old/a"], "stream_fallback_mode": "retry"}, "routes.chat.stream_fallback_mode", "expected one of prefill, restart, terminate, user_turn"),
    ("/routes/chat", {"targets": []}, "routes.chat.targets", "expected at least one target"),
    ("/routes/chat", {"targets": ["old"]}, "routes.chat.targets[0]", "Expected `str` matching regex"),
    ("/routes/chat", {"targets": [{"pool": ["old/a", "new/b"], "weights": [1]}]}, "routes.chat.targets[0]", "expected one weight per pool member (2), got 1"),
    ("/routes/chat", {"targets": [{"pool": ["old/a", "new/b"], "balance": "fastest"}]}, "routes.chat.targets[0].balance", "Invalid enum value 'fastest'"),
    ("/routes/chat", {"targets": [{"pool": ["old/a", "gone/b"]}]}, "routes.chat.targets[0].pool[1]", "unknown provider 'gone'"),
    ("/providers/old", {"kind": "vertex"}, "providers.old.kind", "expected one of openai"),
    ("/providers/old", {"kind": "mock", "tokens": 0}, "providers.old.tokens", "Expected `int` >= 1"),
    ("/providers/old", {"kind": "openai", "base_url": "http://[::1"}, "providers.old", "Invalid port"),
]  # fmt: skip


async def test_an_invalid_policy_is_refused_with_its_key_path_and_never_served(
    serve: Serve,
) -> None:
    gw = await serve()
    for path, body, param, says in INVALID:
        for params in ({}, {"dry_run": "1"}):
            response = await gw.admin.put(path, params=params, json=body)
            assert response.status_code == 422, (path, body)
            error = response.json()["error"]
            assert (error["param"], error["code"]) == (param, "invalid_config"), (body, error)
            assert error["message"].startswith(f"{param}: "), error
            assert says in error["message"], error
    assert await gw.revision() == 1
    assert await gw.answer() == (200, "old/a", "old answer")
    assert len((await gw.admin.get("/revisions")).json()["revisions"]) == 1


async def test_a_body_that_is_not_a_json_object_is_refused(serve: Serve) -> None:
    gw = await serve()
    for content, says in [(b"{nope", "not valid JSON"), (b"[1]", "must be a JSON object")]:
        response = await gw.admin.put("/routes/chat", content=content)
        assert response.status_code == 400 and says in response.json()["error"]["message"]


async def test_a_write_from_a_stale_revision_is_a_conflict(serve: Serve) -> None:
    gw = await serve()
    etag = (await gw.admin.get("/routes/chat")).headers["etag"]
    first = await gw.admin.put("/routes/chat", headers={"if-match": etag}, json=ROUTE)
    assert first.status_code == 200 and first.json()["revision"] == 2

    late = {"targets": ["old/a"], "max_retries": 5}
    for kwargs in ({"headers": {"if-match": etag}}, {"params": {"expected_revision": "1"}}):
        conflict = await gw.admin.put("/routes/chat", json=late, **kwargs)  # type: ignore[arg-type]
        assert conflict.status_code == 409
        error = conflict.json()["error"]
        assert error["code"] == "revision_conflict"
        assert "at revision 2, not 1 as expected: someone else changed it" in error["message"]
    assert (await gw.admin.get("/routes/chat")).json()["max_retries"] == 1
    assert (await gw.answer())[1] == "new/b"

    retried = await gw.admin.put("/routes/chat", headers={"if-match": '"2"'}, json=late)
    assert retried.status_code == 200 and retried.headers["etag"] == '"3"'
    bad = await gw.admin.put("/routes/chat", headers={"if-match": "latest"}, json=late)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "If-Match"


async def test_revisions_say_who_changed_what_and_a_rollback_is_served_at_once(
    serve: Serve,
) -> None:
    gw = await serve()
    await gw.admin.put("/routes/chat", headers={"x-llmgate-actor": "alice"}, json=ROUTE)
    await gw.admin.delete("/providers/old")  # refused: still used? no: chat moved off it
    revisions = (await gw.admin.get("/revisions")).json()["revisions"]
    assert [(r["id"], r["actor"], r["summary"]) for r in revisions] == [
        (3, "admin key", "delete provider old: -provider old"),
        (2, "admin key (claims alice)", "put route chat: ~route chat"),  # a claim, not proof
        (1, "seed", "seed: +provider new, +provider old, +route chat"),
    ]
    assert all(r["created_at"].endswith("Z") for r in revisions)
    assert [
        r["id"] for r in (await gw.admin.get("/revisions", params={"limit": 1})).json()["revisions"]
    ] == [3]

    first = (await gw.admin.get("/revisions/1")).json()["config"]
    assert first["routes"]["chat"]["targets"] == ["old/a"] and "old" in first["providers"]

    preview = await gw.admin.post("/revisions/1/rollback", params={"dry_run": "1"})
    assert preview.json()["written"] is False
    assert preview.json()["summary"] == "+provider old, ~route chat"
    assert await gw.revision() == 3

    rolled = await gw.admin.post("/revisions/1/rollback")
    assert rolled.status_code == 200
    assert (rolled.json()["revision"], rolled.json()["written"]) == (4, True)
    assert await gw.revision() == 4
    assert await gw.answer() == (200, "old/a", "old answer")
    assert (
        (await gw.admin.get("/revisions"))
        .json()["revisions"][0]["summary"]
        .startswith("rollback to revision 1: ")
    )
    assert (await gw.admin.post("/revisions/99/rollback")).status_code == 404


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no NOTIFY to race with
async def test_reload_serves_a_revision_another_process_wrote(
    serve: Serve, store: PolicyStore
) -> None:
    gw = await serve()
    await store.put_route("chat", ROUTE, actor="elsewhere")
    assert await gw.revision() == 1  # an hour's poll, no NOTIFY on SQLite: nothing told it

    response = await gw.admin.post("/reload")
    assert response.status_code == 200 and response.json() == {"revision": 2}
    assert await gw.revision() == 2
    assert (await gw.answer())[1] == "new/b"


async def test_a_stored_revision_that_is_invalid_is_refused_and_the_old_table_kept(
    serve: Serve, engine: AsyncEngine
) -> None:
    gw = await serve()
    async with engine.begin() as conn:  # a hand edit behind the store's back
        bad = {"targets": ["old/a"], "max_retries": "two"}
        await conn.execute(update(RouteRow).where(RouteRow.name == "chat").values(policy=bad))
        await conn.execute(update(ConfigState).values(revision=2))

    response = await gw.admin.post("/reload")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["param"] == "routes.chat.max_retries"
    assert error["message"] == "database: routes.chat.max_retries: Expected `int`, got `str`"
    assert await gw.revision() == 1
    assert await gw.answer() == (200, "old/a", "old answer")
    async with engine.connect() as conn:  # the test really did break the stored row
        assert (await conn.execute(text("SELECT revision FROM config_state"))).scalar_one() == 2


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_gateway_without_a_database_serves_its_file_and_has_no_admin_api(
    serve: Serve,
) -> None:
    gw = await serve(url=None)
    assert await gw.revision() == 0
    assert await gw.answer() == (200, "old/a", "old answer")
    response = await gw.admin.get("/routes")
    assert response.status_code == 503
    assert "serves its configuration file" in response.json()["error"]["message"]
