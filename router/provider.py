"""The seam between the engine and upstream adapters."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, Protocol

import msgspec

from router.events import Chunk

__all__ = ["AttemptOptions", "Provider", "ProviderRequest"]


class ProviderRequest(msgspec.Struct, gc=False):
    """What one attempt sends: OpenAI-shaped messages plus passthrough parameters.

    ``prefill`` says the last message is an assistant message the upstream must continue
    (only sent to targets whose provider declares ``supports_prefill``).
    """

    messages: list[dict[str, Any]]
    params: dict[str, Any]
    prefill: bool = False


class AttemptOptions(msgspec.Struct, frozen=True, gc=False):
    connect_timeout_s: float = 10.0


class Provider(Protocol):
    """An upstream. Yields batches of chunks, one batch per network read.

    Raises `router.errors.ProviderError` subclasses for every failure, including a
    stream that ends without the upstream's end marker. The engine enforces the
    first-token, stall and total timeouts around the iterator.
    """

    name: str
    supports_prefill: bool
    """Whether the upstream continues a final assistant message, provider-wide."""

    def prefill_ok(self, model: str) -> bool:
        """Whether ``model`` continues a final assistant message: ``supports_prefill``,
        narrowed where the provider's models differ (some of Anthropic's reject one)."""
        ...

    def stream(
        self, model: str, request: ProviderRequest, options: AttemptOptions
    ) -> AsyncGenerator[list[Chunk], None]: ...
