"""The inbound OpenAI Responses request, validated once at the door and put in the
engine's (chat-completions-shaped) terms.

- ``instructions`` becomes a leading system message; ``input`` a string (one user
  message) or items: messages (``input_text`` and ``input_image`` parts; an assistant's
  ``output_text``), ``function_call`` (an assistant tool call) and
  ``function_call_output`` (a tool result). ``reasoning`` items from earlier turns are
  dropped: no other provider can take them.
- Function ``tools``, ``tool_choice``, ``parallel_tool_calls``, ``temperature``,
  ``top_p``, ``max_output_tokens`` (as ``max_completion_tokens``), ``user`` and
  ``text.format`` (``json_schema``, ``json_object``, as ``response_format``) become
  chat parameters; ``reasoning.effort`` becomes ``reasoning_effort``, which an
  OpenAI-compatible upstream receives and the other kinds ignore.
- ``metadata`` and ``store`` are kept for the response object; ``include``,
  ``truncation``, ``service_tier``, ``prompt_cache_key`` (also a session key for
  affinity), ``safety_identifier``, ``stream_options`` and ``text.verbosity`` are
  accepted and ignored, as the SDKs and coding agents send them. Any other field is
  refused naming it, so that a feature llmgate cannot honour never silently vanishes.
- ``previous_response_id`` continues a stored response: `prepare` puts its
  conversation (every earlier turn, its output included) before this turn's input;
  its instructions are not carried over, as OpenAI does not carry them.
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from router.errors import RequestError
from router.provider import ProviderRequest
from server.api._decode import decode_body, decode_error
from server.api._serve import Serving
from server.store.responses import ResponseKeeper

__all__ = ["ResponsesCall", "ResponsesRequest", "parse_responses_request", "prepare"]


# --- input items ----------------------------------------------------------------------


class InputText(msgspec.Struct, tag_field="type", tag="input_text", gc=False):
    text: str


class InputImage(msgspec.Struct, tag_field="type", tag="input_image", gc=False):
    image_url: str | None = None
    file_id: str | None = None
    detail: Literal["low", "high", "auto", "original"] = "auto"


class OutputText(msgspec.Struct, tag_field="type", tag="output_text", gc=False):
    text: str
    annotations: list[Any] | None = None
    logprobs: list[Any] | None = None


class Refusal(msgspec.Struct, tag_field="type", tag="refusal", gc=False):
    refusal: str


Part = InputText | InputImage | OutputText | Refusal


class Message(msgspec.Struct, tag_field="type", tag="message", forbid_unknown_fields=True):
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[Part]
    id: str | None = None
    status: str | None = None
    phase: str | None = None


class FunctionCall(
    msgspec.Struct, tag_field="type", tag="function_call", forbid_unknown_fields=True
):
    call_id: Annotated[str, Meta(min_length=1)]
    name: Annotated[str, Meta(min_length=1)]
    arguments: str
    id: str | None = None
    status: str | None = None


class FunctionCallOutput(
    msgspec.Struct, tag_field="type", tag="function_call_output", forbid_unknown_fields=True
):
    call_id: Annotated[str, Meta(min_length=1)]
    output: str | list[Part]
    id: str | None = None
    status: str | None = None


class Reasoning(msgspec.Struct, tag_field="type", tag="reasoning"):
    """An earlier turn's reasoning: accepted and dropped."""

    id: str | None = None


Item = Message | FunctionCall | FunctionCallOutput | Reasoning


# --- the rest of the request ----------------------------------------------------------


class FunctionTool(msgspec.Struct, tag_field="type", tag="function", forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1)]
    parameters: dict[str, Any] | None = None
    description: str | None = None
    strict: bool | None = None


class ToolChoiceFunction(msgspec.Struct, tag_field="type", tag="function", gc=False):
    name: str


class FormatText(msgspec.Struct, tag_field="type", tag="text", gc=False):
    pass


class FormatJSONObject(msgspec.Struct, tag_field="type", tag="json_object", gc=False):
    pass


class FormatJSONSchema(
    msgspec.Struct, tag_field="type", tag="json_schema", forbid_unknown_fields=True
):
    name: Annotated[str, Meta(min_length=1, max_length=64)]
    schema: dict[str, Any]
    strict: bool | None = None
    description: str | None = None


class TextConfig(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    format: FormatText | FormatJSONObject | FormatJSONSchema | None = None
    verbosity: str | None = None
    """Accepted and ignored."""


class ReasoningConfig(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: str | None = None
    generate_summary: str | None = None


class ResponsesRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    model: Annotated[str, Meta(min_length=1)]
    input: str | list[dict[str, Any]] | None = None
    instructions: str | None = None
    tools: list[FunctionTool] | None = None
    tool_choice: Literal["auto", "none", "required"] | ToolChoiceFunction | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    max_output_tokens: Annotated[int, Meta(ge=1)] | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    reasoning: ReasoningConfig | None = None
    stream: bool = False
    store: bool = True
    previous_response_id: str | None = None
    # Accepted and ignored: what SDKs and coding agents send that changes nothing here.
    include: list[str] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    service_tier: str | None = None
    prompt_cache_key: str | None = None
    safety_identifier: str | None = None
    stream_options: dict[str, Any] | None = None


class ResponsesCall(msgspec.Struct, gc=False):
    """A validated request: what the engine runs, and what the response echoes."""

    model: str
    request: ProviderRequest
    stream: bool
    req: ResponsesRequest
    turn: list[dict[str, Any]]
    """This turn's messages, without the instructions: what a stored response adds to
    its conversation."""
    session: str | None = None
    """``user`` or ``prompt_cache_key``, or the conversation's: a session key for
    affinity."""
    prior: list[Any] = msgspec.field(default_factory=list)
    """The earlier turns (``previous_response_id``)."""
    keeper: ResponseKeeper | None = None
    """Where the response is stored (`prepare`), if it is."""
    client: str | None = None
    """The key that asked (its id), which alone may read the stored response."""


_decode = msgspec.json.Decoder(ResponsesRequest).decode


def parse_responses_request(body: bytes) -> ResponsesCall:
    """Decode and check a request body; raise `RequestError` naming the bad field."""
    req = decode_body(_decode, body, "Responses")
    if req.input is None or req.input == [] or req.input == "":
        raise RequestError(
            "Missing required parameter: 'input'.", param="input", code="missing_required_parameter"
        )
    turn = _messages(req)
    messages = _instructions(req) + turn
    session = req.user or req.prompt_cache_key or None
    request = ProviderRequest(messages, _params(req))
    return ResponsesCall(req.model, request, req.stream, req, turn, session)


def _instructions(req: ResponsesRequest) -> list[dict[str, Any]]:
    return [{"role": "system", "content": req.instructions}] if req.instructions else []


async def prepare(call: ResponsesCall, serving: Serving, client: str | None) -> ResponsesCall:
    """Where the response will be kept, and a follow-up's whole conversation."""
    keeper = serving.responses
    call.keeper, call.client = keeper, client
    previous = call.req.previous_response_id
    if previous is None:
        if call.session is None:  # the conversation's own, which its follow-ups inherit
            call.session = "conversation:" + os.urandom(12).hex()
        return call
    if not keeper.enabled:
        raise RequestError(
            "previous_response_id: this gateway keeps no responses (it runs without a "
            "database, or with request_log_text = false); send the whole conversation "
            "in 'input'.",
            param="previous_response_id",
        )
    kept = await keeper.get(previous, client)
    if kept is None:
        raise RequestError(
            f"Previous response with id '{previous}' not found.",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    call.prior = kept.conversation
    call.session = call.session or kept.session
    messages = _instructions(call.req) + kept.conversation + call.turn
    call.request = ProviderRequest(messages, call.request.params)
    return call


def _items(raw: list[dict[str, Any]]) -> list[Item]:
    """Each input item, typed; an item without a ``type`` is a message, as OpenAI reads it."""
    items: list[Item] = []
    for i, item in enumerate(raw):
        if "type" not in item and "role" in item:
            item = {**item, "type": "message"}
        try:
            items.append(msgspec.convert(item, Item))
        except msgspec.ValidationError as exc:
            raise decode_error(exc, "Responses", f"input[{i}]") from None
    return items


def _messages(req: ResponsesRequest) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if isinstance(req.input, str):
        messages.append({"role": "user", "content": req.input})
        return messages
    assert req.input is not None
    for i, item in enumerate(_items(req.input)):
        where = f"input[{i}]"
        if isinstance(item, Message):
            messages.append(_message(where, item))
        elif isinstance(item, FunctionCall):
            call = {
                "id": item.call_id,
                "type": "function",
                "function": {"name": item.name, "arguments": item.arguments},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant":
                last.setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif isinstance(item, FunctionCallOutput):
            output = item.output
            content = output if isinstance(output, str) else _plain(where + ".output", output)
            messages.append({"role": "tool", "tool_call_id": item.call_id, "content": content})
    if not any(m["role"] != "system" for m in messages) and req.previous_response_id is None:
        raise RequestError(
            "input: expected at least one message or function call output besides the "
            "instructions.",
            param="input",
        )
    return messages


def _message(where: str, item: Message) -> dict[str, Any]:
    role = "system" if item.role == "developer" else item.role
    content = item.content
    if isinstance(content, str):
        return {"role": role, "content": content}
    if role == "assistant":
        return {"role": role, "content": _plain(where + ".content", content)}
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        if isinstance(part, InputText | OutputText):
            parts.append({"type": "text", "text": part.text})
        elif isinstance(part, InputImage):
            if part.image_url is None:
                raise RequestError(
                    f"{where}.content[{j}]: llmgate keeps no files; give the image as an "
                    "image_url (an https or data URL), not a file_id.",
                    param=f"{where}.content[{j}].image_url",
                )
            image: dict[str, Any] = {"url": part.image_url}
            if part.detail != "auto":
                image["detail"] = part.detail
            parts.append({"type": "image_url", "image_url": image})
        else:
            raise RequestError(
                f"{where}.content[{j}]: a refusal is only an assistant's",
                param=f"{where}.content[{j}]",
            )
    return {"role": role, "content": parts}


def _plain(where: str, parts: list[Part]) -> str:
    """Text parts as one string (an assistant's turn, a tool's output)."""
    out: list[str] = []
    for j, part in enumerate(parts):
        if isinstance(part, InputText | OutputText):
            out.append(part.text)
        elif isinstance(part, Refusal):
            out.append(part.refusal)
        else:
            raise RequestError(f"{where}[{j}]: expected text here", param=f"{where}[{j}]")
    return "".join(out)


def _params(req: ResponsesRequest) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if req.tools:
        params["tools"] = [_tool(t) for t in req.tools]
    choice = req.tool_choice
    if isinstance(choice, ToolChoiceFunction):
        params["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
    elif choice is not None:
        params["tool_choice"] = choice
    if req.parallel_tool_calls is not None and req.tools:
        params["parallel_tool_calls"] = req.parallel_tool_calls
    if req.max_output_tokens is not None:
        params["max_completion_tokens"] = req.max_output_tokens
    for name in ("temperature", "top_p", "user"):
        value = getattr(req, name)
        if value is not None:
            params[name] = value
    fmt = req.text.format if req.text is not None else None
    if isinstance(fmt, FormatJSONObject):
        params["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, FormatJSONSchema):
        schema: dict[str, Any] = {"name": fmt.name, "schema": fmt.schema}
        if fmt.strict is not None:
            schema["strict"] = fmt.strict
        if fmt.description is not None:
            schema["description"] = fmt.description
        params["response_format"] = {"type": "json_schema", "json_schema": schema}
    if req.reasoning is not None and req.reasoning.effort is not None:
        params["reasoning_effort"] = req.reasoning.effort
    return params


def _tool(tool: FunctionTool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description is not None:
        function["description"] = tool.description
    function["parameters"] = tool.parameters or {"type": "object", "properties": {}}
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}
