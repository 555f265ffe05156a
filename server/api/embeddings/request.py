"""The inbound OpenAI embeddings request, validated once at the door.

``input`` is checked by `router.embedding.embed_inputs` (shared with the library);
``dimensions``, ``encoding_format`` (``float`` or ``base64``) and
``user`` are optional, and any other field is refused by name, as OpenAI refuses it.
Errors carry OpenAI's ``param`` and ``code``, spelled as the chat door spells them.
"""

from __future__ import annotations

import msgspec

from router.embedding import embed_inputs
from router.errors import RequestError
from router.provider import EmbedRequest
from server.api.openai.request import (
    _decode_body,
    _invalid_value,
    _missing,
    _optional,
    _required,
)

__all__ = ["MAX_DIMENSIONS", "EmbeddingsCall", "parse_embeddings_request"]

_FIELDS = frozenset({"model", "input", "dimensions", "encoding_format", "user"})
_FORMATS = ("float", "base64")
MAX_DIMENSIONS = 65_536


class EmbeddingsCall(msgspec.Struct, gc=False):
    model: str
    request: EmbedRequest
    base64: bool
    """The client wants each vector as base64 of little-endian float32s."""
    session: str | None = None
    """The ``user`` field, a session key for affinity as on the chat door."""
    stream: bool = False
    """Embeddings are never streamed."""


def parse_embeddings_request(body: bytes) -> EmbeddingsCall:
    """Decode and check a request body; raise `RequestError` naming the bad field."""
    data = _decode_body(body)
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise RequestError(
            f"Unrecognized request argument supplied: {', '.join(unknown)}",
            param=unknown[0],
            code="unknown_parameter",
        )
    model = _required(data, "model", str)
    if not model:
        raise _invalid_value("model", model)
    if data.get("input") is None:
        raise _missing("input")
    inputs = embed_inputs(data["input"])
    dimensions = _optional(data, "dimensions", int)
    if dimensions is not None and not 1 <= dimensions <= MAX_DIMENSIONS:
        raise RequestError(
            f"Invalid value for 'dimensions': {dimensions}. Expected an integer from 1 "
            f"to {MAX_DIMENSIONS}.",
            param="dimensions",
            code="invalid_value",
        )
    encoding = _optional(data, "encoding_format", str) or "float"
    if encoding not in _FORMATS:
        raise _invalid_value("encoding_format", encoding, _FORMATS)
    user = _optional(data, "user", str) or None
    request = EmbedRequest(inputs, dimensions, user)
    return EmbeddingsCall(model, request, encoding == "base64", session=user)
