"""The inbound OpenAI chat-completions request, validated once at the door.

A bad request is refused the way OpenAI refuses it, so that clients which branch on the
error's ``code`` keep working: ``missing_required_parameter``, ``invalid_type``,
``invalid_value``, ``empty_array``, and ``unsupported_parameter`` for what llmgate cannot
honour (log probabilities: an answer may be spliced from several attempts on several
providers, and there is no honest way to relay theirs).
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from router.errors import RequestError
from router.provider import ProviderRequest

__all__ = ["ChatCall", "parse_chat_request"]

_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
# Fields the gateway consumes itself; everything else passes through to the upstream.
_OWN = frozenset({"model", "messages", "stream", "stream_options"})
_UNSUPPORTED = {
    "logprobs": "llmgate does not return log probabilities: an answer may be continued "
    "across fallbacks and providers, whose log probabilities cannot be relayed as one.",
    "top_logprobs": "llmgate does not return log probabilities (see 'logprobs').",
}


class ChatCall(msgspec.Struct, gc=False):
    model: str
    request: ProviderRequest
    stream: bool
    include_usage: bool
    session: str | None = None
    """The ``user`` field: OpenAI's name for the end user, a session key for affinity."""


_decode = msgspec.json.Decoder(dict[str, Any]).decode
T = TypeVar("T")


def parse_chat_request(body: bytes) -> ChatCall:
    """Decode and check a request body; raise `RequestError` naming the bad field."""
    data = _decode_body(body)
    model = _required(data, "model", str)
    if not model:
        raise _invalid_value("model", model)
    messages = _required(data, "messages", list)
    if not messages:
        raise RequestError(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but "
            "got an empty array instead.",
            param="messages",
            code="empty_array",
        )
    for i, message in enumerate(messages):
        _check_message(i, message)
    stream = _optional(data, "stream", bool) or False
    options = _optional(data, "stream_options", dict)
    n = _optional(data, "n", int)
    if n not in (None, 1):
        raise RequestError(
            "llmgate answers with one choice per request: 'n' must be 1.",
            param="n",
            code="unsupported_value",
        )
    for name, why in _UNSUPPORTED.items():
        if data.get(name):
            raise RequestError(why, param=name, code="unsupported_parameter")
    params = {k: v for k, v in data.items() if k not in _OWN and v is not None}
    include_usage = bool(options and options.get("include_usage"))
    user = data.get("user")
    session = user if isinstance(user, str) and user else None
    return ChatCall(model, ProviderRequest(messages, params), stream, include_usage, session)


def _decode_body(body: bytes) -> dict[str, Any]:
    try:
        return _decode(body)
    except msgspec.ValidationError:  # valid JSON, but not an object
        kind = _JSON_KINDS.get(body.lstrip()[:1], "a number")
        raise RequestError(
            f"Invalid type for the request body: expected an object, but got {kind} instead.",
            code="invalid_type",
        ) from None
    except msgspec.DecodeError as exc:
        raise RequestError(f"We could not parse the JSON body of your request: {exc}") from None
    except RecursionError:  # the decoder's own limit, hit by a body nested absurdly deep
        raise RequestError("The JSON body of your request is nested too deeply.") from None


def _check_message(i: int, message: Any) -> None:
    where = f"messages[{i}]"
    if not isinstance(message, dict):
        raise _invalid_type(where, "an object", message)
    role = _required(message, "role", str, where)
    if role not in _ROLES:
        raise _invalid_value(f"{where}.role", role, _ROLES)
    content = message.get("content")
    if content is not None and not isinstance(content, str | list):
        raise _invalid_type(f"{where}.content", "a string or an array of objects", content)
    if content is None and role in ("system", "developer", "user"):
        raise _missing(f"{where}.content")
    if role == "tool":
        _required(message, "tool_call_id", str, where)


def _required(data: dict[str, Any], name: str, kind: type[T], where: str = "") -> T:
    param = f"{where}.{name}" if where else name
    if data.get(name) is None:
        raise _missing(param)
    value = data[name]
    if not isinstance(value, kind):
        raise _invalid_type(param, _KINDS[kind], value)
    return value


def _optional(data: dict[str, Any], name: str, kind: type[T]) -> T | None:
    value = data.get(name)
    # bool is an int to Python, not to JSON.
    if value is not None and (not isinstance(value, kind) or (kind is int and value is True)):
        raise _invalid_type(name, _KINDS[kind], value)
    return value


_KINDS: dict[type, str] = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    list: "an array",
    dict: "an object",
}


# What a JSON document is, by its first byte (anything else is a number).
_JSON_KINDS = {
    b"[": "an array",
    b'"': "a string",
    b"t": "a boolean",
    b"f": "a boolean",
    b"n": "null",
}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return "a number"
    return next((name for kind, name in _KINDS.items() if isinstance(value, kind)), "a value")


def _missing(param: str) -> RequestError:
    return RequestError(
        f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def _invalid_type(param: str, expected: str, value: Any) -> RequestError:
    return RequestError(
        f"Invalid type for '{param}': expected {expected}, but got {_kind(value)} instead.",
        param=param,
        code="invalid_type",
    )


def _invalid_value(param: str, value: Any, supported: tuple[str, ...] = ()) -> RequestError:
    message = f"Invalid value for '{param}': {value!r}."
    if supported:
        message += " Supported values are: " + ", ".join(f"'{s}'" for s in supported) + "."
    return RequestError(message, param=param, code="invalid_value")
