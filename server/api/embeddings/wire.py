"""Embeddings answers in OpenAI's wire format: one JSON body, never a stream.

Every vector comes from the engine as floats; a client that asked for
``encoding_format: "base64"`` (as the official SDKs do by default) gets each one as
base64 of its little-endian float32 values, which decodes to the same numbers. As on
the chat door, the request record travels in a top-level ``llmgate`` field, and
errors are OpenAI's.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Callable
from typing import Any

import msgspec
from litestar.datastructures import Headers

from router.collect import Answer
from router.events import Event, Failed
from server.api._serve import answered_model
from server.api.embeddings.request import EmbeddingsCall, parse_embeddings_request
from server.api.openai.wire import ChatWire

__all__ = ["EmbeddingsWire", "encode_base64"]


def encode_base64(vector: list[float]) -> str:
    """A vector as OpenAI sends it with ``encoding_format: "base64"``."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


class EmbeddingsWire:
    """``/v1/embeddings`` as a `server.api._serve.Wire`; credentials and errors are the
    chat door's."""

    door = "embeddings"
    id_prefix = "embd-"
    id_header: str | None = None

    @staticmethod
    def credentials(headers: Headers) -> str | None:
        return ChatWire.credentials(headers)

    @staticmethod
    def parse(body: bytes) -> EmbeddingsCall:
        return parse_embeddings_request(body)

    @staticmethod
    def encoder(call: EmbeddingsCall, request_id: str) -> Callable[[list[Event]], bytes]:
        raise AssertionError("embeddings are never streamed")

    @staticmethod
    def collect(call: EmbeddingsCall, request_id: str, answer: Answer) -> dict[str, Any]:
        done = answer.done
        encode = encode_base64 if call.base64 else None
        data = [
            {"object": "embedding", "index": i, "embedding": encode(v) if encode else v}
            for i, v in enumerate(answer.vectors or [])
        ]
        usage = done.usage
        return {
            "object": "list",
            "data": data,
            "model": answered_model(done.model),
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "total_tokens": usage.total_tokens or usage.prompt_tokens,
            },
            "llmgate": msgspec.to_builtins(done.record),
        }

    @staticmethod
    def failure(failed: Failed) -> tuple[int, dict[str, Any]]:
        return ChatWire.failure(failed)

    @staticmethod
    def stream_error() -> bytes:
        return ChatWire.stream_error()
