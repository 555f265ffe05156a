"""The openai Node SDK at its default retry settings, through llmgate: every scenario
runs in one Node process (tests/clients/node/openai_sdk.mjs) and the tests read its
results."""

from __future__ import annotations

from typing import Any

import pytest

from tests.clients.conftest import NODE_SCENARIOS, World, run_node_scenarios
from tests.clients.scenarios import (
    ANSWER,
    DEAD_ATTEMPTS,
    REASONING,
    REFUSAL,
    RETRY_AFTER,
    WEATHER_ARGUMENTS,
)

CITY_SCHEMA = {
    "name": "city",
    "strict": True,
    "schema": {
        "type": "object",
        "properties": {"name": {"type": "string"}},
        "required": ["name"],
        "additionalProperties": False,
    },
}


@pytest.fixture(scope="module")
def results(world: World) -> dict[str, Any]:
    jobs = [*NODE_SCENARIOS, {"id": "refuser-parse", "run": "refusalParse", "route": "refuser"}]
    return run_node_scenarios(world, "openai_sdk.mjs", jobs, citySchema=CITY_SCHEMA)


def test_a_cut_answer_is_continued_into_one_answer_in_the_default_mode(
    results: dict[str, Any],
) -> None:
    assert results["cut"] == {"text": ANSWER}


def test_a_cut_answer_in_restart_mode_never_glues_the_draft_to_a_new_answer(
    results: dict[str, Any],
) -> None:
    assert results["cut-restart"] == {"text": ANSWER}


def test_b_a_tool_call_cut_mid_arguments_reaches_the_client_once_and_whole(
    results: dict[str, Any],
) -> None:
    assert results["tool-cut"] == {"toolCalls": [["get_weather", WEATHER_ARGUMENTS]]}


def test_c_a_dead_route_costs_exactly_the_attempts_its_policy_allows(
    results: dict[str, Any], world: World
) -> None:
    error = results["dead"]["error"]
    assert (world.calls("dead-a", "dead-b"), error["shouldRetry"]) == (DEAD_ATTEMPTS, "false")
    assert error["status"] >= 500


def test_c_a_model_no_target_knows_is_a_404_that_is_not_retried(
    results: dict[str, Any], world: World
) -> None:
    assert results["gone"]["error"]["status"] == 404
    assert world.calls("gone-a", "gone-b") == 2


def test_d_a_429_is_relayed_with_its_retry_after_and_costs_one_upstream_call(
    results: dict[str, Any], world: World
) -> None:
    error = results["limited"]["error"]
    assert (world.calls("limited"), error["status"], error["retryAfter"]) == (
        1,
        429,
        str(RETRY_AFTER),
    )


def test_e_streamed_reasoning_arrives_as_reasoning_content_apart_from_the_answer(
    results: dict[str, Any],
) -> None:
    assert results["thinker"] == {
        "content": "Paris.",
        "reasoning_content": "".join(REASONING),
        "refusal": "",
    }


def test_f_a_streamed_refusal_arrives_as_delta_refusal(results: dict[str, Any]) -> None:
    assert results["refuser-stream"] == {
        "content": "",
        "reasoning_content": "",
        "refusal": "".join(REFUSAL),
    }


def test_f_a_refusal_makes_parse_return_the_refusal_not_an_empty_success(
    results: dict[str, Any],
) -> None:
    assert results["refuser-parse"] == {"refusal": "".join(REFUSAL), "parsed": None}
