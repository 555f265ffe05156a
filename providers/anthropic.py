"""Anthropic's Messages API: ``POST {base_url}/v1/messages`` with ``stream: true``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

import httpx
import msgspec
from msgspec import Meta

from providers._adapter import Call, HTTPAdapter, HTTPConfig
from providers._client import Upstream
from providers._convert import (
    Image,
    content_parts,
    parts,
    stop_sequences,
    text_of,
    tool_arguments,
)
from providers._http import in_band_error
from providers._stream import Reader
from router.errors import (
    ContextLengthExceeded,
    InvalidRequest,
    ProviderError,
    RateLimited,
    UpstreamUnavailable,
)
from router.events import Chunk, Finish, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from router.provider import ProviderRequest

__all__ = ["AnthropicConfig", "AnthropicProvider"]


class AnthropicConfig(HTTPConfig, tag="anthropic", frozen=True):
    """``[providers.NAME]`` with ``kind = "anthropic"``."""

    base_url: str = "https://api.anthropic.com"
    """Without ``/v1``: the adapter adds ``/v1/messages``, as Anthropic's SDK does."""
    api_key_env: str | None = "ANTHROPIC_API_KEY"
    supports_prefill: bool = True
    anthropic_version: str = "2023-06-01"
    default_max_tokens: Annotated[int, Meta(ge=1)] = 4096
    """The API requires ``max_tokens``; sent when a request names none."""
    no_prefill_models: list[str] = []
    """Model name prefixes that reject a final assistant message."""


# OpenAI finish reasons for Anthropic's stop reasons.
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# In-band ``error`` events; any other type is a `StreamErrorEvent`.
_IN_BAND: dict[str, type[ProviderError]] = {
    "overloaded_error": UpstreamUnavailable,
    "rate_limit_error": RateLimited,
    "invalid_request_error": InvalidRequest,
}
# Parameters with the same name and meaning in both APIs, or Anthropic's own.
_PASSTHROUGH = ("temperature", "top_p", "top_k", "metadata", "thinking")


def _classify(status: int, err: dict[str, object]) -> type[ProviderError] | None:
    """HTTP statuses say the rest (529 overloaded is a 5xx)."""
    message = str(err.get("message") or "").lower()
    if "prompt is too long" in message or "exceed context limit" in message:
        return ContextLengthExceeded
    return None


def _in_band_class(status: int, err: dict[str, object]) -> type[ProviderError] | None:
    """An ``error`` event has no status: its error type says what the status would."""
    return _classify(status, err) or _IN_BAND.get(str(err.get("type") or ""))


# --- the request -----------------------------------------------------------------------


def _text_block(part: dict[str, Any]) -> dict[str, Any] | None:
    text = str(part.get("text") or "")
    if not text:  # the API rejects empty text blocks
        return None
    block: dict[str, Any] = {"type": "text", "text": text}
    if "cache_control" in part:
        block["cache_control"] = part["cache_control"]
    return block


def _image_block(image: Image) -> dict[str, Any]:
    if image.inline is None:
        return {"type": "image", "source": {"type": "url", "url": image.url}}
    media_type, data = image.inline
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _blocks(content: Any, provider: str) -> list[dict[str, Any]]:
    """User or assistant content parts as Anthropic content blocks."""
    return content_parts(content, provider, "Anthropic", text=_text_block, image=_image_block)


def _tool_uses(message: dict[str, Any], provider: str) -> list[dict[str, Any]]:
    out = []
    for call in message.get("tool_calls") or ():
        fn = call.get("function") or {}
        arguments = tool_arguments(fn.get("arguments"), provider)
        if not isinstance(arguments, dict):
            raise InvalidRequest(
                f"{provider}: tool call arguments must be a JSON object", provider=provider
            )
        out.append(
            {"type": "tool_use", "id": call.get("id"), "name": fn.get("name"), "input": arguments}
        )
    return out


def _messages(
    messages: list[dict[str, Any]], provider: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(system blocks, messages)``. Tool results become user messages; consecutive
    messages of one role merge, as the API wants tool results together."""
    system: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for m in messages:
        role = m.get("role")
        if role in ("system", "developer"):
            system += (b for p in parts(m.get("content")) if (b := _text_block(p)) is not None)
            continue
        if role == "user":
            blocks = _blocks(m.get("content"), provider)
        elif role == "assistant":
            blocks = _blocks(m.get("content"), provider) + _tool_uses(m, provider)
        elif role == "tool":
            role = "user"
            result = {"type": "tool_result", "tool_use_id": m.get("tool_call_id")}
            blocks = [{**result, "content": text_of(m.get("content"))}]
        else:
            raise InvalidRequest(
                f"{provider}: unsupported message role {role!r}", provider=provider
            )
        if out and out[-1]["role"] == role:
            out[-1]["content"] += blocks
        else:
            out.append({"role": role, "content": blocks})
    for m in out:  # a lone text block reads better, and is sent, as a string
        if len(m["content"]) == 1 and m["content"][0].keys() == {"type", "text"}:
            m["content"] = m["content"][0]["text"]
    return system, out


def _strip_prefill(messages: list[dict[str, Any]]) -> bool:
    """The API rejects a final assistant message that ends in whitespace: strip it.
    True if there was some, so the continuation's leading whitespace is dropped."""
    if not messages or messages[-1]["role"] != "assistant":
        return False
    last = messages[-1]
    content = last["content"]
    if isinstance(content, str):
        last["content"] = stripped = content.rstrip()
        if not stripped:
            messages.pop()
        return stripped != content
    if not content or content[-1].get("type") != "text":
        return False
    text: str = content[-1]["text"]
    content[-1]["text"] = text.rstrip()
    if not content[-1]["text"]:
        content.pop()
        if not content:
            messages.pop()
    return text != text.rstrip()


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") != "function":
        return tool  # one of Anthropic's own tool types
    fn = tool.get("function") or {}
    out: dict[str, Any] = {"name": fn.get("name")}
    if fn.get("description"):
        out["description"] = fn["description"]
    out["input_schema"] = fn.get("parameters") or {"type": "object", "properties": {}}
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice is None and parallel is not False:
        return None
    if choice == "none":
        return {"type": "none"}
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        out: dict[str, Any] = {"type": "tool", "name": name}
    else:
        out = {"type": "any" if choice == "required" else "auto"}
    if parallel is False:
        out["disable_parallel_tool_use"] = True
    return out


def _body(
    model: str, request: ProviderRequest, config: AnthropicConfig, provider: str
) -> tuple[dict[str, Any], bool]:
    """The request body, and whether the final assistant message lost trailing space."""
    params = request.params
    system, messages = _messages(request.messages, provider)
    stripped = _strip_prefill(messages)
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": params.get("max_completion_tokens")
        or params.get("max_tokens")
        or config.default_max_tokens,
        "messages": messages,
    }
    if system:
        plain = len(system) == 1 and "cache_control" not in system[0]
        body["system"] = system[0]["text"] if plain else system
    body.update((k, params[k]) for k in _PASSTHROUGH if params.get(k) is not None)
    if stop := stop_sequences(params.get("stop")):
        body["stop_sequences"] = stop
    if params.get("user") and "metadata" not in body:
        body["metadata"] = {"user_id": params["user"]}
    if tools := params.get("tools"):
        body["tools"] = [_tool(t) for t in tools]
        choice = _tool_choice(params.get("tool_choice"), params.get("parallel_tool_calls"))
        if choice is not None:
            body["tool_choice"] = choice
    elif schema := _json_schema(params.get("response_format")):
        # Structured output the Messages API way: one forced tool whose input is the
        # answer. Its streamed input is passed on as the answer's text.
        body["tools"] = [
            {
                "name": STRUCTURED_TOOL,
                "input_schema": schema,
                "description": "Give the answer as this tool's input.",
            }
        ]
        body["tool_choice"] = {"type": "tool", "name": STRUCTURED_TOOL}
    body["stream"] = True
    return body, stripped


STRUCTURED_TOOL = "structured_output"


def _json_schema(response_format: Any) -> dict[str, Any] | None:
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        return schema if isinstance(schema, dict) else None
    return None


# --- the response ----------------------------------------------------------------------


class _Usage(msgspec.Struct, gc=False):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class _Message(msgspec.Struct, gc=False):
    usage: _Usage | None = None


class _Block(msgspec.Struct, gc=False):
    type: str = ""
    id: str | None = None
    name: str | None = None
    text: str | None = None
    thinking: str | None = None
    signature: str | None = None


class _Delta(msgspec.Struct, gc=False):
    type: str | None = None
    text: str | None = None
    partial_json: str | None = None
    thinking: str | None = None
    signature: str | None = None
    stop_reason: str | None = None


class _Event(msgspec.Struct, gc=False):
    """Every event type in one shape: unknown types are ignored, as Anthropic asks."""

    type: str
    index: int = 0
    message: _Message | None = None
    content_block: _Block | None = None
    delta: _Delta | None = None
    usage: _Usage | None = None
    error: Any = None


_encode = msgspec.json.Encoder().encode


class _Reader(Reader[_Event]):
    """The state of one streamed message."""

    decoder = msgspec.json.Decoder(_Event)
    ending = "message_stop"
    __slots__ = ("_skip_space", "_stop_reason", "_structured", "_tools", "_usage")

    def __init__(self, provider: str, skip_space: bool) -> None:
        super().__init__(provider)
        self._skip_space = skip_space
        self._tools: dict[int, int] = {}  # content block index -> tool call ordinal
        self._usage = _Usage()
        self._stop_reason: str | None = None
        self._structured = False

    def feed(self, event: bytes | None, wire: _Event, out: list[Chunk]) -> None:
        match wire.type:
            case "content_block_delta" if wire.delta is not None:
                delta = wire.delta
                if delta.type == "text_delta" and delta.text:
                    self._text(delta.text, out)
                elif delta.type == "thinking_delta" and delta.thinking:
                    out.append(ReasoningDelta(delta.thinking))
                elif delta.type == "signature_delta" and delta.signature:
                    out.append(ReasoningDelta("", signature=delta.signature))
                elif delta.type == "input_json_delta" and delta.partial_json:
                    tool = self._tools.get(wire.index)
                    if tool == -1:  # the structured-output tool: its input is the answer
                        out.append(TextDelta(delta.partial_json))
                    elif tool is not None:
                        out.append(ToolCallDelta(tool, arguments=delta.partial_json))
            case "content_block_start" if wire.content_block is not None:
                block = wire.content_block
                if block.type == "tool_use" and block.name == STRUCTURED_TOOL:
                    self._tools[wire.index] = -1
                    self._structured = True
                elif block.type == "tool_use":
                    tool = self._tools[wire.index] = len(self._tools)
                    out.append(ToolCallDelta(tool, block.id, block.name))
                elif block.type == "text" and block.text:
                    self._text(block.text, out)
                elif block.type == "thinking" and (block.thinking or block.signature):
                    out.append(ReasoningDelta(block.thinking or "", signature=block.signature))
            case "message_start" if wire.message is not None:
                self._add_usage(wire.message.usage)
            case "message_delta":
                if wire.delta is not None and wire.delta.stop_reason:
                    self._stop_reason = wire.delta.stop_reason
                self._add_usage(wire.usage)
            case "message_stop":
                self._finish(out)
            case "error":
                raise in_band_error(self.provider, wire.error or {}, _in_band_class)

    def _text(self, text: str, out: list[Chunk]) -> None:
        if self._skip_space:
            text = text.lstrip()
            if not text:
                return
            self._skip_space = False
        out.append(TextDelta(text))

    def _add_usage(self, usage: _Usage | None) -> None:
        """Counts in ``message_delta`` are cumulative: a present one replaces."""
        if usage is not None:
            for field in usage.__struct_fields__:
                value = getattr(usage, field)
                if value is not None:
                    setattr(self._usage, field, value)

    def _finish(self, out: list[Chunk]) -> None:
        u = self._usage
        cached = u.cache_read_input_tokens or 0
        prompt = (u.input_tokens or 0) + (u.cache_creation_input_tokens or 0) + cached
        completion = u.output_tokens or 0
        finish = _FINISH.get(self._stop_reason or "", "stop")
        if self._structured and finish == "tool_calls":
            finish = "stop"  # the forced structured-output tool is the answer itself
        out.append(Finish(finish))
        out.append(Usage(prompt, completion, prompt + completion, cached))
        self.finished = True


class AnthropicProvider(HTTPAdapter[AnthropicConfig]):
    """Translates OpenAI-shaped requests into Messages API requests and streams back."""

    kind: ClassVar[str] = "anthropic"
    key_header = "x-api-key"

    def __init__(
        self,
        name: str,
        config: AnthropicConfig,
        client: Upstream,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(name, config, client, env)
        self._no_prefill = tuple(config.no_prefill_models)
        self._url = httpx.URL(config.base_url.rstrip("/") + "/v1/messages")

    def own_headers(self) -> Mapping[str, str]:
        return {"anthropic-version": self.config.anthropic_version}

    def translate(self, model: str, request: ProviderRequest) -> Call:
        body, stripped = _body(model, request, self.config, self.name)
        return Call(self._url, _encode(body), _Reader(self.name, skip_space=stripped))

    def classify(self, status: int, err: dict[str, object]) -> type[ProviderError] | None:
        return _classify(status, err)

    def prefill_ok(self, model: str) -> bool:
        """Whether ``model`` continues a final assistant message."""
        return self.supports_prefill and not model.startswith(self._no_prefill)
