"""The Anthropic-compatible endpoint end to end: the official ``anthropic`` SDK, a real
gateway on loopback, and the fake OpenAI upstream behind it (any route works, whatever
its targets' providers speak)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx
import pytest

from tests.fakes import anthropic_upstream as claude
from tests.fakes.anthropic_upstream import AnthropicUpstream
from tests.fakes.openai_upstream import Status, Stream

KEY = "sk-test-master"
MESSAGES: list[Any] = [{"role": "user", "content": "Tell me something."}]


Client = Callable[..., anthropic.Anthropic]


@pytest.fixture
def client() -> Iterator[Client]:
    """``client(gw, **options)``: an SDK client for a gateway, closed after the test."""
    made: list[anthropic.Anthropic] = []

    def make(gw: Any, **kwargs: Any) -> anthropic.Anthropic:
        options = {"api_key": KEY, **kwargs}
        # The SDK appends "/v1/messages" to its base URL.
        sdk = anthropic.Anthropic(
            base_url=gw.base_url.removesuffix("/v1"), max_retries=0, **options
        )
        made.append(sdk)
        return sdk

    yield make
    for sdk in made:
        sdk.close()


@pytest.fixture
def claude_upstream() -> Iterator[AnthropicUpstream]:
    with AnthropicUpstream() as fake:
        yield fake


def claude_provider(fake: AnthropicUpstream) -> dict[str, Any]:
    """A provider ``claude`` of kind ``anthropic`` in front of the fake Anthropic API."""
    return {"claude": {"kind": "anthropic", "base_url": fake.base_url, "api_key_env": "UP_KEY"}}


def stream_events(sdk: anthropic.Anthropic, model: str, **kwargs: Any) -> list[Any]:
    kwargs.setdefault("messages", MESSAGES)
    return list(sdk.messages.create(model=model, max_tokens=256, stream=True, **kwargs))


def shown_text(events: list[Any]) -> str:
    """Consume a stream as a UI would: append text deltas, clear on a reset marker."""
    text = ""
    for event in events:
        if (getattr(event, "llmgate", None) or {}).get("reset"):
            text = ""
        if event.type == "content_block_delta" and event.delta.type == "text_delta":
            text += event.delta.text
    return text


def post(gw: Any, body: bytes | dict[str, Any], **headers: str) -> httpx.Response:
    headers = {"x-api-key": KEY, "content-type": "application/json", **headers}
    url = f"{gw.base_url}/messages"
    if isinstance(body, bytes):
        return httpx.post(url, content=body, headers=headers)
    return httpx.post(url, json=body, headers=headers)


def sse_events(body: str) -> list[str]:
    return [line.removeprefix("event: ") for line in body.splitlines() if line.startswith("event:")]


# --- the happy paths -----------------------------------------------------------------


def test_answers_one_message_naming_the_target_that_answered(
    client: Client, make_gateway: Any, upstream: Any
) -> None:
    upstream.script("m-json", Stream(["Hi", " there"]))
    gw = make_gateway(routes={"chat": {"targets": ["up/m-json"]}})
    raw = client(gw).messages.with_raw_response.create(
        model="chat", max_tokens=256, messages=MESSAGES
    )
    message = raw.parse()
    assert message.id.startswith("msg_") and message.type == "message"
    assert message.role == "assistant" and message.model == "up/m-json"
    assert [(b.type, b.text) for b in message.content] == [("text", "Hi there")]  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert (message.usage.input_tokens, message.usage.output_tokens) == (10, 2)
    assert message.usage.cache_read_input_tokens == 0
    assert raw.headers["x-llmgate-request-id"] == message.id
    assert raw.headers["x-llmgate-attempts"] == "up/m-json:ok"
    assert message.llmgate["route"] == "chat"  # type: ignore[attr-defined]


def test_streams_text_through_the_sdks_stream_helper(
    client: Client, make_gateway: Any, upstream: Any
) -> None:
    upstream.script("m-ok", Stream(["Hello", ", ", "world"]))
    gw = make_gateway(routes={"chat": {"targets": ["up/m-ok"]}})
    with client(gw).messages.stream(model="chat", max_tokens=256, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        message = stream.get_final_message()
    assert text == "Hello, world"
    assert message.model == "up/m-ok" and message.stop_reason == "end_turn"
    assert message.content[0].text == "Hello, world"  # type: ignore[union-attr]
    assert (message.usage.input_tokens, message.usage.output_tokens) == (10, 3)
    sent = upstream.requests_for("m-ok")[0]
    assert sent["messages"] == MESSAGES and sent["max_tokens"] == 256


def test_streams_anthropics_event_sequence(
    client: Client, make_gateway: Any, upstream: Any
) -> None:
    upstream.script("m-seq", Stream(["a", "b"]))
    gw = make_gateway()
    events = stream_events(client(gw), "up/m-seq")
    assert [e.type for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    start, block = events[0], events[1]
    assert start.message.id.startswith("msg_") and start.message.model == "up/m-seq"
    assert start.message.content == [] and start.message.usage.input_tokens == 0
    assert block.index == 0 and block.content_block.type == "text"
    delta = events[-2]
    assert delta.delta.stop_reason == "end_turn" and delta.usage.output_tokens == 2
    assert delta.llmgate["attempts"][0]["outcome"] == "ok"


def test_system_prompt_and_sampling_parameters_are_forwarded(
    client: Client, make_gateway: Any, upstream: Any
) -> None:
    upstream.script("m-params", Stream(["ok"]))
    gw = make_gateway()
    client(gw).messages.create(
        model="up/m-params",
        max_tokens=64,
        system="Be brief.",
        messages=MESSAGES,
        stop_sequences=["END"],
        metadata={"user_id": "u-1"},
        # Parameters this SDK version no longer names still reach the API as before.
        extra_body={"temperature": 0.2, "top_p": 0.9, "top_k": 5},
    )
    sent = upstream.requests_for("m-params")[0]
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, *MESSAGES]
    assert (sent["max_tokens"], sent["temperature"], sent["top_p"]) == (64, 0.2, 0.9)
    assert sent["stop"] == ["END"]
    assert "metadata" not in sent and "top_k" not in sent


def test_system_blocks_and_images_become_openai_content_parts(
    client: Client, make_gateway: Any, upstream: Any
) -> None:
    upstream.script("m-parts", Stream(["A cat."]))
    gw = make_gateway()
    client(gw).messages.create(
        model="up/m-parts",
        max_tokens=64,
        system=[{"type": "text", "text": "One."}, {"type": "text", "text": "Two."}],
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"},
                    },
                    {"type": "image", "source": {"type": "url", "url": "https://x.test/c.png"}},
                ],
            }
        ],
    )
    system, user = upstream.requests_for("m-parts")[0]["messages"]
    assert system == {
        "role": "system",
        "content": [{"type": "text", "text": "One."}, {"type": "text", "text": "Two."}],
    }
    assert user["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
        {"type": "image_url", "image_url": {"url": "https://x.test/c.png"}},
    ]


def test_a_trailing_assistant_message_is_continued_as_a_prefill(
    client: Client, make_gateway: Any, upstream: Any
) -> None:
    upstream.script("m-prefill", Stream(['"a": 1}']))
    gw = make_gateway()
    message = client(gw).messages.create(
        model="up/m-prefill",
        max_tokens=64,
        messages=[*MESSAGES, {"role": "assistant", "content": "{"}],
    )
    assert message.content[0].text == '"a": 1}'  # type: ignore[union-attr]
    assert upstream.requests_for("m-prefill")[0]["messages"][-1] == {
        "role": "assistant",
        "content": "{",
    }


# --- tools, both directions ------------------------------------------------------------

TOOLS: list[Any] = [
    {
        "name": "get_weather",
        "description": "The weather in a city.",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


def test_tool_calls_stream_as_tool_use_blocks(
    client: Client, make_gateway: Any, upstream: Any
) -> None:
    upstream.script(
        "m-tools",
        Stream(["Checking."], tool_calls=[("call_1", "get_weather", '{"city": "Paris"}')]),
    )
    gw = make_gateway()
    with client(gw).messages.stream(
        model="up/m-tools",
        max_tokens=256,
        messages=MESSAGES,
        tools=TOOLS,
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True},
    ) as stream:
        events = list(stream)
        message = stream.get_final_message()
    text, call = message.content
    assert text.type == "text" and text.text == "Checking."
    assert call.type == "tool_use"
    assert (call.id, call.name, call.input) == ("call_1", "get_weather", {"city": "Paris"})
    assert message.stop_reason == "tool_use"
    # a tool call reaches the client whole, once its attempt has ended cleanly
    [json_delta] = [e for e in events if e.type == "input_json"]
    assert json_delta.snapshot == {"city": "Paris"}
    assert upstream.requests_for("m-tools")[0]["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": TOOLS[0]["input_schema"],
                "description": "The weather in a city.",
            },
        }
    ]
    sent = upstream.requests_for("m-tools")[0]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False


def test_tool_calls_in_one_message(client: Client, make_gateway: Any, upstream: Any) -> None:
    upstream.script(
        "m-tools-json",
        Stream(
            [],
            tool_calls=[
                ("call_1", "get_weather", '{"city": "Paris"}'),
                ("call_2", "get_weather", '{"city": "Oslo"}'),
            ],
        ),
    )
    gw = make_gateway()
    message = client(gw).messages.create(
        model="up/m-tools-json",
        max_tokens=256,
        messages=MESSAGES,
        tools=TOOLS,
        tool_choice={"type": "any"},
    )
    assert [(b.type, b.id, b.input) for b in message.content] == [  # type: ignore[union-attr]
        ("tool_use", "call_1", {"city": "Paris"}),
        ("tool_use", "call_2", {"city": "Oslo"}),
    ]
    assert message.stop_reason == "tool_use"
    assert upstream.requests_for("m-tools-json")[0]["tool_choice"] == "required"


def test_tool_results_are_sent_back_as_tool_messages(
    client: Client, make_gateway: Any, upstream: Any
) -> None:
    upstream.script("m-toolres", Stream(["It is sunny in Paris."]))
    gw = make_gateway()
    message = client(gw).messages.create(
        model="up/m-toolres",
        max_tokens=256,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "I should ask.", "signature": "sig"},
                    {"type": "text", "text": "Let me check."},
                    {
                        "type": "tool_use",
                        "id": "call_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"},
                    {"type": "text", "text": "Summarise."},
                ],
            },
        ],
    )
    assert message.content[0].text == "It is sunny in Paris."  # type: ignore[union-attr]
    assert upstream.requests_for("m-toolres")[0]["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "user", "content": "Summarise."},
    ]


# --- errors, in Anthropic's shape -----------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", None),
        (b'{"model": "up/x", "messages": [{"role": "user", "content": "hi"}]}', "max_tokens"),
        (b'{"model": "up/x", "max_tokens": 8, "messages": []}', "messages"),
        (
            b'{"model": "up/x", "max_tokens": 8, "messages": [{"role": "robot", "content": "hi"}]}',
            "messages[0].role",
        ),
        (
            b'{"model": "up/x", "max_tokens": 8, "messages": '
            b'[{"role": "user", "content": [{"type": "document"}]}]}',
            "messages[0].content[0].type",
        ),
        (
            b'{"model": "up/x", "max_tokens": 8, "messages": '
            b'[{"role": "user", "content": [{"type": "tool_use", "id": "c", "name": "n", '
            b'"input": {}}]}]}',
            "messages[0].content[0].type",
        ),
        (
            b'{"model": "up/x", "max_tokens": 8, "mcp_servers": [], '
            b'"messages": [{"role": "user", "content": "hi"}]}',
            "mcp_servers",
        ),
    ],
    ids=[
        "not-json",
        "no-max-tokens",
        "no-messages",
        "bad-role",
        "document",
        "misplaced",
        "unknown",
    ],
)
def test_bad_requests_get_invalid_request_errors_naming_the_field(
    make_gateway: Any, body: bytes, field: str | None
) -> None:
    gw = make_gateway()
    response = post(gw, body)
    assert response.status_code == 400
    payload = response.json()
    assert payload["type"] == "error" and payload["error"]["type"] == "invalid_request_error"
    if field is not None:
        assert payload["error"]["message"].startswith(f"{field}: ")


def test_sdk_raises_bad_request_error_for_a_bad_field(client: Client, make_gateway: Any) -> None:
    gw = make_gateway()
    with pytest.raises(anthropic.BadRequestError) as info:
        client(gw).messages.create(model="up/x", max_tokens=0, messages=MESSAGES)
    assert info.value.body["error"]["message"].startswith("max_tokens: ")  # type: ignore[index]


def test_wrong_key_raises_authentication_error(client: Client, make_gateway: Any) -> None:
    gw = make_gateway()
    with pytest.raises(anthropic.AuthenticationError) as info:
        client(gw, api_key="wrong").messages.create(model="up/x", max_tokens=8, messages=MESSAGES)
    assert info.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    response = httpx.post(
        f"{gw.base_url}/messages", json={"model": "up/x", "max_tokens": 8, "messages": MESSAGES}
    )
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_a_bearer_token_is_accepted_too(client: Client, make_gateway: Any, upstream: Any) -> None:
    upstream.script("m-bearer", Stream(["ok"]))
    gw = make_gateway()
    message = client(gw, api_key=None, auth_token=KEY).messages.create(
        model="up/m-bearer", max_tokens=8, messages=MESSAGES
    )
    assert message.content[0].text == "ok"  # type: ignore[union-attr]
    body = {"model": "up/m-bearer", "max_tokens": 8, "messages": MESSAGES}
    headers = {"authorization": f"Bearer {KEY}"}
    response = httpx.post(f"{gw.base_url}/messages", json=body, headers=headers)
    assert response.status_code == 200 and response.json()["content"][0]["text"] == "ok"


def test_unknown_model_raises_not_found_error(client: Client, make_gateway: Any) -> None:
    gw = make_gateway()
    with pytest.raises(anthropic.NotFoundError) as info:
        client(gw).messages.create(model="nope", max_tokens=8, messages=MESSAGES)
    assert info.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


@pytest.mark.parametrize("stream", [False, True], ids=["message", "stream"])
def test_rate_limited_everywhere_raises_rate_limit_error(
    client: Client, make_gateway: Any, upstream: Any, stream: bool
) -> None:
    upstream.script("m-429a", Status(429, headers={"retry-after": "60"}))
    upstream.script("m-429b", Status(429, headers={"retry-after": "60"}))
    gw = make_gateway(routes={"chat": {"targets": ["up/m-429a", "up/m-429b"]}})
    with pytest.raises(anthropic.RateLimitError) as info:
        client(gw).messages.create(model="chat", max_tokens=8, messages=MESSAGES, stream=stream)
    body: Any = info.value.body
    assert body["error"]["type"] == "rate_limit_error"
    assert [a["target"] for a in body["llmgate"]["attempts"]] == ["up/m-429a", "up/m-429b"]


def test_every_target_down_raises_an_api_error(
    client: Client, make_gateway: Any, upstream: Any
) -> None:
    upstream.script("m-down", Status(503))
    gw = make_gateway(routes={"chat": {"targets": ["up/m-down"], "max_retries": 0}})
    with pytest.raises(anthropic.InternalServerError) as info:
        client(gw).messages.create(model="chat", max_tokens=8, messages=MESSAGES)
    assert info.value.status_code == 502
    assert info.value.body["error"]["type"] == "api_error"  # type: ignore[index]


def test_every_target_overloaded_raises_overloaded_error(
    client: Client, make_gateway: Any, upstream: Any
) -> None:
    upstream.script("m-busy", Status(529))
    gw = make_gateway(routes={"chat": {"targets": ["up/m-busy"], "max_retries": 0}})
    with pytest.raises(anthropic.OverloadedError) as info:
        client(gw).messages.create(model="chat", max_tokens=8, messages=MESSAGES)
    assert info.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


def test_errors_litestar_raises_on_this_path_are_anthropic_shaped(
    client: Client, make_gateway: Any
) -> None:
    gw = make_gateway()
    too_large = post(gw, b"x" * (11 * 1024 * 1024))
    wrong_method = httpx.get(f"{gw.base_url}/messages", headers={"x-api-key": KEY})
    assert (too_large.status_code, wrong_method.status_code) == (413, 405)
    assert too_large.json()["error"]["type"] == "request_too_large"
    assert wrong_method.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "Method Not Allowed"},
    }
    with pytest.raises(anthropic.NotFoundError) as info:  # not implemented by llmgate
        client(gw).messages.count_tokens(model="up/x", messages=MESSAGES)
    assert info.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    # The OpenAI endpoints keep OpenAI's shape.
    assert "type" not in httpx.get(f"{gw.base_url}/chat/completions").json()


# --- failures after the first token -------------------------------------------------


def test_mid_stream_cut_continues_with_prefill_and_says_so(
    client: Client, make_gateway: Any, upstream: Any
) -> None:
    upstream.script("m-mid", Stream(["The quick ", "brown fox ", "jumps"], end="cut", after=2))
    upstream.script("m-cont", Stream(["jumps over ", "the lazy dog."]))
    gw = make_gateway(
        routes={"chat": {"targets": ["up/m-mid", "up/m-cont"], "stream_fallback_mode": "prefill"}}
    )
    events = stream_events(client(gw), "chat")
    assert shown_text(events) == "The quick brown fox jumps over the lazy dog."
    switched = [
        e.llmgate["switch"] for e in events if "switch" in (getattr(e, "llmgate", None) or {})
    ]
    assert switched[0]["from_target"] == "up/m-mid" and switched[0]["to_target"] == "up/m-cont"
    assert switched[0]["reason"] == "stream_interrupted"
    assert upstream.requests_for("m-cont")[0]["messages"][-1] == {
        "role": "assistant",
        "content": "The quick brown fox ",
    }
    assert [e.type for e in events].count("content_block_start") == 1  # one block, continued
    assert events[-1].type == "message_stop"


def test_restart_whose_new_answer_differs_continues_in_the_same_text_block(
    client: Client, make_gateway: Any, upstream: Any
) -> None:
    upstream.script("m-s1", Stream(["First ", "draft"], end="cut", after=1))
    upstream.script("m-s2", Stream(["Second ", "answer."]), Stream(["draft, continued."]))
    gw = make_gateway(
        routes={"chat": {"targets": ["up/m-s1", "up/m-s2"], "stream_fallback_mode": "restart"}}
    )
    with client(gw).messages.stream(model="chat", max_tokens=64, messages=MESSAGES) as stream:
        message = stream.get_final_message()
    assert [b.text for b in message.content] == ["First draft, continued."]  # type: ignore[union-attr]
    restart, continuation = upstream.requests_for("m-s2")
    assert restart["messages"] == MESSAGES
    assert continuation["messages"][len(MESSAGES)] == {"role": "assistant", "content": "First "}


def test_a_stream_that_cannot_be_completed_raises_and_never_stops_cleanly(
    client: Client, make_gateway: Any, upstream: Any
) -> None:
    upstream.script("m-t1", Stream(["Partial ", "text"], end="cut", after=1))
    gw = make_gateway(
        routes={"chat": {"targets": ["up/m-t1", "up/m-t2"], "stream_fallback_mode": "terminate"}}
    )
    seen: list[Any] = []
    with pytest.raises(anthropic.APIStatusError) as info:
        for event in client(gw).messages.create(
            model="chat", max_tokens=8, messages=MESSAGES, stream=True
        ):
            seen.append(event)
    assert shown_text(seen) == "Partial "
    body: Any = info.value.body
    assert body["type"] == "error" and body["error"]["type"] == "api_error"
    assert body["error"]["message"].startswith("The answer was cut off")
    with httpx.stream(
        "POST",
        f"{gw.base_url}/messages",
        headers={"x-api-key": KEY},
        json={"model": "chat", "max_tokens": 8, "messages": MESSAGES, "stream": True},
    ) as response:
        names = sse_events(response.read().decode())
    assert response.status_code == 200
    assert names[-1] == "error" and "message_stop" not in names
    assert upstream.requests_for("m-t2") == []


# --- any route, whatever its targets speak ----------------------------------------------


def test_a_route_to_an_anthropic_target_keeps_tools_and_tool_results(
    client: Client, make_gateway: Any, claude_upstream: AnthropicUpstream
) -> None:
    claude_upstream.script(
        "claude-x",
        claude.Stream(["Checking."], tool_uses=[("toolu_1", "get_weather", '{"city": "Oslo"}')]),
    )
    gw = make_gateway(providers=claude_provider(claude_upstream))
    messages: list[Any] = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_0",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                }
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_0", "content": "sunny"}],
        },
    ]
    with client(gw).messages.stream(
        model="claude/claude-x", max_tokens=99, system="Be brief.", messages=messages, tools=TOOLS
    ) as stream:
        message = stream.get_final_message()
    assert message.model == "claude/claude-x" and message.stop_reason == "tool_use"
    assert [b.type for b in message.content] == ["text", "tool_use"]
    assert message.content[1].input == {"city": "Oslo"}  # type: ignore[union-attr]
    assert (message.usage.input_tokens, message.usage.output_tokens) == (10, 2)
    sent = claude_upstream.requests_for("claude-x")[0]
    assert sent["system"] == "Be brief." and sent["max_tokens"] == 99
    assert sent["messages"] == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_0",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                }
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_0", "content": "sunny"}],
        },
    ]
    assert sent["tools"] == TOOLS


def test_a_cut_anthropic_stream_continues_on_an_openai_target(
    client: Client, make_gateway: Any, upstream: Any, claude_upstream: AnthropicUpstream
) -> None:
    claude_upstream.script(
        "claude-cut", claude.Stream(["Roses are red, ", "violets"], end="cut", after=1)
    )
    upstream.script("m-rescue", Stream(["violets are blue."]))
    gw = make_gateway(
        providers=claude_provider(claude_upstream),
        routes={
            "chat": {
                "targets": ["claude/claude-cut", "up/m-rescue"],
                "stream_fallback_mode": "prefill",
            }
        },
    )
    events = stream_events(client(gw), "chat")
    assert shown_text(events) == "Roses are red, violets are blue."
    assert events[0].message.model == "claude/claude-cut"
    record = events[-2].llmgate
    assert [(a["target"], a["outcome"]) for a in record["attempts"]] == [
        ("claude/claude-cut", "failed"),
        ("up/m-rescue", "ok"),
    ]
    assert upstream.requests_for("m-rescue")[0]["messages"][-1] == {
        "role": "assistant",
        "content": "Roses are red, ",
    }
