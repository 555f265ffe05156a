"""langchain-openai's ``ChatOpenAI`` at its default retry settings, through llmgate.

``ChatOpenAI`` has no retries of its own: ``max_retries=None`` leaves the openai SDK's
default (2) in place, so its retry behaviour is openai-python's.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any

import openai
import pydantic
import pytest
from langchain_core.messages import AIMessageChunk
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langchain_openai.chat_models.base import OpenAIRefusalError

from tests.clients.conftest import World
from tests.clients.scenarios import (
    ANSWER,
    DEAD_ATTEMPTS,
    QUESTION,
    REASONING,
    REFUSAL,
    RETRY_AFTER,
)
from tests.integration.conftest import KEY


@pytest.fixture
def chat(world: World) -> Callable[[str], ChatOpenAI]:
    """``chat(route)``: a ``ChatOpenAI`` for a route. (Not closed after the test:
    ChatOpenAI instances share one cached HTTP client.)"""
    return lambda route: ChatOpenAI(model=route, base_url=world.base_url, api_key=KEY)  # type: ignore[arg-type]


def streamed(llm: Any, prompt: Any = QUESTION) -> AIMessageChunk:
    """The message LangChain assembles from a stream, chunk by chunk."""
    chunks: list[AIMessageChunk] = list(llm.stream(prompt))
    return functools.reduce(operator.add, chunks)


def test_a_cut_answer_is_continued_into_one_answer_in_the_default_mode(chat: Any) -> None:
    assert streamed(chat("cut")).content == ANSWER


def test_a_cut_answer_in_restart_mode_never_glues_the_draft_to_a_new_answer(chat: Any) -> None:
    assert streamed(chat("cut-restart")).content == ANSWER


def test_b_a_tool_call_cut_mid_arguments_runs_the_tool_once_with_its_arguments(
    chat: Any,
) -> None:
    runs: list[str] = []

    @tool
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        runs.append(city)
        return "sunny"

    message = streamed(chat("tool-cut").bind_tools([get_weather]))
    calls = [(c["name"], c["args"]) for c in message.tool_calls]
    assert (calls, message.invalid_tool_calls) == ([("get_weather", {"city": "Paris"})], [])
    for call in message.tool_calls:  # what an agent loop does with the answer
        get_weather.invoke(call)
    assert runs == ["Paris"]


def test_c_a_dead_route_costs_exactly_the_attempts_its_policy_allows(
    chat: Any, world: World
) -> None:
    with pytest.raises(openai.APIStatusError):
        streamed(chat("dead"))
    assert world.calls("dead-a", "dead-b") == DEAD_ATTEMPTS


def test_c_a_model_no_target_knows_is_a_404_that_is_not_retried(chat: Any, world: World) -> None:
    with pytest.raises(openai.NotFoundError):
        streamed(chat("gone"))
    assert world.calls("gone-a", "gone-b") == 2


def test_d_a_429_is_relayed_with_its_retry_after_and_costs_one_upstream_call(
    chat: Any, world: World
) -> None:
    with pytest.raises(openai.RateLimitError) as failure:
        streamed(chat("limited"))
    headers = failure.value.response.headers
    assert (world.calls("limited"), headers.get("retry-after")) == (1, str(RETRY_AFTER))


def test_e_reasoning_never_leaks_into_the_answer_text(chat: Any) -> None:
    # ChatOpenAI reads only official OpenAI fields: it drops `reasoning_content`
    # (langchain_openai/chat_models/base.py, module docstring and
    # _convert_delta_to_message_chunk), so the answer must at least stay clean.
    message = streamed(chat("thinker"))
    assert message.content == "Paris."
    assert "".join(REASONING) not in str(message.additional_kwargs)


class City(pydantic.BaseModel):
    name: str


def test_f_a_refusal_raises_openai_refusal_error_from_structured_output(chat: Any) -> None:
    structured = chat("refuser").with_structured_output(City)  # method="json_schema"
    with pytest.raises(OpenAIRefusalError, match="".join(REFUSAL)):
        structured.invoke(QUESTION)
