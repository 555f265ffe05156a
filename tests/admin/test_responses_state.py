"""Stored Responses API responses on a real database (SQLite, and PostgreSQL in CI), with
the openai SDK: retrieve, input items, delete, ``previous_response_id`` follow-ups, one
key's responses hidden from another, ``store: false``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.admin.conftest import CLIENT_KEY, ENV, Serve, ServedGateway
from tests.eventually import eventually_async
from tests.fakes.openai_upstream import FakeUpstream, Stream


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


def config(upstream: FakeUpstream) -> dict[str, Any]:
    return {
        "server": {"reload_poll_s": 3600},
        "providers": {"up": {"kind": "openai", "base_url": upstream.base_url}},
        "routes": {"chat": {"targets": ["up/m"]}},
    }


def sdk(gateway: ServedGateway, key: str = CLIENT_KEY) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gateway.base}/v1", api_key=key, max_retries=0)


async def test_a_stored_response_is_retrieved_listed_and_deleted(
    serve: Serve, upstream: FakeUpstream
) -> None:
    upstream.script("m", Stream(["Paris."]))
    gateway = await serve(config=config(upstream), env=ENV)
    client = sdk(gateway)
    created = await client.responses.create(
        model="chat", input="Capital of France?", metadata={"k": "v"}
    )
    got = await client.responses.retrieve(created.id)
    assert (got.id, got.output_text, got.status, got.metadata) == (
        created.id,
        "Paris.",
        "completed",
        {"k": "v"},
    )
    items = [item async for item in client.responses.input_items.list(created.id, order="asc")]
    assert len(items) == 1 and items[0].type == "message" and items[0].role == "user"
    assert items[0].content[0].text == "Capital of France?"

    async def written() -> bool:
        metrics = (await gateway.http.get("/metrics")).text
        return "llmgate_responses_store_written_total 1.0" in metrics

    await eventually_async(written, "the response's row, counted in /metrics")
    deleted = await client.responses.delete(created.id)
    assert deleted is None  # the SDK returns nothing for a 200
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(created.id)
    await client.close()


async def test_a_follow_up_continues_the_stored_conversation(
    serve: Serve, upstream: FakeUpstream
) -> None:
    upstream.script("m", Stream(["Paris."]), Stream(["About two million."]))
    gateway = await serve(config=config(upstream), env=ENV)
    client = sdk(gateway)
    async with client.responses.stream(
        model="chat", input="Capital of France?", instructions="Be brief."
    ) as stream:
        first = await stream.get_final_response()
    # A follow-up sent the moment the stream ended: the write may still be under way.
    second = await client.responses.create(
        model="chat", input="How many people live there?", previous_response_id=first.id
    )
    assert second.output_text == "About two million."
    assert second.previous_response_id == first.id
    sent = upstream.requests_for("m")[1]["messages"]
    assert sent == [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
        {"role": "user", "content": "How many people live there?"},
    ]  # the first turn's instructions are not carried over, as OpenAI does
    await client.close()


async def test_a_key_sees_only_its_own_responses_and_store_false_keeps_nothing(
    serve: Serve, upstream: FakeUpstream
) -> None:
    upstream.script("m", Stream(["Hello."]))
    gateway = await serve(config=config(upstream), env=ENV)
    created = await gateway.admin.post("/keys", json={"name": "other-app"})
    other = sdk(gateway, created.json()["secret"])
    mine = sdk(gateway)
    response = await mine.responses.create(model="chat", input="hi")
    with pytest.raises(openai.NotFoundError):
        await other.responses.retrieve(response.id)
    with pytest.raises(openai.BadRequestError) as refused:
        await other.responses.create(model="chat", input="and?", previous_response_id=response.id)
    assert refused.value.code == "previous_response_not_found"

    unstored = await mine.responses.create(model="chat", input="hi", store=False)
    assert unstored.store is False
    with pytest.raises(openai.NotFoundError):
        await mine.responses.retrieve(unstored.id)
    await mine.close()
    await other.close()


async def test_a_conversation_stays_on_the_deployment_that_served_its_first_turn(
    serve: Serve, upstream: FakeUpstream
) -> None:
    members = ["a", "b", "c"]
    for model in members:
        upstream.script(model, Stream([f"from {model}"]))
    pooled = {
        **config(upstream),
        "routes": {
            "chat": {"targets": [{"pool": [f"up/{m}" for m in members]}], "affinity": "session"}
        },
    }
    gateway = await serve(config=pooled, env=ENV)
    client = sdk(gateway)
    served: list[str] = []
    for _ in range(4):  # four conversations of three turns each
        previous = None
        for turn in range(3):
            response = await client.responses.create(
                model="chat", input=f"turn {turn}", previous_response_id=previous
            )
            served.append(response.model)
            previous = response.id
    conversations = [served[i : i + 3] for i in range(0, 12, 3)]
    assert all(len(set(turns)) == 1 for turns in conversations), conversations
    await client.close()


async def test_nothing_is_stored_when_the_request_log_keeps_no_text(
    serve: Serve, upstream: FakeUpstream
) -> None:
    upstream.script("m", Stream(["Hello."]))
    quiet = {**config(upstream), "server": {"reload_poll_s": 3600, "request_log_text": False}}
    gateway = await serve(config=quiet, env=ENV)
    client = sdk(gateway)
    response = await client.responses.create(model="chat", input="hi")
    with pytest.raises(openai.NotFoundError):
        await client.responses.retrieve(response.id)
    with pytest.raises(openai.BadRequestError) as refused:
        await client.responses.create(model="chat", input="and?", previous_response_id=response.id)
    assert "request_log_text" in refused.value.message
    await client.close()
