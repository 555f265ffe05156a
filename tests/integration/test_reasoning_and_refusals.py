"""Reasoning and refusals reach clients through both doors, streamed or not, in the
fields their SDKs read: ``reasoning_content`` and ``refusal`` on chat completions,
``thinking`` blocks and ``stop_reason: "refusal"`` on Messages."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from tests.fakes import anthropic_upstream as claude
from tests.fakes.openai_upstream import Stream
from tests.integration._messages import claude_provider

MESSAGES: list[Any] = [{"role": "user", "content": "The capital of France?"}]
THINKING = Stream(["Paris."], reasoning=["The capital ", "is Paris."])
REFUSING = Stream([], refusal=["I can't ", "help with that."])


def test_chat_completions_stream_reasoning_apart_from_the_answer(
    make_gateway: Any, upstream: Any
) -> None:
    upstream.script("m-think", THINKING)
    gw = make_gateway()
    chunks = list(
        gw.client().chat.completions.create(model="up/m-think", messages=MESSAGES, stream=True)
    )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    reasoning = "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas)
    assert reasoning == "The capital is Paris."
    assert "".join(d.content or "" for d in deltas) == "Paris."
    assert deltas[0].role == "assistant"


def test_a_whole_completion_holds_its_reasoning(make_gateway: Any, upstream: Any) -> None:
    upstream.script("m-think", Stream(["Paris."], reasoning=["Hm."], reasoning_field="reasoning"))
    gw = make_gateway()
    completion = gw.client().chat.completions.create(model="up/m-think", messages=MESSAGES)
    message = completion.choices[0].message
    assert (message.content, message.reasoning_content) == ("Paris.", "Hm.")  # type: ignore[attr-defined]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_refusal_reaches_parse_as_the_refusal(
    make_gateway: Any, upstream: Any, stream: bool
) -> None:
    upstream.script("m-refuse", REFUSING)
    gw = make_gateway()

    class City(pydantic.BaseModel):
        name: str

    sdk = gw.client()
    if stream:
        with sdk.chat.completions.stream(
            model="up/m-refuse", messages=MESSAGES, response_format=City
        ) as events:
            message = events.get_final_completion().choices[0].message
    else:
        message = (
            sdk.chat.completions.parse(model="up/m-refuse", messages=MESSAGES, response_format=City)
            .choices[0]
            .message
        )
    assert message.refusal == "I can't help with that."
    assert message.parsed is None and message.content is None


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_messages_hold_reasoning_as_a_thinking_block_before_the_text(
    make_gateway: Any, upstream: Any, stream: bool
) -> None:
    upstream.script("m-think", THINKING)
    gw = make_gateway()
    sdk = gw.anthropic()
    if stream:
        with sdk.messages.stream(model="up/m-think", max_tokens=64, messages=MESSAGES) as events:
            message = events.get_final_message()
    else:
        message = sdk.messages.create(model="up/m-think", max_tokens=64, messages=MESSAGES)
    thinking, text = message.content
    assert thinking.type == "thinking" and thinking.thinking == "The capital is Paris."
    assert text.type == "text" and text.text == "Paris."
    assert message.stop_reason == "end_turn"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_an_anthropic_upstreams_signed_thinking_keeps_its_signature(
    make_gateway: Any, claude_upstream: Any, stream: bool
) -> None:
    claude_upstream.script("claude-think", claude.Stream(["Paris."], thinking="Easy."))
    gw = make_gateway(providers=claude_provider(claude_upstream))
    sdk = gw.anthropic()
    request: dict[str, Any] = {"model": "claude/claude-think", "max_tokens": 64}
    if stream:
        with sdk.messages.stream(messages=MESSAGES, **request) as events:
            message = events.get_final_message()
    else:
        message = sdk.messages.create(messages=MESSAGES, **request)
    thinking, text = message.content
    assert (thinking.type, thinking.thinking, thinking.signature) == ("thinking", "Easy.", "c2ln")  # type: ignore[union-attr]
    assert text.text == "Paris."  # type: ignore[union-attr]
    # and on chat completions, the same thinking as reasoning_content
    completion = gw.client().chat.completions.create(messages=MESSAGES, **request)
    assert completion.choices[0].message.reasoning_content == "Easy."  # type: ignore[attr-defined]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_messages_say_a_refusal_is_one(make_gateway: Any, upstream: Any, stream: bool) -> None:
    upstream.script("m-refuse", REFUSING)
    gw = make_gateway()
    sdk = gw.anthropic()
    if stream:
        with sdk.messages.stream(model="up/m-refuse", max_tokens=64, messages=MESSAGES) as events:
            message = events.get_final_message()
    else:
        message = sdk.messages.create(model="up/m-refuse", max_tokens=64, messages=MESSAGES)
    assert message.stop_reason == "refusal"
    assert [(b.type, b.text) for b in message.content] == [("text", "I can't help with that.")]  # type: ignore[union-attr]


def test_reasoning_of_an_attempt_that_failed_stays_a_block_of_its_own(
    make_gateway: Any, upstream: Any
) -> None:
    upstream.script(
        "m-again",
        Stream(["lost"], reasoning=["First thoughts."], end="cut", after=0),
        Stream(["Paris."], reasoning=["Second thoughts."]),
    )
    gw = make_gateway()
    with gw.anthropic().messages.stream(
        model="up/m-again", max_tokens=64, messages=MESSAGES
    ) as events:
        message = events.get_final_message()
    assert [
        (b.type, getattr(b, "thinking", None) or getattr(b, "text", None)) for b in message.content
    ] == [
        ("thinking", "First thoughts."),
        ("thinking", "Second thoughts."),
        ("text", "Paris."),
    ]
