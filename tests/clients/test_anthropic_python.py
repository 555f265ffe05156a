"""The anthropic Python SDK at its default retry settings, on llmgate's ``/v1/messages``.

The routes' targets are OpenAI-compatible fakes (llmgate translates), except the
``claude-thinker`` route's, an Anthropic Messages fake that sends a thinking block.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from tests.clients.conftest import World
from tests.clients.scenarios import (
    ANSWER,
    DEAD_ATTEMPTS,
    QUESTION,
    REASONING,
    RETRY_AFTER,
    WEATHER_TOOL,
)
from tests.integration.conftest import KEY

MESSAGES: list[Any] = [{"role": "user", "content": QUESTION}]
TOOL: Any = {
    "name": WEATHER_TOOL["function"]["name"],
    "description": WEATHER_TOOL["function"]["description"],
    "input_schema": WEATHER_TOOL["function"]["parameters"],
}


@pytest.fixture
def client(world: World) -> Iterator[anthropic.Anthropic]:
    # The SDK appends /v1/messages to its base URL. Default max_retries.
    sdk = anthropic.Anthropic(base_url=world.base_url.removesuffix("/v1"), api_key=KEY)
    yield sdk
    sdk.close()


def final_message(client: anthropic.Anthropic, route: str, **kwargs: Any) -> Any:
    with client.messages.stream(model=route, max_tokens=256, messages=MESSAGES, **kwargs) as stream:
        return stream.get_final_message()


def blocks(message: Any) -> list[tuple[str, Any]]:
    """``(type, payload)`` of each content block: what a UI shows or a tool runner runs."""
    out: list[tuple[str, Any]] = []
    for block in message.content:
        match block.type:
            case "text":
                out.append(("text", block.text))
            case "thinking":
                out.append(("thinking", block.thinking))
            case "tool_use":
                out.append(("tool_use", (block.name, block.input)))
            case _:
                out.append((block.type, None))
    return out


def test_a_cut_answer_is_continued_into_one_text_block_in_the_default_mode(
    client: anthropic.Anthropic,
) -> None:
    assert blocks(final_message(client, "cut")) == [("text", ANSWER)]


def test_a_cut_answer_in_restart_mode_leaves_no_abandoned_draft_block(
    client: anthropic.Anthropic,
) -> None:
    assert blocks(final_message(client, "cut-restart")) == [("text", ANSWER)]


def test_b_a_tool_call_cut_mid_input_gives_exactly_one_whole_tool_use(
    client: anthropic.Anthropic,
) -> None:
    message = final_message(client, "tool-cut", tools=[TOOL])
    tool_uses = [b for b in blocks(message) if b[0] == "tool_use"]
    assert tool_uses == [("tool_use", ("get_weather", {"city": "Paris"}))]
    assert message.stop_reason == "tool_use"


def test_c_a_dead_route_costs_exactly_the_attempts_its_policy_allows(
    client: anthropic.Anthropic, world: World
) -> None:
    with pytest.raises(anthropic.APIStatusError) as failure:
        final_message(client, "dead")
    headers = failure.value.response.headers
    assert (world.calls("dead-a", "dead-b"), headers.get("x-should-retry")) == (
        DEAD_ATTEMPTS,
        "false",
    )
    assert failure.value.status_code >= 500


def test_c_a_model_no_target_knows_is_a_404_that_is_not_retried(
    client: anthropic.Anthropic, world: World
) -> None:
    with pytest.raises(anthropic.NotFoundError):
        final_message(client, "gone")
    assert world.calls("gone-a", "gone-b") == 2


def test_d_a_429_is_relayed_with_its_retry_after_and_costs_one_upstream_call(
    client: anthropic.Anthropic, world: World
) -> None:
    with pytest.raises(anthropic.RateLimitError) as failure:
        final_message(client, "limited")
    headers = failure.value.response.headers
    assert (world.calls("limited"), headers.get("retry-after")) == (1, str(RETRY_AFTER))


def test_e_reasoning_content_from_an_openai_compatible_upstream_is_a_thinking_block(
    client: anthropic.Anthropic,
) -> None:
    message = final_message(client, "thinker")
    assert blocks(message) == [("thinking", "".join(REASONING)), ("text", "Paris.")]


def test_e_an_anthropic_upstreams_thinking_block_reaches_the_client(
    client: anthropic.Anthropic,
) -> None:
    message = final_message(client, "claude-thinker")
    assert blocks(message) == [("thinking", "".join(REASONING)), ("text", "Paris.")]


def test_f_a_refusal_ends_the_message_with_stop_reason_refusal(
    client: anthropic.Anthropic,
) -> None:
    message = final_message(client, "refuser")
    assert message.stop_reason == "refusal"
    assert [b for b in blocks(message) if b[0] == "tool_use"] == []
