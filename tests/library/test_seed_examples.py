"""Every example of the seed library's streaming page runs unchanged on llmgate.

The examples are copied verbatim. Only their surroundings differ: the well-known
providers are pointed at fake upstreams on loopback through ``<NAME>_BASE_URL`` (as
OpenAI's and Anthropic's own SDKs honour ``OPENAI_BASE_URL``), and ``messages`` is
defined, as the page assumes.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes import anthropic_upstream, gemini_upstream
from tests.fakes.openai_upstream import FakeUpstream, Stream

SYNC_STREAMING = """
from llmgate import completion

for chunk in completion("gpt-4o-mini", messages, stream=True):
    print(chunk.delta, end="", flush=True)
print()  # newline at end
"""

ASYNC_STREAMING = """
import asyncio
from llmgate import acompletion

async def stream_response():
    async for chunk in await acompletion(
        "groq/llama-3.3-70b-versatile",
        messages,
        stream=True,
    ):
        print(chunk.delta, end="", flush=True)
    print()

asyncio.run(stream_response())
"""

COLLECTING = """
chunks = []
for chunk in completion("gpt-4o-mini", messages, stream=True):
    chunks.append(chunk.delta)
    print(chunk.delta, end="", flush=True)

full_text = "".join(chunks)
"""

MIDDLEWARE = """
from llmgate import LLMGate
from llmgate.middleware import LoggingMiddleware, RetryMiddleware

gate = LLMGate(middleware=[
    RetryMiddleware(max_retries=3),
    LoggingMiddleware(),
])

for chunk in gate.stream("claude-3-5-haiku-20241022", messages):
    print(chunk.delta, end="", flush=True)
"""

FALLBACK = """
resp = completion(
    model=["gpt-4o-mini", "groq/llama-3.1-8b-instant", "gemini-2.0-flash"],
    messages=messages,
    stream=True,
    stream_fallback_mode="prefill", # Strategies: "restart", "prefill", "user_turn"
)

for chunk in resp:
    print(chunk.delta, end="", flush=True)
"""

MESSAGES = [{"role": "user", "content": "Say hello."}]


class Upstreams:
    def __init__(self) -> None:
        self.openai = FakeUpstream()
        self.anthropic = anthropic_upstream.AnthropicUpstream()
        self.gemini = gemini_upstream.GeminiUpstream()


@pytest.fixture
def upstreams(monkeypatch: pytest.MonkeyPatch) -> Iterator[Upstreams]:
    up = Upstreams()
    with up.openai, up.anthropic, up.gemini:
        monkeypatch.setenv("OPENAI_BASE_URL", up.openai.base_url)
        monkeypatch.setenv("GROQ_BASE_URL", up.openai.base_url)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", up.anthropic.base_url)
        monkeypatch.setenv("GEMINI_BASE_URL", up.gemini.base_url)
        for name in ("OPENAI", "GROQ", "ANTHROPIC", "GEMINI"):
            monkeypatch.setenv(f"{name}_API_KEY", f"key-{name.lower()}")
        yield up


def run(*examples: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"messages": MESSAGES}
    for example in examples:
        exec(textwrap.dedent(example), namespace)  # the page's code, as written
    return namespace


def test_sync_streaming_example(upstreams: Upstreams, capsys: pytest.CaptureFixture[str]) -> None:
    upstreams.openai.script("gpt-4o-mini", Stream(["Hello", ", world"]))
    run(SYNC_STREAMING)
    assert capsys.readouterr().out == "Hello, world\n"
    assert upstreams.openai.headers_for("gpt-4o-mini")[0]["authorization"] == "Bearer key-openai"


def test_async_streaming_example(upstreams: Upstreams, capsys: pytest.CaptureFixture[str]) -> None:
    upstreams.openai.script("llama-3.3-70b-versatile", Stream(["Fast ", "hello"]))
    run(ASYNC_STREAMING)
    assert capsys.readouterr().out == "Fast hello\n"
    assert upstreams.openai.headers_for("llama-3.3-70b-versatile")[0]["authorization"] == (
        "Bearer key-groq"
    )


def test_collecting_example(upstreams: Upstreams, capsys: pytest.CaptureFixture[str]) -> None:
    upstreams.openai.script("gpt-4o-mini", Stream(["Col", "lected"]))
    namespace = run(SYNC_STREAMING.split("for chunk")[0], COLLECTING)
    assert namespace["full_text"] == "Collected"
    assert capsys.readouterr().out == "Collected"


def test_middleware_example_streams_claude_through_retry_and_logging(
    upstreams: Upstreams, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="llmgate")
    upstreams.anthropic.script(
        "claude-3-5-haiku-20241022",
        anthropic_upstream.Status(529),
        anthropic_upstream.Stream(["Hi from ", "Claude"]),
    )
    namespace = run(MIDDLEWARE)
    namespace["gate"].close()
    assert capsys.readouterr().out == "Hi from Claude"
    assert any("outcome=ok" in r.getMessage() for r in caplog.records if r.name == "llmgate")


def test_fallback_example_continues_mid_stream_with_prefill(
    upstreams: Upstreams, capsys: pytest.CaptureFixture[str]
) -> None:
    upstreams.openai.script("gpt-4o-mini", Stream(["The primary ", "breaks"], end="cut", after=1))
    upstreams.openai.script("llama-3.1-8b-instant", Stream(["breaks"], end="cut", after=0))
    upstreams.gemini.script("gemini-2.0-flash", gemini_upstream.Stream(["and Gemini finishes."]))
    run(SYNC_STREAMING.split("for chunk")[0], FALLBACK)
    assert capsys.readouterr().out == "The primary and Gemini finishes."
    sent = upstreams.gemini.requests_for("gemini-2.0-flash")[0]
    # Gemini takes no prefill: the continuation arrives as a user turn.
    assert sent["contents"][-2] == {"role": "model", "parts": [{"text": "The primary "}]}
