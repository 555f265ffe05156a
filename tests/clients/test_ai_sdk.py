"""The Vercel AI SDK (``ai``) at its default retry settings, through llmgate: every
scenario runs in one Node process (tests/clients/node/ai_sdk.mjs) and the tests read
what ``streamText`` gave.

The stream tests run with both ways a user points the AI SDK at an OpenAI-compatible
gateway: ``@ai-sdk/openai-compatible`` (``createOpenAICompatible``), what the AI SDK
documents for such endpoints, and ``@ai-sdk/openai``'s chat-completions model
(``createOpenAI({baseURL}).chat``), for users who start from the OpenAI provider (whose
default model speaks OpenAI's Responses API, not chat completions). The failure tests
run with the first: retrying is ``ai``'s own code, the same for both.

The AI SDK decides to retry by status alone (``APICallError.isRetryable``: 408, 409, 429,
>= 500; it never reads ``x-should-retry``) and honours ``Retry-After`` as its delay. Its
own retries of a request llmgate gave up on are answered from that failure (its
User-Agent names ``ai-sdk/``, see server/retry_guard.py), so they cost no upstream call;
a retry that waited the ``Retry-After`` it was told is served anew.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.clients.conftest import NODE_SCENARIOS, World, open_world, run_node_scenarios
from tests.clients.scenarios import ANSWER, DEAD_ATTEMPTS, REASONING, REFUSAL, RETRY_AFTER

REASONING_SHOWN = {
    "openai-compatible": "".join(REASONING),
    "openai-chat": "",
    "openai-responses": "".join(REASONING),
}
"""What each provider exposes as reasoning parts: ``@ai-sdk/openai``'s chat model reads
neither ``reasoning_content`` nor ``reasoning`` (no such field in its chunk schema); its
Responses model shows the reasoning summary llmgate streams."""


@pytest.fixture(scope="module", params=["openai-compatible", "openai-chat", "openai-responses"])
def provider(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def world(provider: str) -> Iterator[World]:
    """A fresh world per provider: each scenario's route serves one client only."""
    with open_world() as opened:
        yield opened


@pytest.fixture(scope="module")
def results(world: World, provider: str) -> dict[str, Any]:
    jobs = [job for job in NODE_SCENARIOS if job["run"] != "failure"]
    return run_node_scenarios(world, "ai_sdk.mjs", jobs, provider=provider)


@pytest.fixture(scope="module")
def failures() -> Iterator[tuple[dict[str, Any], World]]:
    """The failure scenarios' results, and their world (to count upstream calls)."""
    with open_world() as opened:
        jobs = [job for job in NODE_SCENARIOS if job["run"] == "failure"]
        yield run_node_scenarios(opened, "ai_sdk.mjs", jobs, provider="openai-compatible"), opened


def test_a_cut_answer_is_continued_into_one_answer_in_the_default_mode(
    results: dict[str, Any],
) -> None:
    assert (results["cut"]["text"], results["cut"]["errors"]) == (ANSWER, [])


def test_a_cut_answer_in_restart_mode_never_glues_the_draft_to_a_new_answer(
    results: dict[str, Any],
) -> None:
    assert (results["cut-restart"]["text"], results["cut-restart"]["errors"]) == (ANSWER, [])


def test_b_a_tool_call_cut_mid_arguments_runs_the_tool_once_with_its_arguments(
    results: dict[str, Any],
) -> None:
    result = results["tool-cut"]
    assert result["toolCalls"] == [["get_weather", {"city": "Paris"}]]
    assert result["executions"] == [{"city": "Paris"}]
    assert result["errors"] == []


def test_c_a_dead_route_costs_exactly_the_attempts_its_policy_allows(
    failures: tuple[dict[str, Any], World],
) -> None:
    results, world = failures
    [error] = results["dead"]["errors"]
    # Three SDK calls (its default retries, which no response header stops); its two
    # retries are answered with the failure it already had.
    assert (world.calls("dead-a", "dead-b"), error["attempts"]) == (DEAD_ATTEMPTS, 3)
    assert (error["statusCode"], error["shouldRetry"]) == (502, "false")


def test_c_a_model_no_target_knows_is_a_404_that_is_not_retried(
    failures: tuple[dict[str, Any], World],
) -> None:
    results, world = failures
    [error] = results["gone"]["errors"]
    assert (error["statusCode"], error["attempts"], world.calls("gone-a", "gone-b")) == (
        404,
        1,
        2,
    )


def test_d_a_429_is_relayed_with_its_retry_after_and_each_sdk_call_costs_one_upstream_call(
    failures: tuple[dict[str, Any], World],
) -> None:
    results, world = failures
    [error] = results["limited"]["errors"]
    # The SDK retries a 429 after the relayed Retry-After (2 s, twice).
    assert (error["statusCode"], error["retryAfter"]) == (429, str(RETRY_AFTER))
    assert (world.calls("limited"), error["attempts"]) == (3, 3)


def test_e_streamed_reasoning_arrives_as_reasoning_parts_never_as_text(
    results: dict[str, Any], provider: str
) -> None:
    result = results["thinker"]
    assert (result["reasoning"], result["text"]) == (REASONING_SHOWN[provider], "Paris.")


def test_f_a_refusal_is_shown_as_text_and_finishes_as_content_filter(
    results: dict[str, Any],
) -> None:
    # Neither provider has a refusal part: both stream the refusal as text and map
    # finish_reason "stop" after a refusal to "content-filter".
    result = results["refuser-stream"]
    assert (result["text"], result["finishReason"]) == ("".join(REFUSAL), "content-filter")
