"""Helpers of the Messages endpoint's tests: the fake Anthropic upstream as a provider,
requests without the SDK, and ways to read a stream. (The ``client`` and
``claude_upstream`` fixtures are in conftest.py.)"""

from __future__ import annotations

from typing import Any

import anthropic
import httpx

from tests.fakes.anthropic_upstream import AnthropicUpstream
from tests.integration.conftest import KEY, Client

__all__ = [
    "KEY",
    "MESSAGES",
    "Client",
    "claude_provider",
    "post",
    "shown_text",
    "sse_events",
    "stream_events",
]

MESSAGES: list[Any] = [{"role": "user", "content": "Tell me something."}]


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
