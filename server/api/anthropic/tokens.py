"""``POST /v1/messages/count_tokens``: an estimate of a request's input tokens.

No provider llmgate speaks to counts tokens for it, and the targets of one route may
use different tokenizers, so the count is an estimate over the request as the engine
would send it: one token per four characters of text (messages, tool calls and results,
tool definitions and an output schema as JSON), three per message for its role and
separators, and 1,600 per image (what Anthropic charges for a full-size one). It is
meant for budgeting a context window, not for billing.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

from router.provider import ProviderRequest

__all__ = ["estimate_input_tokens"]

CHARS_PER_TOKEN = 4
MESSAGE_TOKENS = 3
IMAGE_TOKENS = 1600


def estimate_input_tokens(request: ProviderRequest) -> int:
    chars = images = 0
    for message in request.messages:
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                if part.get("type") == "image_url":
                    images += 1
                else:
                    chars += len(str(part.get("text", "")))
        for call in message.get("tool_calls") or ():
            chars += len(call["function"]["name"]) + len(call["function"]["arguments"])
    for name in ("tools", "response_format"):
        schema: Any = request.params.get(name)
        if schema is not None:
            chars += len(msgspec.json.encode(schema))
    text_tokens = math.ceil(chars / CHARS_PER_TOKEN)
    return text_tokens + MESSAGE_TOKENS * len(request.messages) + IMAGE_TOKENS * images
