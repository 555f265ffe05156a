"""The official OpenAI SDK against routes whose targets are Claude and Gemini: the
translation is invisible, and a stream cut on one provider is finished by another."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes import anthropic_upstream as claude
from tests.fakes import gemini_upstream as gemini

MESSAGES: list[Any] = [{"role": "user", "content": "Tell me something."}]


@pytest.fixture
def fakes() -> Iterator[tuple[claude.AnthropicUpstream, gemini.GeminiUpstream]]:
    with claude.AnthropicUpstream() as c, gemini.GeminiUpstream() as g:
        yield c, g


def providers(c: claude.AnthropicUpstream, g: gemini.GeminiUpstream) -> dict[str, Any]:
    return {
        "claude": {"kind": "anthropic", "base_url": c.base_url, "api_key_env": "UP_KEY"},
        "gem": {"kind": "gemini", "base_url": g.base_url, "api_key_env": "UP_KEY"},
    }


def test_openai_client_streams_from_a_claude_target(make_gateway: Any, fakes: Any) -> None:
    c, g = fakes
    c.script("claude-x", claude.Stream(["Hello ", "from Claude"], input_tokens=7))
    gw = make_gateway(routes={"chat": {"targets": ["claude/claude-x"]}}, providers=providers(c, g))
    chunks = list(
        gw.client().chat.completions.create(
            model="chat", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == (
        "Hello from Claude"
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 7
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"
    assert c.requests_for("claude-x")[0]["messages"] == [
        {"role": "user", "content": "Tell me something."}
    ]


def test_openai_client_gets_tool_calls_from_a_gemini_target(make_gateway: Any, fakes: Any) -> None:
    c, g = fakes
    g.script("gemini-x", gemini.Stream([], function_calls=[("get_weather", {"city": "Oslo"})]))
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    gw = make_gateway(routes={"chat": {"targets": ["gem/gemini-x"]}}, providers=providers(c, g))
    completion = gw.client().chat.completions.create(model="chat", messages=MESSAGES, tools=tools)  # type: ignore[arg-type]
    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert call.function.arguments.replace(" ", "") == '{"city":"Oslo"}'  # type: ignore[union-attr]
    assert completion.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("mode", ["prefill", "user_turn"])
def test_a_claude_stream_cut_mid_answer_is_finished_by_gemini(
    make_gateway: Any, fakes: Any, mode: str
) -> None:
    c, g = fakes
    c.script(f"claude-{mode}", claude.Stream(["Rivers run ", "to the sea"], end="cut", after=1))
    g.script(f"gemini-{mode}", gemini.Stream(["to the sea."]))
    gw = make_gateway(
        routes={
            "chat": {
                "targets": [f"claude/claude-{mode}", f"gem/gemini-{mode}"],
                "stream_fallback_mode": mode,
            }
        },
        providers=providers(c, g),
    )
    chunks = list(gw.client().chat.completions.create(model="chat", messages=MESSAGES, stream=True))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "Rivers run to the sea."
    switch = next(
        ch.llmgate["switch"]
        for ch in chunks
        if getattr(ch, "llmgate", None) and "switch" in ch.llmgate
    )
    assert (switch["from_target"], switch["to_target"]) == (
        f"claude/claude-{mode}",
        f"gem/gemini-{mode}",
    )
    assert switch["reason"] == "stream_interrupted"
    # Gemini declares no prefill: both modes reach it as a user turn after the partial text.
    contents = g.requests_for(f"gemini-{mode}")[0]["contents"]
    assert contents[-2] == {"role": "model", "parts": [{"text": "Rivers run "}]}
    assert contents[-1]["role"] == "user"
    assert chunks[-1].model == f"gemini-{mode}"
