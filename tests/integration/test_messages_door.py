"""What the Messages door does for the anthropic SDK's helpers: ``tool_runner`` (which
sends a ``thread``), ``messages.parse`` (``output_config.format``) and ``count_tokens``;
and its request ids."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx
import pydantic
import pytest
from anthropic import beta_tool

from tests.fakes.openai_upstream import Stream
from tests.integration.conftest import KEY

MESSAGES: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]


def test_the_sdks_tool_runner_works_once_told_threads_are_unsupported(
    make_gateway: Any, upstream: Any
) -> None:
    upstream.script(
        "m-runner",
        Stream([], tool_calls=[("call_1", "get_weather", '{"city": "Paris"}')]),
        Stream(["It is sunny in Paris."]),
    )
    asked: list[str] = []

    @beta_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        asked.append(city)
        return "sunny"

    gw = make_gateway()
    runner = gw.anthropic().beta.messages.tool_runner(
        model="up/m-runner", max_tokens=256, messages=MESSAGES, tools=[get_weather]
    )
    replies = list(runner)
    assert asked == ["Paris"]  # the tool ran once
    assert [r.stop_reason for r in replies] == ["tool_use", "end_turn"]
    assert replies[-1].content[0].text == "It is sunny in Paris."  # type: ignore[union-attr]
    first, second = upstream.requests_for("m-runner")  # the threaded requests never got there
    assert first["messages"] == MESSAGES
    assert second["messages"][-1] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}


def test_a_thread_is_refused_with_the_details_the_sdk_reads(make_gateway: Any) -> None:
    gw = make_gateway()
    with pytest.raises(anthropic.BadRequestError) as info:
        gw.anthropic().messages.create(
            model="up/x", max_tokens=8, messages=MESSAGES, extra_body={"thread": {"type": "create"}}
        )
    assert info.value.error_code == "thread_unsupported_request"
    error: Any = info.value.body
    assert error["error"]["details"] == {
        "error_code": "thread_unsupported_request",
        "unsupported": ["thread"],
    }


class City(pydantic.BaseModel):
    name: str
    population: int


def test_messages_parse_asks_the_upstream_for_the_schema(make_gateway: Any, upstream: Any) -> None:
    upstream.script("m-parse", Stream(['{"name": "Paris", ', '"population": 2100000}']))
    gw = make_gateway()
    parsed = gw.anthropic().messages.parse(
        model="up/m-parse",
        max_tokens=256,
        messages=[{"role": "user", "content": "The capital of France?"}],
        output_format=City,
    )
    assert parsed.parsed_output == City(name="Paris", population=2_100_000)
    response_format = upstream.requests_for("m-parse")[0]["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["name"] == "City"
    schema = response_format["json_schema"]["schema"]
    assert set(schema["properties"]) == {"name", "population"}


def test_count_tokens_answers_an_estimate(make_gateway: Any, upstream: Any) -> None:
    gw = make_gateway(routes={"chat": {"targets": ["up/m-count"]}})
    sdk = gw.anthropic()
    short = sdk.messages.count_tokens(model="chat", messages=MESSAGES)
    longer = sdk.messages.count_tokens(
        model="chat",
        system="Be brief. " * 40,
        messages=MESSAGES,
        tools=[{"name": "get_weather", "input_schema": {"type": "object"}}],
    )
    # "Weather in Paris?" is 17 characters: 5 tokens, and 3 for the message.
    assert short.input_tokens == 8
    assert longer.input_tokens > short.input_tokens + 100
    assert upstream.requests == []  # counted without calling anyone
    with pytest.raises(anthropic.NotFoundError):
        sdk.messages.count_tokens(model="nope", messages=MESSAGES)


def test_every_response_carries_its_request_id(make_gateway: Any, upstream: Any) -> None:
    upstream.script("m-id", Stream(["Hi"]))
    gw = make_gateway()
    sdk = gw.anthropic()
    message = sdk.messages.create(model="up/m-id", max_tokens=8, messages=MESSAGES)
    assert message._request_id == message.id  # what the SDK reads: request-id
    with sdk.messages.with_streaming_response.create(
        model="up/m-id", max_tokens=8, messages=MESSAGES, stream=True
    ) as streamed:
        headers = streamed.headers
        assert headers["x-request-id"] == headers["request-id"] == headers["x-llmgate-request-id"]
    with pytest.raises(anthropic.BadRequestError) as info:
        sdk.messages.create(model="up/m-id", max_tokens=0, messages=MESSAGES)
    assert info.value.request_id and info.value.response.headers["x-request-id"]
    lost = httpx.post(f"{gw.base_url}/messages/nowhere", headers={"x-api-key": KEY}, json={})
    assert lost.status_code == 404 and lost.headers["request-id"] == lost.headers["x-request-id"]
    assert json.loads(lost.text)["type"] == "error"
