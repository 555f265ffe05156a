"""The failures every client is put through, as routes of one gateway and the fake
models behind them.

Each scenario is a route named after it, whose targets are models of the fake upstreams
that answer as the scenario needs. A fake model answers what it is asked, like a real
one: the whole answer to the original question, a continuation to a prefill or to a
request to continue; so whichever way llmgate resumes a cut stream, the client should
end up with `ANSWER`, and never with the abandoned draft glued to a new answer.
"""

from __future__ import annotations

from typing import Any

from tests.fakes import anthropic_upstream as claude
from tests.fakes.openai_upstream import FakeUpstream, Status, Stream

__all__ = [
    "ANSWER",
    "BROKEN_ARGUMENTS",
    "DEAD_ATTEMPTS",
    "QUESTION",
    "REASONING",
    "REFUSAL",
    "RESTARTED",
    "RETRY_AFTER",
    "ROUTES",
    "WEATHER_ARGUMENTS",
    "WEATHER_TOOL",
    "setup",
]

QUESTION = "What is the capital of France?"
DRAFT = ["The capital ", "of France"]
"""What the first attempt streams before its connection is cut."""
CONTINUATION = " is Paris."
"""How the fake model continues the draft (after a prefill or a request to continue)."""
ANSWER = "".join(DRAFT) + CONTINUATION
RESTARTED = "Paris is the capital of France."
"""The fake model's second, different answer to the original question."""

WEATHER_ARGUMENTS = '{"city": "Paris"}'
BROKEN_ARGUMENTS = '{"city'
"""The first piece of the arguments, after which the first tool-call stream is cut."""
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TOOL_RESULT_ANSWER = "It is sunny in Paris."

REASONING = ["The user asks about France. ", "Its capital is Paris."]
REFUSAL = ["I can't help ", "with that."]
RETRY_AFTER = 2
"""The upstream's Retry-After on a 429: longer than the route accepts to wait."""

# The policy the fake upstream makes every failure cost little time with.
FAST: dict[str, Any] = {
    "max_retries": 2,
    "backoff_base_s": 0.001,
    "backoff_max_s": 0.005,
    "max_retry_after_s": 1.0,
    "connect_timeout_s": 1.0,
    "first_token_timeout_s": 1.0,
    "stall_timeout_s": 1.0,
    "request_timeout_s": 10.0,
}
# A breaker that stays closed, so that an attempt count measures retries alone.
NO_BREAKER = {"breaker": {"failure_threshold": 100}}

DEAD_ATTEMPTS = 2 * (1 + FAST["max_retries"])
"""What the policy of the `dead` route allows: two targets, each tried 1 + max_retries."""

ROUTES: dict[str, dict[str, Any]] = {
    # a: a cut in the middle of the answer text, in the default mode and in restart.
    "cut": {"targets": ["up/cut"]},
    "cut-restart": {"targets": ["up/cut-restart"], "stream_fallback_mode": "restart"},
    # b: a cut in the middle of a streamed tool call's arguments.
    "tool-cut": {"targets": ["up/tool-cut"]},
    # c: every target fails, every time.
    "dead": {"targets": ["up/dead-a", "up/dead-b"], **NO_BREAKER},
    "gone": {"targets": ["up/gone-a", "up/gone-b"], **NO_BREAKER},
    # d: a 429 whose Retry-After is longer than the route waits.
    "limited": {"targets": ["up/limited"], **NO_BREAKER},
    # e: reasoning, from an OpenAI-compatible upstream and from an Anthropic one.
    "thinker": {"targets": ["up/thinker"]},
    "claude-thinker": {"targets": ["claude/thinker"]},
    # f: a refusal.
    "refuser": {"targets": ["up/refuser"]},
}


def _text(message: dict[str, Any]) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


class CapitalModel:
    """Answers `QUESTION`; its first answer is cut after `DRAFT`."""

    def __init__(self) -> None:
        self.originals = 0

    def __call__(self, body: dict[str, Any]) -> Stream:
        last = body["messages"][-1]
        if last["role"] == "assistant" or _text(last) != QUESTION:
            return Stream([CONTINUATION])  # a prefill, or a request to continue
        self.originals += 1
        if self.originals == 1:
            return Stream(DRAFT, end="cut")
        return Stream([RESTARTED])


class WeatherModel:
    """Calls `get_weather`; its first call is cut after `BROKEN_ARGUMENTS`."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, body: dict[str, Any]) -> Stream:
        if body["messages"][-1]["role"] == "tool":
            return Stream([TOOL_RESULT_ANSWER])
        self.calls += 1
        call = [("call_weather_1", "get_weather", WEATHER_ARGUMENTS)]
        if self.calls == 1:
            return Stream([], tool_calls=call, end="cut", tool_after=1)
        return Stream([], tool_calls=call)


def setup(up: FakeUpstream, anthropic: claude.AnthropicUpstream) -> dict[str, Any]:
    """Script the fakes for every scenario; returns the gateway config's providers and
    routes (each route with the fast policy)."""
    up.respond("cut", CapitalModel())
    up.respond("cut-restart", CapitalModel())
    up.respond("tool-cut", WeatherModel())
    up.script("dead-a", Status(503))
    up.script("dead-b", Status(503))
    # gone-a and gone-b are never scripted: the fake answers 404 model_not_found.
    up.script("limited", Status(429, headers={"retry-after": str(RETRY_AFTER)}))
    up.script("thinker", Stream(["Paris."], reasoning=REASONING))
    up.script("refuser", Stream([], refusal=REFUSAL))
    anthropic.script("thinker", claude.Stream(["Paris."], thinking="".join(REASONING)))
    return {
        "providers": {
            "up": {
                "kind": "openai",
                "base_url": up.base_url,
                "supports_prefill": True,
                "api_key_env": "UP_KEY",
            },
            "claude": {
                "kind": "anthropic",
                "base_url": anthropic.base_url,
                "api_key_env": "UP_KEY",
            },
        },
        "routes": {name: {**FAST, **route} for name, route in ROUTES.items()},
    }
