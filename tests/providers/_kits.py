"""One kit per HTTP adapter: how the contract suite builds it and scripts its fake.

The contract (`test_contract.py`) states what every adapter does in terms of these
kits; a kit only says how that is spelled for one wire format: which fake upstream
speaks it, which header carries the key, and which of the fake's `Stream` options
give an answer, tool calls, reasoning or a broken stream. A new adapter gets the
whole contract by adding its kit to `KITS`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from providers import Upstream
from providers._adapter import HTTPAdapter, HTTPConfig
from providers.anthropic import AnthropicConfig, AnthropicProvider
from providers.gemini import GeminiConfig, GeminiProvider
from providers.openai import OpenAIConfig, OpenAIProvider
from router.errors import (
    InvalidRequest,
    ProviderError,
    RateLimited,
    StreamErrorEvent,
    UpstreamUnavailable,
)
from router.events import ReasoningDelta
from tests.fakes import anthropic_upstream as anthropic_fake
from tests.fakes import gemini_upstream as gemini_fake
from tests.fakes import openai_upstream as openai_fake
from tests.fakes.openai_upstream import FakeUpstream, Status

__all__ = ["KEY", "KITS", "Broken", "InBand", "Kit", "ToolCall"]

Broken = Literal["cut", "no_end", "malformed", "stall"]
"""How a stream breaks after some text: the connection closes mid-body (``cut``), the
body ends cleanly without the format's end (``no_end``), an event is not JSON
(``malformed``), or nothing more comes (``stall``)."""

ToolCall = tuple[str, str, str]
"""``(id, name, arguments JSON)`` as a client rebuilds it from the deltas."""


InBand = Callable[[list[str], int, float], Any]
"""``(text pieces, after this many pieces, delay)``: a stream that then reports an error."""


@dataclass(frozen=True)
class Kit:
    """What the contract needs to know of one adapter."""

    id: str
    """The config ``kind``, also the provider's name in the tests."""
    config: type[HTTPConfig]
    adapter: type[HTTPAdapter[Any]]
    fake: Callable[[], FakeUpstream]
    model: str
    key_header: str
    key_sent: str
    """What ``key_header`` carries for the key ``KEY``."""
    answer: Callable[[list[str], float], Any]
    """``(text pieces, delay between them)``: a complete answer."""
    broken: Callable[[list[str], Broken, int, float], Any]
    """``(text pieces, how, after this many pieces, delay)``."""
    tool_calls: Callable[[list[tuple[str, dict[str, Any]]]], tuple[Any, list[ToolCall]]]
    """``[(name, arguments)]``: an answer that calls them, and the calls a client gets."""
    arguments_in_pieces: bool
    """Whether a call's arguments stream in several deltas (else one whole delta)."""
    reasoning: Callable[[list[str], list[str]], tuple[Any, list[ReasoningDelta]]]
    """``(reasoning pieces, text pieces)``: an answer, and the reasoning deltas it gives."""
    in_band: list[tuple[str, InBand, type[ProviderError]]]
    """``(id, stream ending in an error event, the error type it means)``."""
    error: Callable[[int, str], Status]
    """An error response in the format's own body shape, with this message."""
    example: dict[str, Any]
    """A key of the kind's own, for the config round trip."""
    prefill: bool
    """The kind's ``supports_prefill`` default."""
    base_path: str = ""
    """What a ``base_url`` ends with (OpenAI's includes ``/v1``)."""

    def provider(
        self, client: Upstream, base_url: str, env: dict[str, str] | None = None, **config: Any
    ) -> HTTPAdapter[Any]:
        cfg = self.config(base_url=base_url, api_key_env="UP_KEY", **config)
        return self.adapter(self.id, cfg, client, {"UP_KEY": KEY} if env is None else env)


KEY = "sk-contract"


def _ids(calls: list[tuple[str, dict[str, Any]]]) -> list[ToolCall]:
    return [(f"call_{i + 1}", name, json.dumps(args)) for i, (name, args) in enumerate(calls)]


def _openai_tools(calls: list[tuple[str, dict[str, Any]]]) -> tuple[Any, list[ToolCall]]:
    expected = _ids(calls)
    return openai_fake.Stream([], tool_calls=expected), expected


def _anthropic_tools(calls: list[tuple[str, dict[str, Any]]]) -> tuple[Any, list[ToolCall]]:
    expected = _ids(calls)
    return anthropic_fake.Stream([], tool_uses=expected), expected


def _gemini_tools(calls: list[tuple[str, dict[str, Any]]]) -> tuple[Any, list[ToolCall]]:
    # Gemini sends whole calls without ids: the adapter numbers them.
    expected = [
        (f"call_{i}", name, json.dumps(args, separators=(",", ":")))
        for i, (name, args) in enumerate(calls)
    ]
    return gemini_fake.Stream([], function_calls=calls), expected


OPENAI = Kit(
    id="openai",
    config=OpenAIConfig,
    adapter=OpenAIProvider,
    fake=openai_fake.FakeUpstream,
    model="gpt-test",
    key_header="authorization",
    key_sent=f"Bearer {KEY}",
    answer=lambda text, delay: openai_fake.Stream(text, delay_s=delay),
    broken=lambda text, how, after, delay: openai_fake.Stream(
        text, end="no_done" if how == "no_end" else how, after=after, delay_s=delay
    ),
    tool_calls=_openai_tools,
    arguments_in_pieces=True,
    reasoning=lambda thought, text: (
        openai_fake.Stream(text, reasoning=thought),
        [ReasoningDelta(t) for t in thought],
    ),
    in_band=[
        (
            "error",
            lambda text, after, delay: openai_fake.Stream(
                text, end="error_event", after=after, delay_s=delay
            ),
            StreamErrorEvent,
        )
    ],
    error=lambda code, message: Status(
        code, {"error": {"message": message, "type": "invalid_request_error", "code": None}}
    ),
    example={"stream_usage": False},
    prefill=False,
    base_path="/v1",
)


def _anthropic_error(error_type: str) -> InBand:
    return lambda text, after, delay: anthropic_fake.Stream(
        text, end="error_event", error_type=error_type, after=after, delay_s=delay
    )


ANTHROPIC = Kit(
    id="anthropic",
    config=AnthropicConfig,
    adapter=AnthropicProvider,
    fake=anthropic_fake.AnthropicUpstream,
    model="claude-test",
    key_header="x-api-key",
    key_sent=KEY,
    answer=lambda text, delay: anthropic_fake.Stream(text, delay_s=delay),
    broken=lambda text, how, after, delay: anthropic_fake.Stream(
        text, end="no_stop" if how == "no_end" else how, after=after, delay_s=delay
    ),
    tool_calls=_anthropic_tools,
    arguments_in_pieces=True,
    reasoning=lambda thought, text: (
        anthropic_fake.Stream(text, thinking="".join(thought)),
        # The thinking block's signature comes last, passed on for the client.
        [ReasoningDelta("".join(thought)), ReasoningDelta("", signature="c2ln")],
    ),
    in_band=[
        ("overloaded_error", _anthropic_error("overloaded_error"), UpstreamUnavailable),
        ("rate_limit_error", _anthropic_error("rate_limit_error"), RateLimited),
        ("api_error", _anthropic_error("api_error"), StreamErrorEvent),
        ("invalid_request_error", _anthropic_error("invalid_request_error"), InvalidRequest),
    ],
    error=lambda code, message: Status(
        code, anthropic_fake.error_body("invalid_request_error", message)
    ),
    example={"no_prefill_models": ["claude-opus-4-6"]},
    prefill=True,
)

GEMINI = Kit(
    id="gemini",
    config=GeminiConfig,
    adapter=GeminiProvider,
    fake=gemini_fake.GeminiUpstream,
    model="gemini-test",
    key_header="x-goog-api-key",
    key_sent=KEY,
    answer=lambda text, delay: gemini_fake.Stream(text, delay_s=delay),
    broken=lambda text, how, after, delay: gemini_fake.Stream(
        text, end="no_finish" if how == "no_end" else how, after=after, delay_s=delay
    ),
    tool_calls=_gemini_tools,
    arguments_in_pieces=False,
    reasoning=lambda thought, text: (
        gemini_fake.Stream(text, thought="".join(thought)),
        [ReasoningDelta("".join(thought))],
    ),
    in_band=[
        (
            "error",
            lambda text, after, delay: gemini_fake.Stream(
                text, end="error_event", after=after, delay_s=delay
            ),
            UpstreamUnavailable,
        )
    ],
    error=lambda code, message: Status(
        code, gemini_fake.error_body(code, message, "FAILED_PRECONDITION")
    ),
    example={"api_version": "v1"},
    prefill=False,
)

KITS = [OPENAI, ANTHROPIC, GEMINI]
