"""``response_format=``: a Pydantic model or a msgspec Struct in, a parsed object out."""

from __future__ import annotations

from typing import Any

import msgspec

from llmgate.errors import RequestError, StructuredOutputError

__all__ = ["parse", "wire_format"]


def _is_pydantic(cls: Any) -> bool:
    return (
        isinstance(cls, type)
        and hasattr(cls, "model_json_schema")
        and hasattr(cls, "model_validate_json")
    )


def wire_format(response_format: Any) -> dict[str, Any]:
    """OpenAI's ``response_format`` for a type; adapters translate it to their
    provider's native structured-output mode."""
    if isinstance(response_format, dict):
        return response_format
    if _is_pydantic(response_format):
        schema = response_format.model_json_schema()
    elif isinstance(response_format, type) and issubclass(response_format, msgspec.Struct):
        schema = msgspec.json.schema(response_format)
    else:
        raise RequestError(
            f"response_format must be a Pydantic model, a msgspec Struct or a dict; "
            f"got {response_format!r}",
            param="response_format",
        )
    return {
        "type": "json_schema",
        "json_schema": {"name": response_format.__name__, "schema": schema},
    }


def parse(response_format: Any, text: str) -> Any:
    if isinstance(response_format, dict):
        return None
    try:
        if _is_pydantic(response_format):
            return response_format.model_validate_json(text)
        return msgspec.json.decode(text, type=response_format)
    except Exception as exc:  # pydantic's and msgspec's validation errors alike
        raise StructuredOutputError(
            f"the answer is not a valid {response_format.__name__}: {exc}", text=text
        ) from exc
