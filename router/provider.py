"""The seam between the engine and upstream adapters."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, ClassVar, Protocol

import msgspec

from router.events import Chunk

__all__ = ["AttemptOptions", "EmbedRequest", "Provider", "ProviderRequest"]


class ProviderRequest(msgspec.Struct, gc=False):
    """What one attempt sends: OpenAI-shaped messages plus passthrough parameters.

    ``prefill`` says the last message is an assistant message the upstream must continue
    (only sent to targets whose provider declares ``supports_prefill``).
    """

    messages: list[dict[str, Any]]
    params: dict[str, Any]
    prefill: bool = False


class EmbedRequest(msgspec.Struct, frozen=True, gc=False):
    """What one embeddings attempt sends: the inputs, each a text or a token array
    (never both kinds in one request), and the vectors' length if the client chose it.
    Vectors always come back as floats; an encoding is the door's business."""

    inputs: list[str] | list[list[int]]
    dimensions: int | None = None
    user: str | None = None

    @property
    def tokens(self) -> bool:
        """The inputs are token arrays rather than texts."""
        return bool(self.inputs) and not isinstance(self.inputs[0], str)


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

    supports_embeddings: ClassVar[bool]
    """Whether the upstream answers embeddings requests (`embed`)."""

    def stream(
        self, model: str, request: ProviderRequest, options: AttemptOptions
    ) -> AsyncGenerator[list[Chunk], None]: ...

    def embed(
        self, model: str, request: EmbedRequest, options: AttemptOptions
    ) -> AsyncGenerator[list[Chunk], None]:
        """The vectors of ``request``'s inputs, in their order: one batch holding an
        `router.events.Embeddings` (with the `Usage` the upstream reported, if any, and
        a `Finish`). A generator like `stream`, so that an embeddings attempt runs under
        the same timeouts, breakers and records as any other. A provider that cannot
        embed raises `InvalidRequest`."""
        ...
