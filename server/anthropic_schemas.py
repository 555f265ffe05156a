"""The inbound Anthropic Messages request: validated once, translated to the engine's shape.

The engine speaks OpenAI-shaped messages whatever the targets' providers are, so an
Anthropic request becomes one `ProviderRequest`:

- ``system`` becomes a leading system message;
- ``text`` and ``image`` blocks become OpenAI content parts;
- assistant ``tool_use`` blocks become ``tool_calls``; user ``tool_result`` blocks become
  ``role: "tool"`` messages, placed before the rest of their user turn;
- ``thinking`` blocks from earlier turns are dropped: no OpenAI-shaped upstream takes them,
  and so is a tool result's ``is_error`` flag;
- ``tools``, ``tool_choice``, ``max_tokens``, ``temperature``, ``top_p`` and
  ``stop_sequences`` (as ``stop``) become OpenAI parameters; ``metadata``,
  ``service_tier``, ``top_k``, ``thinking``, ``cache_control``, ``speed`` and
  ``inference_geo`` are accepted and ignored; any other top-level field (``container``,
  ``output_config``, ``mcp_servers``, ...) is refused, so a feature llmgate cannot
  honour never silently vanishes.

A conversation that ends with an assistant message is an assistant prefill: the request
says so (``prefill=True``) and the upstream continues that text.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from router.errors import RequestError
from router.provider import ProviderRequest

__all__ = ["MessagesCall", "parse_messages_request"]


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


class MessagesRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, gc=False):
    model: Annotated[str, Meta(min_length=1)]
    max_tokens: Annotated[int, Meta(ge=1)]
    messages: Annotated[list[Message], Meta(min_length=1)]
    system: str | list[TextBlock] | None = None
    stop_sequences: list[str] | None = None
    stream: bool = False
    temperature: float | None = None
    top_p: float | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    # Accepted and ignored: hints an OpenAI-shaped upstream has no way to honour.
    metadata: dict[str, Any] | None = None
    service_tier: str | None = None
    top_k: int | None = None
    thinking: dict[str, Any] | None = None
    cache_control: dict[str, Any] | None = None
    speed: str | None = None
    inference_geo: str | None = None


# --- decoding ----------------------------------------------------------------------


class MessagesCall(msgspec.Struct, gc=False):
    """A validated request: what the engine runs and how the client wants the answer."""

    model: str
    request: ProviderRequest
    stream: bool


_decode = msgspec.json.Decoder(MessagesRequest).decode
_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_FIELD = re.compile(r"field `(?P<field>[^`]+)`")


def parse_messages_request(body: bytes) -> MessagesCall:
    """Decode, check and translate a request body; raise `RequestError` naming the bad field."""
    try:
        req = _decode(body)
    except msgspec.ValidationError as exc:
        raise _invalid(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise RequestError(f"The request body is not valid JSON: {exc}") from None
    except RecursionError:  # the decoder's own limit, hit by a body nested absurdly deep
        raise RequestError("The request body is nested too deeply.") from None
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
    request = ProviderRequest(messages, _params(req), prefill=prefill)
    return MessagesCall(req.model, request, req.stream)


def _invalid(error: str) -> RequestError:
    """msgspec's message, with the offending field's path first (``messages[0].role: ...``)."""
    match = _AT.match(error)
    what, path = (match["what"], (match["path"] or "").lstrip(".")) if match else (error, "")
    field = _FIELD.search(what)
    if field:
        path = f"{path}.{field['field']}" if path else field["field"]
    if what.startswith("Object contains unknown field"):
        what = "this field is not supported by llmgate's Messages endpoint"
    return RequestError(f"{path}: {what}" if path else what, param=path or None)


# --- translation to OpenAI-shaped messages -----------------------------------------


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
    params: dict[str, Any] = {"max_tokens": req.max_tokens}
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
    return params


def _tool(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name, "parameters": tool.input_schema}
    if tool.description:
        function["description"] = tool.description
    return {"type": "function", "function": function}
