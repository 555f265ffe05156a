"""The inbound Anthropic Messages request, validated once at the door.

``metadata``, ``service_tier``, ``top_k``, ``thinking``, ``cache_control``, ``speed``,
``inference_geo`` and ``output_config.effort`` are accepted and ignored; any other
top-level field (``container``, ``mcp_servers``, ...) is refused, so a feature llmgate
cannot honour never silently vanishes. A ``thread`` (anthropic-python's
``beta.messages.tool_runner`` sends one) is refused in the way that SDK recognises, so
that it sends the whole conversation again without one. `server.api.anthropic.translate`
turns the request into the engine's terms.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta

from router.errors import RequestError
from server.api._decode import decode_body

__all__ = [
    "MessagesRequest",
    "ThreadUnsupported",
    "decode_messages_request",
]


# --- the request, as Anthropic defines it ------------------------------------------


class TextBlock(msgspec.Struct, tag_field="type", tag="text", gc=False):
    text: str


class Base64Source(msgspec.Struct, tag_field="type", tag="base64", gc=False):
    media_type: str
    data: str


class URLSource(msgspec.Struct, tag_field="type", tag="url", gc=False):
    url: str


class ImageBlock(msgspec.Struct, tag_field="type", tag="image", gc=False):
    source: Base64Source | URLSource


class ToolUseBlock(msgspec.Struct, tag_field="type", tag="tool_use", gc=False):
    id: str
    name: str
    input: dict[str, Any]


class ToolResultBlock(msgspec.Struct, tag_field="type", tag="tool_result", gc=False):
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock] = ""


class ThinkingBlock(msgspec.Struct, tag_field="type", tag="thinking", gc=False):
    thinking: str = ""


class RedactedThinkingBlock(msgspec.Struct, tag_field="type", tag="redacted_thinking", gc=False):
    data: str = ""


Block = (
    TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock
)


class Message(msgspec.Struct, gc=False):
    role: Literal["user", "assistant"]
    content: str | list[Block]


class Tool(msgspec.Struct, gc=False):
    name: Annotated[str, Meta(min_length=1)]
    input_schema: dict[str, Any]
    description: str | None = None
    type: Literal["custom"] | None = None


class ToolChoiceAuto(msgspec.Struct, tag_field="type", tag="auto", gc=False):
    disable_parallel_tool_use: bool = False


class ToolChoiceAny(msgspec.Struct, tag_field="type", tag="any", gc=False):
    disable_parallel_tool_use: bool = False


class ToolChoiceTool(msgspec.Struct, tag_field="type", tag="tool", gc=False):
    name: str
    disable_parallel_tool_use: bool = False


class ToolChoiceNone(msgspec.Struct, tag_field="type", tag="none", gc=False):
    pass


ToolChoice = ToolChoiceAuto | ToolChoiceAny | ToolChoiceTool | ToolChoiceNone


class JSONOutputFormat(msgspec.Struct, tag_field="type", tag="json_schema", gc=False):
    schema: dict[str, Any]


class OutputConfig(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    format: JSONOutputFormat | None = None
    effort: str | None = None
    """Accepted and ignored, like ``thinking``."""


class MessagesRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, gc=False):
    model: Annotated[str, Meta(min_length=1)]
    max_tokens: Annotated[int, Meta(ge=1)] | None = None
    """Required to create a message (`parse_messages_request`), not to count its tokens."""
    messages: Annotated[list[Message], Meta(min_length=1)]
    system: str | list[TextBlock] | None = None
    stop_sequences: list[str] | None = None
    stream: bool = False
    temperature: float | None = None
    top_p: float | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    output_config: OutputConfig | None = None
    thread: dict[str, Any] | bool | None = None
    # Accepted and ignored: hints an OpenAI-shaped upstream has no way to honour.
    metadata: dict[str, Any] | None = None
    service_tier: str | None = None
    top_k: int | None = None
    thinking: dict[str, Any] | None = None
    cache_control: dict[str, Any] | None = None
    speed: str | None = None
    inference_geo: str | None = None


# --- decoding ----------------------------------------------------------------------


_decode = msgspec.json.Decoder(MessagesRequest).decode


def decode_messages_request(body: bytes) -> MessagesRequest:
    """Decode and check a request body; raise `RequestError` naming the bad field."""
    req = decode_body(_decode, body, "Messages")
    if isinstance(req.thread, dict):
        raise ThreadUnsupported(
            "thread: llmgate keeps no conversations between requests; send the whole "
            "conversation without 'thread'.",
            param="thread",
        )
    return req


class ThreadUnsupported(RequestError):
    """A ``thread`` field: anthropic-python's thread helpers (``tool_runner``) read
    ``error.details`` and send the request again without one."""

    details: ClassVar[dict[str, Any]] = {
        "error_code": "thread_unsupported_request",
        "unsupported": ["thread"],
    }
