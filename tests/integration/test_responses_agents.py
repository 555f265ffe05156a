"""Agent frameworks that speak the Responses API, through llmgate: the OpenAI Agents SDK
and pydantic-ai's ``OpenAIResponsesModel``, each running a tool round trip."""

from __future__ import annotations

from typing import Any

import openai
from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
from pydantic_ai import Agent as PydanticAgent
from pydantic_ai.models.openai import OpenAIResponsesModel as PydanticResponsesModel
from pydantic_ai.providers.openai import OpenAIProvider

from tests.fakes.openai_upstream import Stream
from tests.integration.conftest import KEY

ANSWER = "It is sunny in Paris."


def weather_script(upstream: Any) -> None:
    upstream.script(
        "m",
        Stream([], tool_calls=[("call_1", "get_weather", '{"city": "Paris"}')]),
        Stream([ANSWER]),
    )


def tool_result(upstream: Any) -> dict[str, Any]:
    """The tool message of the follow-up the framework sent after running the tool."""
    messages = upstream.requests_for("m")[1]["messages"]
    (message,) = [m for m in messages if m["role"] == "tool"]
    return message  # type: ignore[no-any-return]


async def test_an_openai_agents_run_calls_its_tool_and_answers(
    make_gateway: Any, upstream: Any
) -> None:
    set_tracing_disabled(True)  # no trace export: the machine reaches nothing but loopback
    weather_script(upstream)
    gw = make_gateway(routes={"chat": {"targets": ["up/m"]}})
    calls: list[str] = []

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return "sunny"

    client = openai.AsyncOpenAI(base_url=gw.base_url, api_key=KEY, max_retries=0)
    agent = Agent(
        name="weather",
        instructions="Use the tool.",
        tools=[get_weather],
        model=OpenAIResponsesModel(model="chat", openai_client=client),
    )
    result = await Runner.run(agent, "Weather in Paris?")
    await client.close()
    assert result.final_output == ANSWER
    assert calls == ["Paris"]
    assert tool_result(upstream) == {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}


async def test_a_pydantic_ai_responses_model_calls_its_tool_and_answers(
    make_gateway: Any, upstream: Any
) -> None:
    weather_script(upstream)
    gw = make_gateway(routes={"chat": {"targets": ["up/m"]}})
    client = openai.AsyncOpenAI(base_url=gw.base_url, api_key=KEY, max_retries=0)
    model = PydanticResponsesModel("chat", provider=OpenAIProvider(openai_client=client))
    agent = PydanticAgent(model)
    calls: list[str] = []

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return "sunny"

    result = await agent.run("Weather in Paris?")
    await client.close()
    assert result.output == ANSWER
    assert calls == ["Paris"]
    assert tool_result(upstream)["content"] == "sunny"
