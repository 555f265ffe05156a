"""Decoding a request body, and its errors as the client is told them: the field's
path first."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

import msgspec

from providers.config import split_validation_error
from router.errors import RequestError

__all__ = ["decode_body", "decode_error"]

T = TypeVar("T")

_FIELD = re.compile(r"field `(?P<field>[^`]+)`")


def decode_error(error: msgspec.ValidationError, door: str, prefix: str = "") -> RequestError:
    """msgspec's message, with the offending field's path first (``messages[0].role:
    ...``); ``prefix`` is where the value that failed sits in the body (``input[2]``);
    ``door`` names the endpoint in the message of a field it does not take."""
    what, path = split_validation_error(error)
    path = path.lstrip(".")
    if prefix:
        path = f"{prefix}.{path}" if path and not path.startswith("[") else prefix + path
    field = _FIELD.search(what)
    if field:
        path = f"{path}.{field['field']}" if path else field["field"]
    if what.startswith("Object contains unknown field"):
        what = f"this field is not supported by llmgate's {door} endpoint"
    return RequestError(f"{path}: {what}" if path else what, param=path or None)


def decode_body(decode: Callable[[bytes], T], body: bytes, door: str) -> T:
    """``decode(body)`` (a msgspec decoder's); raise `RequestError` naming the bad field."""
    try:
        return decode(body)
    except msgspec.ValidationError as exc:
        raise decode_error(exc, door) from None
    except msgspec.DecodeError as exc:
        raise RequestError(f"The request body is not valid JSON: {exc}") from None
    except RecursionError:  # the decoder's own limit, hit by a body nested absurdly deep
        raise RequestError("The request body is nested too deeply.") from None
