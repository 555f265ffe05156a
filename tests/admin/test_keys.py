"""Virtual API keys: created once with their secret, stored as a hash, limited to routes,
rotated and revoked, and honoured by every gateway process within a second."""

from __future__ import annotations

import asyncio
import hashlib
import time

import httpx
import pytest
import sqlalchemy as sa

from router.errors import ConfigError
from server.errors import KeyNameTaken, NotFound
from server.store import PolicyStore
from server.store.keys import KeyStore
from server.store.models import ApiKeyRow
from tests.admin.conftest import ADMIN_KEY, CLIENT_KEY, CONFIG, MESSAGES, Serve, ServedGateway
from tests.eventually import eventually_async
from tests.store.conftest import base_config
from tests.store.test_cli import llmgate

CHAT = {"model": "chat", "messages": MESSAGES}


async def _seeded(store: PolicyStore) -> KeyStore:
    await store.seed_if_empty(base_config())
    return KeyStore(store.engine)


def _as(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


async def test_a_secret_is_shown_once_and_stored_only_as_its_hash(store: PolicyStore) -> None:
    keys = await _seeded(store)
    created = await keys.create("app1", ["chat"])

    assert created.secret.startswith("sk-lg-") and len(created.secret) > 40
    async with store.engine.connect() as conn:
        (row,) = (await conn.execute(sa.select(ApiKeyRow))).all()
    assert created.secret not in repr(tuple(row))
    assert row.secret_hash == hashlib.sha256(created.secret.encode()).hexdigest()
    listed = await keys.list()
    assert [(k.name, k.routes, k.active) for k in listed] == [("app1", ("chat",), True)]
    assert not hasattr(listed[0], "secret")
    ring = await keys.ring()
    assert ring.find(created.secret) == listed[0] and ring.find("sk-lg-nope") is None


async def test_rotate_and_revoke_change_what_the_ring_accepts(store: PolicyStore) -> None:
    keys = await _seeded(store)
    first = await keys.create("app1")
    version = await keys.version()

    rotated = await keys.rotate("app1")
    ring = await keys.ring()
    assert ring.version > version
    assert ring.find(first.secret) is None and ring.find(rotated.secret) is not None
    assert rotated.key.id == first.key.id

    revoked = await keys.revoke(first.key.id)
    assert not revoked.active
    assert (await keys.ring()).find(rotated.secret) is None
    with pytest.raises(NotFound):
        await keys.rotate(first.key.id)
    again = await keys.create("app1")  # the name is free once revoked
    assert again.key.id != first.key.id


async def test_names_and_routes_are_checked(store: PolicyStore) -> None:
    keys = await _seeded(store)
    await keys.create("app1")
    with pytest.raises(KeyNameTaken):
        await keys.create("app1")
    with pytest.raises(ConfigError, match="no route named 'nope'"):
        await keys.create("app2", ["chat", "nope"])
    with pytest.raises(ConfigError, match="printable"):
        await keys.create("bad\nname")
    with pytest.raises(NotFound):
        await keys.revoke("nobody")


async def test_concurrent_creators_of_one_name_get_one_key(store: PolicyStore) -> None:
    keys = await _seeded(store)
    results = await asyncio.gather(*(keys.create("same") for _ in range(5)), return_exceptions=True)
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, KeyNameTaken) for r in results if isinstance(r, BaseException))


async def test_a_key_limited_to_routes_uses_only_those(serve: Serve) -> None:
    config = {**CONFIG, "routes": {"chat": {"targets": ["old/a"]}, "other": {"targets": ["new/a"]}}}
    gateway = await serve(config=config)
    created = await gateway.admin.post("/keys", json={"name": "app1", "routes": ["chat"]})
    assert created.status_code == 201
    secret = created.json()["secret"]

    ok = await gateway.http.post("/v1/chat/completions", json=CHAT, headers=_as(secret))
    assert ok.status_code == 200
    for model in ("other", "new/a"):
        refused = await gateway.http.post(
            "/v1/chat/completions", json={**CHAT, "model": model}, headers=_as(secret)
        )
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "route_not_allowed"
    models = await gateway.http.get("/v1/models", headers=_as(secret))
    assert [m["id"] for m in models.json()["data"]] == ["chat"]
    # a model is found by its id only if the key may use it, as in the list
    assert (await gateway.http.get("/v1/models/chat", headers=_as(secret))).status_code == 200
    for model in ("other", "new/a"):
        hidden = await gateway.http.get(f"/v1/models/{model}", headers=_as(secret))
        assert hidden.status_code == 404
        assert hidden.json()["error"]["code"] == "model_not_found"
    # the master key still uses everything; an unknown key nothing
    assert (
        await gateway.http.post("/v1/chat/completions", json={**CHAT, "model": "other"})
    ).status_code == 200
    bad = await gateway.http.post("/v1/chat/completions", json=CHAT, headers=_as("sk-lg-unknown"))
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_api_key"
    listed = (await gateway.admin.get("/keys")).json()["keys"]
    assert secret not in str(listed) and listed[0]["name"] == "app1"


async def test_the_admin_api_needs_the_admin_key_for_keys(serve: Serve) -> None:
    gateway = await serve()
    async with httpx.AsyncClient(base_url=gateway.base, timeout=10) as web:
        as_client = await web.post("/admin/api/keys", json={"name": "x"}, headers=_as(CLIENT_KEY))
        assert as_client.status_code == 401
        assert (await web.get("/admin/api/keys", headers=_as(ADMIN_KEY))).status_code == 200
    invalid = await gateway.admin.post("/keys", json={"name": "x", "routes": ["nope"]})
    assert invalid.status_code == 422 and invalid.json()["error"]["param"] == "routes"
    assert (await gateway.admin.post("/keys", json={"nom": "x"})).status_code == 400


async def _refused_within(gateway: ServedGateway, secret: str, deadline_s: float) -> float:
    start = time.monotonic()
    while True:
        response = await gateway.http.post("/v1/chat/completions", json=CHAT, headers=_as(secret))
        if response.status_code == 401:
            return time.monotonic() - start
        assert response.status_code == 200
        assert time.monotonic() - start < deadline_s, "the key still works"
        await asyncio.sleep(0.01)


async def test_a_revoked_key_stops_working_on_every_process_within_a_second(
    serve: Serve, database_url: str
) -> None:
    # PostgreSQL: only NOTIFY could tell the other process (its poll is an hour);
    # SQLite: the poll, every 0.5 s.
    poll = 3600 if database_url.startswith("postgresql") else 0.5
    config = {**CONFIG, "server": {"reload_poll_s": poll}}
    a, b = await serve(config=config), await serve(config=config)
    created = (await a.admin.post("/keys", json={"name": "app1"})).json()
    secret = created["secret"]

    async def works_on_b() -> bool:
        r = await b.http.post("/v1/chat/completions", json=CHAT, headers=_as(secret))
        return r.status_code == 200

    await eventually_async(works_on_b, "the new key to reach the other process", within_s=1.0)

    assert (await a.admin.post(f"/keys/{created['id']}/revoke")).status_code == 200
    assert await _refused_within(a, secret, 0.001 + 1.0) < 0.05  # the writer: at once
    assert await _refused_within(b, secret, 1.0) < 1.0


def test_the_cli_creates_lists_rotates_and_revokes_keys(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    url = f"sqlite:///{folder / 'keys.db'}"
    (folder / "config.toml").write_text(
        '[providers.mock]\nkind = "mock"\n[routes.chat]\ntargets = ["mock/a"]\n'
        '[routes.summarise]\ntargets = ["mock/b"]\n'
    )
    assert llmgate("db", "upgrade", "--database-url", url).returncode == 0
    assert (
        llmgate("config", "apply", str(folder / "config.toml"), "--database-url", url).returncode
        == 0
    )

    created = llmgate(
        "keys", "create", "--name", "app1", "--routes", "chat,summarise", "--database-url", url
    )
    assert created.returncode == 0, created.stderr
    line, secret = created.stdout.strip().splitlines()
    assert secret.startswith("sk-lg-") and "routes=chat,summarise" in line
    listed = llmgate("keys", "list", "--database-url", url)
    assert "app1" in listed.stdout and secret not in listed.stdout
    rotated = llmgate("keys", "rotate", "app1", "--database-url", url)
    assert rotated.returncode == 0 and rotated.stdout.strip().splitlines()[-1] != secret
    revoked = llmgate("keys", "revoke", "app1", "--database-url", url)
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    missing = llmgate("keys", "revoke", "app1", "--database-url", url)
    assert missing.returncode == 2 and "no key" in missing.stderr
    typo = llmgate("keys", "create", "--name", "x", "--routes", "chta", "--database-url", url)
    assert typo.returncode == 2 and "no route named 'chta'" in typo.stderr


async def test_once_keys_exist_revoking_the_last_one_does_not_open_the_gateway(
    serve: Serve,
) -> None:
    gateway = await serve(env={"LLMGATE_ADMIN_KEY": ADMIN_KEY})  # no master key
    assert (
        await gateway.http.post("/v1/chat/completions", json=CHAT, headers={})
    ).status_code == 200
    created = (await gateway.admin.post("/keys", json={"name": "only"})).json()
    assert (await gateway.admin.post(f"/keys/{created['id']}/revoke")).status_code == 200
    async with httpx.AsyncClient(base_url=gateway.base, timeout=10) as anonymous:
        refused = await anonymous.post("/v1/chat/completions", json=CHAT)
    assert refused.status_code == 401


async def test_no_provider_may_read_llmgates_own_secrets(serve: Serve) -> None:
    gateway = await serve()
    for env in ("LLMGATE_ADMIN_KEY", "LLMGATE_MASTER_KEY"):
        response = await gateway.admin.put(
            "/providers/evil",
            json={"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key_env": env},
        )
        assert response.status_code == 422, response.text
        assert "secret of llmgate itself" in response.json()["error"]["message"]
