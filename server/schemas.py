"""The inbound OpenAI chat-completions request, validated once at the door."""

from __future__ import annotations

from typing import Any

import msgspec

from router.errors import RequestError
from router.provider import ProviderRequest

__all__ = ["ChatCall", "parse_chat_request"]

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
# Fields the gateway consumes itself; everything else passes through to the upstream.
_OWN = frozenset({"model", "messages", "stream", "stream_options"})


class ChatCall(msgspec.Struct, gc=False):
    model: str
    request: ProviderRequest
    stream: bool
    include_usage: bool


_decode = msgspec.json.Decoder(dict[str, Any]).decode


def parse_chat_request(body: bytes) -> ChatCall:
    """Decode and check a request body; raise `RequestError` naming the bad field."""
    try:
        data = _decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise RequestError(f"The request body is not a valid JSON object: {exc}") from None
    model = data.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("'model' is required and must be a non-empty string.", param="model")
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("'messages' must be a non-empty array.", param="messages")
    for i, message in enumerate(messages):
        _check_message(i, message)
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError("'stream' must be a boolean.", param="stream")
    options = data.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise RequestError("'stream_options' must be an object.", param="stream_options")
    n = data.get("n")
    if n not in (None, 1):
        raise RequestError("Only n=1 is supported.", param="n")
    params = {k: v for k, v in data.items() if k not in _OWN and v is not None}
    include_usage = bool(options and options.get("include_usage"))
    return ChatCall(model, ProviderRequest(messages, params), stream, include_usage)


def _check_message(i: int, message: Any) -> None:
    where = f"messages[{i}]"
    if not isinstance(message, dict):
        raise RequestError(f"'{where}' must be an object.", param=where)
    role = message.get("role")
    if role not in _ROLES:
        raise RequestError(
            f"'{where}.role' must be one of {', '.join(sorted(_ROLES))}; got {role!r}.",
            param=f"{where}.role",
        )
    content = message.get("content")
    if content is not None and not isinstance(content, str | list):
        raise RequestError(
            f"'{where}.content' must be a string or an array of parts.", param=f"{where}.content"
        )
    if content is None and role in ("system", "developer", "user"):
        raise RequestError(
            f"'{where}.content' is required for role {role!r}.", param=f"{where}.content"
        )
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        raise RequestError(
            f"'{where}.tool_call_id' is required for tool messages.", param=f"{where}.tool_call_id"
        )
