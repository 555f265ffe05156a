"""openai-python (the official SDK) at its default retry settings, through llmgate."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pydantic
import pytest

from tests.clients.conftest import World
from tests.clients.scenarios import (
    ANSWER,
    DEAD_ATTEMPTS,
    QUESTION,
    REASONING,
    REFUSAL,
    RETRY_AFTER,
    WEATHER_ARGUMENTS,
    WEATHER_TOOL,
)
from tests.integration.conftest import KEY

MESSAGES: list[Any] = [{"role": "user", "content": QUESTION}]


@pytest.fixture
def client(world: World) -> Iterator[openai.OpenAI]:
    sdk = openai.OpenAI(base_url=world.base_url, api_key=KEY)  # default max_retries
    yield sdk
    sdk.close()


def streamed_text(client: openai.OpenAI, route: str) -> str:
    stream = client.chat.completions.create(model=route, messages=MESSAGES, stream=True)
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def test_a_cut_answer_is_continued_into_one_answer_in_the_default_mode(
    client: openai.OpenAI,
) -> None:
    assert streamed_text(client, "cut") == ANSWER


def test_a_cut_answer_in_restart_mode_never_glues_the_draft_to_a_new_answer(
    client: openai.OpenAI,
) -> None:
    assert streamed_text(client, "cut-restart") == ANSWER


def test_b_a_tool_call_cut_mid_arguments_reaches_the_client_once_and_whole(
    client: openai.OpenAI,
) -> None:
    # The SDK's own stream accumulator merges tool-call deltas by index.
    with client.chat.completions.stream(
        model="tool-cut", messages=MESSAGES, tools=[WEATHER_TOOL]
    ) as stream:
        completion = stream.get_final_completion()
    calls = completion.choices[0].message.tool_calls or []
    assert [(c.function.name, c.function.arguments) for c in calls] == [
        ("get_weather", WEATHER_ARGUMENTS)
    ]
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}


def test_c_a_dead_route_costs_exactly_the_attempts_its_policy_allows(
    client: openai.OpenAI, world: World
) -> None:
    with pytest.raises(openai.APIStatusError) as failure:
        client.chat.completions.create(model="dead", messages=MESSAGES, stream=True)
    headers = failure.value.response.headers
    assert (world.calls("dead-a", "dead-b"), headers.get("x-should-retry")) == (
        DEAD_ATTEMPTS,
        "false",
    )
    assert failure.value.status_code >= 500


def test_c_a_model_no_target_knows_is_a_404_that_is_not_retried(
    client: openai.OpenAI, world: World
) -> None:
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gone", messages=MESSAGES, stream=True)
    assert world.calls("gone-a", "gone-b") == 2


def test_d_a_429_is_relayed_with_its_retry_after_and_costs_one_upstream_call(
    client: openai.OpenAI, world: World
) -> None:
    with pytest.raises(openai.RateLimitError) as failure:
        client.chat.completions.create(model="limited", messages=MESSAGES, stream=True)
    headers = failure.value.response.headers
    assert (world.calls("limited"), headers.get("retry-after")) == (1, str(RETRY_AFTER))


def test_e_streamed_reasoning_arrives_as_reasoning_content_apart_from_the_answer(
    client: openai.OpenAI,
) -> None:
    reasoning, text = "", ""
    for chunk in client.chat.completions.create(model="thinker", messages=MESSAGES, stream=True):
        if chunk.choices:
            delta = chunk.choices[0].delta
            reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
            text += delta.content or ""
    assert (reasoning, text) == ("".join(REASONING), "Paris.")


def test_e_reasoning_of_a_whole_answer_is_the_messages_reasoning_content(
    client: openai.OpenAI,
) -> None:
    message = client.chat.completions.create(model="thinker", messages=MESSAGES).choices[0].message
    assert (message.model_extra or {}).get("reasoning_content") == "".join(REASONING)
    assert message.content == "Paris."


class City(pydantic.BaseModel):
    name: str


def test_f_a_refusal_makes_parse_return_the_refusal_not_an_empty_success(
    client: openai.OpenAI,
) -> None:
    completion = client.chat.completions.parse(
        model="refuser", messages=MESSAGES, response_format=City
    )
    message = completion.choices[0].message
    assert message.refusal == "".join(REFUSAL)
    assert message.parsed is None


def test_f_a_streamed_refusal_arrives_as_delta_refusal(client: openai.OpenAI) -> None:
    refusal, text = "", ""
    for chunk in client.chat.completions.create(model="refuser", messages=MESSAGES, stream=True):
        if chunk.choices:
            refusal += chunk.choices[0].delta.refusal or ""
            text += chunk.choices[0].delta.content or ""
    assert (refusal, text) == ("".join(REFUSAL), "")
