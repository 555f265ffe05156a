"""An Anthropic Messages request in the engine's (OpenAI-shaped) terms.

- ``system`` becomes a leading system message;
- ``text`` and ``image`` blocks become OpenAI content parts;
- assistant ``tool_use`` blocks become ``tool_calls``; user ``tool_result`` blocks become
  ``role: "tool"`` messages, placed before the rest of their user turn;
- ``thinking`` blocks from earlier turns are dropped: no OpenAI-shaped upstream takes them,
  and so is a tool result's ``is_error`` flag;
- ``tools``, ``tool_choice``, ``max_tokens``, ``temperature``, ``top_p`` and
  ``stop_sequences`` (as ``stop``) become OpenAI parameters, and ``output_config.format``
  (what ``messages.parse`` sends) becomes a ``json_schema`` ``response_format``.

A conversation that ends with an assistant message is an assistant prefill: the request
says so (``prefill=True``) and the upstream continues that text.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from router.errors import RequestError
from router.provider import ProviderRequest
from server.api.anthropic.request import (
    Base64Source,
    Block,
    ImageBlock,
    MessagesRequest,
    RedactedThinkingBlock,
    TextBlock,
    ThinkingBlock,
    Tool,
    ToolChoiceAny,
    ToolChoiceAuto,
    ToolChoiceNone,
    ToolChoiceTool,
    ToolResultBlock,
    ToolUseBlock,
    URLSource,
    decode_messages_request,
)

__all__ = ["MessagesCall", "parse_messages_request", "provider_request"]

# What OpenAI accepts as a response format's name.
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class MessagesCall(msgspec.Struct, gc=False):
    """A validated request: what the engine runs and how the client wants the answer."""

    model: str
    request: ProviderRequest
    stream: bool
    session: str | None = None
    """``metadata.user_id``: a session key for affinity."""


def parse_messages_request(body: bytes) -> MessagesCall:
    """Decode, check and translate a request to create a message; raise `RequestError`
    naming the bad field."""
    req = decode_messages_request(body)
    if req.max_tokens is None:
        raise RequestError("max_tokens: Object missing required field", param="max_tokens")
    user = (req.metadata or {}).get("user_id")
    session = user if isinstance(user, str) and user else None
    return MessagesCall(req.model, provider_request(req), req.stream, session)


def provider_request(req: MessagesRequest) -> ProviderRequest:
    """The request the engine runs; raises `RequestError` for what cannot be translated."""
    messages = [{"role": "system", "content": _text(req.system)}] if req.system else []
    for i, message in enumerate(req.messages):
        if message.role == "user":
            messages += _user(i, message.content)
        else:
            messages += _assistant(i, message.content)
    if not messages:  # only thinking blocks, which are dropped
        raise RequestError("messages: there is no content to send.", param="messages")
    # An answer the client started itself: the upstream continues it.
    tail = messages[-1]
    prefill = req.messages[-1].role == "assistant" and tail["role"] == "assistant"
    prefill = prefill and "tool_calls" not in tail
    return ProviderRequest(messages, _params(req), prefill=prefill)


def _text(content: str | list[TextBlock]) -> str | list[dict[str, Any]]:
    if isinstance(content, str):
        return content
    if len(content) == 1:
        return content[0].text
    return [{"type": "text", "text": b.text} for b in content]


def _image(block: ImageBlock) -> dict[str, Any]:
    match block.source:
        case Base64Source(media_type=media_type, data=data):
            url = f"data:{media_type};base64,{data}"
        case URLSource(url=url):
            pass
    return {"type": "image_url", "image_url": {"url": url}}


def _user(i: int, content: str | list[Block]) -> list[dict[str, Any]]:
    """One user turn: its tool results as ``tool`` messages, then the rest as a user message."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        match block:
            case TextBlock(text=text):
                parts.append({"type": "text", "text": text})
            case ImageBlock():
                parts.append(_image(block))
            case ToolResultBlock(tool_use_id=call_id, content=result):
                where = f"messages[{i}].content[{j}].content"
                results.append(
                    {"role": "tool", "tool_call_id": call_id, "content": _result(where, result)}
                )
            case _:
                raise _misplaced(i, j, block, "user")
    if not parts and results:
        return results
    if len(parts) == 1 and parts[0]["type"] == "text":
        return [*results, {"role": "user", "content": parts[0]["text"]}]
    return [*results, {"role": "user", "content": parts}]


def _result(where: str, content: str | list[TextBlock | ImageBlock]) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for block in content:
        if not isinstance(block, TextBlock):
            raise RequestError(
                f"{where}: images in tool results are not supported; send the image in a "
                "user content block instead.",
                param=where,
            )
        texts.append(block.text)
    return "\n\n".join(texts)


def _assistant(i: int, content: str | list[Block]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"role": "assistant", "content": content}]
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(content):
        match block:
            case TextBlock(text=text):
                texts.append(text)
            case ToolUseBlock(id=call_id, name=name, input=arguments):
                function = {"name": name, "arguments": msgspec.json.encode(arguments).decode()}
                calls.append({"id": call_id, "type": "function", "function": function})
            case ThinkingBlock() | RedactedThinkingBlock():
                pass
            case _:
                raise _misplaced(i, j, block, "assistant")
    if not texts and not calls:
        return []
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    return [message]


def _misplaced(i: int, j: int, block: Block, role: str) -> RequestError:
    where = f"messages[{i}].content[{j}].type"
    tag = type(block).__struct_config__.tag
    return RequestError(f"{where}: a {tag!r} block cannot appear in a {role} message.", param=where)


def _params(req: MessagesRequest) -> dict[str, Any]:
    params: dict[str, Any] = {} if req.max_tokens is None else {"max_tokens": req.max_tokens}
    if req.temperature is not None:
        params["temperature"] = req.temperature
    if req.top_p is not None:
        params["top_p"] = req.top_p
    if req.stop_sequences:
        params["stop"] = req.stop_sequences
    if req.tools:
        params["tools"] = [_tool(t) for t in req.tools]
    choice = req.tool_choice
    if choice is not None and req.tools:
        match choice:
            case ToolChoiceAuto():
                params["tool_choice"] = "auto"
            case ToolChoiceAny():
                params["tool_choice"] = "required"
            case ToolChoiceTool(name=name):
                params["tool_choice"] = {"type": "function", "function": {"name": name}}
            case ToolChoiceNone():
                params["tool_choice"] = "none"
        if getattr(choice, "disable_parallel_tool_use", False):
            params["parallel_tool_calls"] = False
    output = req.output_config.format if req.output_config is not None else None
    if output is not None:
        params["response_format"] = _response_format(output.schema)
    return params


def _response_format(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's form of a JSON schema the answer must follow. Not ``strict``: OpenAI's
    strict mode refuses schemas with optional properties, which Anthropic's accepts."""
    title = schema.get("title")
    name = title if isinstance(title, str) and _NAME.match(title) else "output"
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}


def _tool(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name, "parameters": tool.input_schema}
    if tool.description:
        function["description"] = tool.description
    return {"type": "function", "function": function}
