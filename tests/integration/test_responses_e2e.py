"""``/v1/responses`` with the official openai SDK: streamed and whole answers, the
``responses.stream`` helper, tools round trips, structured output, failures and
fallbacks to another provider kind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pydantic
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes import anthropic_upstream as claude
from tests.fakes.openai_upstream import Status, Stream
from tests.integration.conftest import KEY

TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]


def events_of(stream: Any) -> list[Any]:
    return list(stream)


def types(events: list[Any]) -> list[str]:
    return [e.type for e in events]


def test_a_streamed_answer_arrives_as_openais_event_sequence(
    make_gateway: Any, upstream: Any
) -> None:
    upstream.script("m", Stream(["Hello", ", ", "world"]))
    gw = make_gateway(routes={"chat": {"targets": ["up/m"]}})
    events = events_of(gw.client().responses.create(model="chat", input="Say hello", stream=True))
    assert types(events) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == (
        "Hello, world"
    )
    created, completed = events[0].response, events[-1].response
    assert created.id == completed.id and created.id.startswith("resp_")
    assert created.status == "in_progress" and completed.status == "completed"
    assert completed.output_text == "Hello, world"
    assert completed.model == "m"
    assert completed.usage is not None and completed.usage.input_tokens == 10
    assert completed.usage.output_tokens == 3
    sent = upstream.requests_for("m")[0]
    assert sent["messages"] == [{"role": "user", "content": "Say hello"}]
    assert completed.model_extra["llmgate"]["door"] == "responses"
    metrics = httpx.get(
        gw.base_url.removesuffix("/v1") + "/metrics", headers={"authorization": f"Bearer {KEY}"}
    ).text
    counted = [
        (s.labels, s.value)
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
        if s.name == "llmgate_requests_total"
    ]
    assert counted == [({"route": "chat", "status": "ok", "door": "responses"}, 1.0)]


def test_the_stream_helper_and_a_whole_response(make_gateway: Any, upstream: Any) -> None:
    upstream.script("m", Stream(["Two ", "words"]))
    gw = make_gateway(routes={"chat": {"targets": ["up/m"]}})
    client = gw.client()
    with client.responses.stream(
        model="chat", input="hi", instructions="Be brief.", max_output_tokens=50
    ) as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(texts) == final.output_text == "Two words"
    whole = client.responses.create(model="chat", input="hi", metadata={"team": "a"})
    assert whole.output_text == "Two words" and whole.status == "completed"
    assert whole.metadata == {"team": "a"}
    assert whole.output[0].type == "message" and whole.output[0].role == "assistant"
    first = upstream.requests_for("m")[0]
    assert first["messages"][0] == {"role": "system", "content": "Be brief."}
    assert first["max_completion_tokens"] == 50


def test_a_tool_call_round_trip_through_function_call_output(
    make_gateway: Any, upstream: Any
) -> None:
    upstream.script(
        "m",
        Stream([], tool_calls=[("call_1", "get_weather", '{"city": "Oslo"}')]),
        Stream(["It is sunny in Oslo."]),
    )
    gw = make_gateway(routes={"chat": {"targets": ["up/m"]}})
    client = gw.client()
    first = client.responses.create(model="chat", input="Weather in Oslo?", tools=TOOLS)
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert (call.call_id, call.name, json.loads(call.arguments)) == (
        "call_1",
        "get_weather",
        {"city": "Oslo"},
    )
    sent = upstream.requests_for("m")[0]
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    follow_up: list[Any] = [
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "type": "function_call",
            "call_id": call.call_id,
            "name": call.name,
            "arguments": call.arguments,
        },
        {"type": "function_call_output", "call_id": call.call_id, "output": '{"sky": "clear"}'},
    ]
    events = events_of(
        client.responses.create(model="chat", input=follow_up, tools=TOOLS, stream=True)
    )
    assert events[-1].response.output_text == "It is sunny in Oslo."
    messages = upstream.requests_for("m")[1]["messages"]
    assert messages[1]["role"] == "assistant"
    assert messages[1]["tool_calls"][0]["id"] == "call_1"
    assert messages[2] == {"role": "tool", "tool_call_id": "call_1", "content": '{"sky": "clear"}'}


def test_a_streamed_tool_call_is_one_function_call_item(make_gateway: Any, upstream: Any) -> None:
    upstream.script("m", Stream([], tool_calls=[("call_9", "get_weather", '{"city": "Rome"}')]))
    gw = make_gateway(routes={"chat": {"targets": ["up/m"]}})
    with gw.client().responses.stream(model="chat", input="Rome?", tools=TOOLS) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    (call,) = final.output
    assert call.type == "function_call" and json.loads(call.arguments) == {"city": "Rome"}


class Weather(pydantic.BaseModel):
    city: str
    celsius: int


def test_structured_output_reaches_the_upstream_as_a_json_schema(
    make_gateway: Any, upstream: Any
) -> None:
    upstream.script("m", Stream(['{"city": "Oslo", ', '"celsius": 21}']))
    gw = make_gateway(routes={"chat": {"targets": ["up/m"]}})
    parsed = gw.client().responses.parse(model="chat", input="Oslo?", text_format=Weather)
    assert parsed.output_parsed == Weather(city="Oslo", celsius=21)
    fmt = upstream.requests_for("m")[0]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "Weather"
    assert fmt["json_schema"]["schema"]["properties"]["celsius"] == {
        "title": "Celsius",
        "type": "integer",
    }


@pytest.fixture
def anthropic_fake() -> Iterator[claude.AnthropicUpstream]:
    with claude.AnthropicUpstream() as fake:
        yield fake


def test_a_mid_stream_cut_is_finished_by_a_claude_fallback(
    make_gateway: Any, upstream: Any, anthropic_fake: claude.AnthropicUpstream
) -> None:
    upstream.script("m", Stream(["The answer ", "is"], after=1, end="cut"))
    anthropic_fake.script("claude-x", claude.Stream(["is forty-two."]))
    providers = {
        "claude": {
            "kind": "anthropic",
            "base_url": anthropic_fake.base_url,
            "api_key_env": "UP_KEY",
        }
    }
    gw = make_gateway(
        routes={
            "chat": {"targets": ["up/m", "claude/claude-x"], "stream_fallback_mode": "prefill"}
        },
        providers=providers,
    )
    events = events_of(gw.client().responses.create(model="chat", input="?", stream=True))
    final = events[-1]
    assert final.type == "response.completed"
    assert final.response.output_text == "The answer is forty-two."
    assert final.response.model == "claude-x"
    switched = [e for e in events if (e.model_extra or {}).get("llmgate")]
    assert switched and "switch" in switched[0].model_extra["llmgate"]
    continued = anthropic_fake.requests_for("claude-x")[0]["messages"]
    assert continued[-1] == {"role": "assistant", "content": "The answer"}


def test_an_answer_that_cannot_be_completed_ends_in_response_failed(
    make_gateway: Any, upstream: Any
) -> None:
    upstream.script("m", Stream(["Half an ", "answer"], after=1, end="cut"))
    gw = make_gateway(routes={"chat": {"targets": ["up/m"], "max_retries": 0}})
    client = gw.client()
    events = events_of(client.responses.create(model="chat", input="?", stream=True))
    assert types(events)[-2:] == ["response.failed", "error"]
    failed = events[-2].response
    assert failed.status == "failed" and failed.error is not None
    assert "cut off" in failed.error.message
    assert failed.output[0].status == "incomplete"
    assert "response.completed" not in types(events)
    with client.responses.stream(model="chat", input="?") as stream:
        list(stream)
        with pytest.raises(RuntimeError, match=r"response\.completed"):
            stream.get_final_response()


def test_a_route_failing_before_any_content_is_an_http_error(
    make_gateway: Any, upstream: Any
) -> None:
    upstream.script("m", Status(503))
    gw = make_gateway(routes={"chat": {"targets": ["up/m"], "max_retries": 0}})
    with pytest.raises(openai.InternalServerError) as caught:
        list(gw.client().responses.create(model="chat", input="?", stream=True))
    assert caught.value.status_code in (502, 503)


def test_max_output_tokens_reached_is_an_incomplete_response(
    make_gateway: Any, upstream: Any
) -> None:
    upstream.script("m", Stream(["Cut", " short"], finish_reason="length"))
    gw = make_gateway(routes={"chat": {"targets": ["up/m"]}})
    events = events_of(
        gw.client().responses.create(model="chat", input="?", stream=True, max_output_tokens=2)
    )
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "chat", "input": "hi", "background": True}, "background"),
        ({"model": "chat", "input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"model": "chat"}, "input"),
        # without a database no response is kept to continue
        (
            {"model": "chat", "input": "hi", "previous_response_id": "resp_x"},
            "previous_response_id",
        ),
        (
            {"model": "chat", "input": [{"type": "message", "role": "pilot", "content": "x"}]},
            "input[0].role",
        ),
    ],
)
def test_bad_requests_are_refused_naming_the_field(
    make_gateway: Any, body: dict[str, Any], param: str
) -> None:
    gw = make_gateway(routes={"chat": {"targets": ["up/m"]}})
    response = httpx.post(
        f"{gw.base_url}/responses", json=body, headers={"authorization": f"Bearer {KEY}"}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert param.split(".")[0].split("[")[0] in error["message"]
