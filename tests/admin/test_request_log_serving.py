"""The request log of a serving gateway: never in a request's way, never losing a row.

- A failing request-log write does not fail the request: the row waits and is written
  once the database takes it.
- A stopped server writes every row still queued.
- A client that disconnects mid-stream still gets its row, as a ``ClientDisconnected``
  failure.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from server.store import PolicyStore
from server.store.models import RequestLog
from tests.admin.conftest import CONFIG, MESSAGES, Serve, ServedGateway
from tests.eventually import eventually_async


async def _rows(store: PolicyStore) -> list[Any]:
    async with store.engine.connect() as conn:
        return list((await conn.execute(sa.select(RequestLog))).all())


async def _metric(gateway: ServedGateway, name: str) -> float:
    text = (await gateway.http.get("/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in (name, f"{name}_total"):
                return sample.value
    raise AssertionError(f"{name} not exported")


async def test_a_failing_request_log_write_does_not_fail_the_request(
    serve: Serve, store: PolicyStore
) -> None:
    gateway = await serve()
    async with store.engine.begin() as conn:  # every insert now fails
        await conn.execute(sa.text("ALTER TABLE request_log RENAME TO request_log_away"))

    statuses = [(await gateway.answer("chat"))[0] for _ in range(3)]
    async with gateway.http.stream(
        "POST", "/v1/chat/completions", json={"model": "chat", "messages": MESSAGES, "stream": True}
    ) as response:
        body = (await response.aread()).decode()
    assert statuses == [200, 200, 200]
    assert response.status_code == 200 and body.rstrip().endswith("data: [DONE]")

    async def failed_writes() -> bool:
        return await _metric(gateway, "llmgate_request_log_write_errors") > 0

    await eventually_async(failed_writes, "the writer to hit the missing table")
    assert await _metric(gateway, "llmgate_request_log_dropped") == 0

    async with store.engine.begin() as conn:  # the database is back
        await conn.execute(sa.text("ALTER TABLE request_log_away RENAME TO request_log"))

    async def written() -> list[Any]:
        rows = await _rows(store)
        return rows if len(rows) == 4 else []

    rows = await eventually_async(written, "the queued rows to be written")
    assert {r.status for r in rows} == {"ok"}


async def test_a_stopped_server_writes_every_row_still_queued(
    serve: Serve, store: PolicyStore
) -> None:
    # An hour between flushes: nothing is written until the batch fills or the server stops.
    config = {**CONFIG, "server": {**CONFIG["server"], "request_log_flush_s": 3600}}
    gateway = await serve(config=config)
    ids = []
    for _ in range(5):
        response = await gateway.http.post(
            "/v1/chat/completions", json={"model": "chat", "messages": MESSAGES}
        )
        assert response.status_code == 200
        ids.append(response.headers["x-llmgate-request-id"])
    assert await _metric(gateway, "llmgate_request_log_queue_depth") == 5
    assert await _rows(store) == []

    await gateway.aclose()  # graceful stop

    assert sorted(r.id for r in await _rows(store)) == sorted(ids)


async def test_a_client_that_disconnects_mid_stream_is_logged_as_such(
    serve: Serve, store: PolicyStore
) -> None:
    config = {
        **CONFIG,
        "providers": {"slow": {"kind": "mock", "tokens": 400, "token_latency_ms": 20}},
        "routes": {"chat": {"targets": ["slow/a"]}},
    }
    gateway = await serve(config=config)
    async with gateway.http.stream(
        "POST", "/v1/chat/completions", json={"model": "chat", "messages": MESSAGES, "stream": True}
    ) as response:
        request_id = response.headers["x-llmgate-request-id"]
        async for line in response.aiter_lines():
            if '"content"' in line:  # some text arrived: now go away
                break

    async def logged() -> list[Any]:
        return [r for r in await _rows(store) if r.id == request_id]

    (row,) = await eventually_async(logged, "the disconnected request's row")
    assert row.status == "partial"
    assert row.error.startswith("ClientDisconnected")
    assert row.record["attempts"][0]["outcome"] == "failed"
    assert row.transcript[0]["target"] == "slow/a" and row.transcript[0]["text"]
    requests = await _metric(gateway, "llmgate_requests_total")
    assert requests == 1


async def test_each_request_is_logged_with_its_cost_at_the_targets_price(
    serve: Serve, store: PolicyStore
) -> None:
    config = {
        **CONFIG,
        "providers": {
            "cut": {
                "kind": "mock",
                "cut_after": 2,
                "prices": {"*": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
            },
            "priced": {
                "kind": "mock",
                "tokens": 5,
                "prices": {"a": {"input_per_mtok": 3.0, "output_per_mtok": 4.0}},
            },
            "free": {"kind": "mock", "tokens": 5},
        },
        "routes": {
            "chat": {
                "targets": ["cut/a", "priced/a"],
                "stream_fallback_mode": "prefill",
                "max_retries": 0,
            },
            "unpriced": {"targets": ["free/a"]},
        },
    }
    gateway = await serve(config=config)
    assert (await gateway.answer("chat"))[:2] == (200, "priced/a")
    assert (await gateway.answer("unpriced"))[0] == 200
    await gateway.aclose()

    rows = {r.route: r for r in await _rows(store)}
    attempts = rows["chat"].record["attempts"]
    expected = 0.0
    for a, (inp, out) in zip(attempts, [(1.0, 2.0), (3.0, 4.0)], strict=True):
        usage = a["usage"]
        if usage is None:  # a cut stream reports none: nothing is known to charge
            continue
        expected += (usage["prompt_tokens"] * inp + usage["completion_tokens"] * out) / 1e6
    assert [a["usage"] is not None for a in attempts] == [False, True]
    assert rows["chat"].cost_usd == pytest.approx(expected) and expected > 0
    assert rows["unpriced"].cost_usd is None


async def test_each_logged_request_names_the_api_key_that_made_it(
    serve: Serve, store: PolicyStore
) -> None:
    gateway = await serve()
    created = (await gateway.admin.post("/keys", json={"name": "app1"})).json()
    auth = {"authorization": f"Bearer {created['secret']}"}
    body = {"model": "chat", "messages": MESSAGES}
    assert (
        await gateway.http.post("/v1/chat/completions", json=body, headers=auth)
    ).status_code == 200
    assert (await gateway.http.post("/v1/chat/completions", json=body)).status_code == 200
    await gateway.aclose()
    assert sorted(str(r.api_key_id) for r in await _rows(store)) == sorted([created["id"], "None"])


async def test_an_embeddings_request_gets_its_row_like_any_request(
    serve: Serve, store: PolicyStore
) -> None:
    gateway = await serve()

    response = await gateway.http.post(
        "/v1/embeddings", json={"model": "old/embedder", "input": ["one two", "three"]}
    )

    assert response.status_code == 200
    request_id = response.headers["x-llmgate-request-id"]

    async def row() -> Any:
        return next((r for r in await _rows(store) if r.id == request_id), None)

    logged = await eventually_async(row, "the embeddings request's row")
    assert (logged.route, logged.target, logged.status) == ("old/embedder", "old/embedder", "ok")
    assert (logged.prompt_tokens, logged.completion_tokens) == (3, 0)
    assert logged.transcript == []
