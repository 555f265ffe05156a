"""What may be embedded: an embeddings request's ``input``, checked once for every door
(the HTTP endpoint and the library) and turned into `EmbedRequest.inputs`.

``input`` is a string, a list of strings, a token array (a list of integers) or a list
of token arrays. A refusal is a `RequestError` naming the item, with OpenAI's codes.
"""

from __future__ import annotations

from typing import Any

from router.errors import RequestError

__all__ = ["MAX_INPUTS", "embed_inputs"]

MAX_INPUTS = 2048
"""Inputs in one request at most, as OpenAI takes."""


def embed_inputs(value: Any) -> list[str] | list[list[int]]:
    """``input`` as a list of texts or a list of token arrays, in order."""
    if isinstance(value, str):
        return [_text("input", value)]
    if not isinstance(value, list):
        raise _invalid_type("input", "a string or an array", value)
    if not value:
        raise _empty("input")
    if len(value) > MAX_INPUTS:
        raise RequestError(
            f"Invalid 'input': {len(value)} items. Expected at most {MAX_INPUTS}.",
            param="input",
            code="invalid_value",
        )
    first = value[0]
    if isinstance(first, str):
        return [_text(f"input[{i}]", _item(i, v, str, "a string")) for i, v in enumerate(value)]
    if _token(first):  # one token array
        return [_tokens("input", value)]
    if isinstance(first, list):
        arrays = [_item(i, v, list, "an array of integers") for i, v in enumerate(value)]
        return [_tokens(f"input[{i}]", v) for i, v in enumerate(arrays)]
    raise _invalid_type("input[0]", "a string, an integer or an array of integers", first)


def _item(i: int, value: Any, kind: type, expected: str) -> Any:
    """Every item of ``input`` is of the first one's kind."""
    if not isinstance(value, kind):
        raise _invalid_type(f"input[{i}]", expected, value)
    return value


def _text(param: str, text: str) -> str:
    if not text:
        raise RequestError(
            f"Invalid value for '{param}': an empty string cannot be embedded.",
            param=param,
            code="invalid_value",
        )
    return text


def _token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _tokens(param: str, tokens: list[Any]) -> list[int]:
    if not tokens:
        raise _empty(param)
    for j, token in enumerate(tokens):
        if not _token(token):
            raise _invalid_type(f"{param}[{j}]", "an integer (a token)", token)
        if token < 0:
            raise RequestError(
                f"Invalid value for '{param}[{j}]': {token}. A token is at least 0.",
                param=f"{param}[{j}]",
                code="invalid_value",
            )
    return tokens


def _empty(param: str) -> RequestError:
    return RequestError(
        f"Invalid '{param}': empty array. Expected an array with minimum length 1, but got "
        "an empty array instead.",
        param=param,
        code="empty_array",
    )


_KINDS: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"),  # before int: a bool is an int to Python, not to JSON
    (str, "a string"),
    (int, "an integer"),
    (float, "a number"),
    (list, "an array"),
    (dict, "an object"),
)


def _invalid_type(param: str, expected: str, value: Any) -> RequestError:
    kind = next((name for t, name in _KINDS if isinstance(value, t)), "null")
    return RequestError(
        f"Invalid type for '{param}': expected {expected}, but got {kind} instead.",
        param=param,
        code="invalid_type",
    )
