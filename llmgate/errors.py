"""The library's exceptions. All derive from `LLMGateError`.

Provider errors (one class per reason) carry ``provider``, ``upstream_status`` and
``retry_after``; they are the engine's own types, re-exported here.
"""

from __future__ import annotations

from router.errors import (
    AuthenticationFailed,
    ConfigError,
    ConnectFailed,
    ContentFiltered,
    ContextLengthExceeded,
    InvalidRequest,
    LLMGateError,
    MalformedResponse,
    ModelNotFound,
    NoSuchModel,
    ProviderError,
    RateLimited,
    RequestError,
    StreamErrorEvent,
    StreamInterrupted,
    UpstreamTimeout,
    UpstreamUnavailable,
)

__all__ = [
    "AllProvidersFailedError",
    "AuthenticationFailed",
    "ConfigError",
    "ConnectFailed",
    "ContentFiltered",
    "ContextLengthExceeded",
    "InvalidRequest",
    "LLMGateError",
    "MalformedResponse",
    "ModelNotFound",
    "NoSuchModel",
    "ProviderError",
    "RateLimited",
    "RequestError",
    "StreamErrorEvent",
    "StreamInterrupted",
    "StructuredOutputError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]


class AllProvidersFailedError(LLMGateError):
    """Every target failed. ``errors`` has one ``(target, error)`` per target tried, in
    order: its last failure. ``attempts`` lists every failed attempt, retries included;
    ``partial`` says text had already been streamed to the caller."""

    def __init__(
        self,
        attempts: list[tuple[str, BaseException]],
        *,
        partial: bool,
    ) -> None:
        last: dict[str, BaseException] = {}
        for target, error in attempts:
            last[target] = error  # a dict keeps the order in which targets were first tried
        self.errors = list(last.items())
        self.attempts = attempts
        self.partial = partial
        tried = "; ".join(f"[{target}] {error}" for target, error in self.errors)
        lead = (
            "the stream was cut off and no target could complete it"
            if partial
            else "every target failed"
        )
        super().__init__(f"{lead}: {tried}")

    @property
    def retryable(self) -> bool:
        """Whether trying the whole call again may help (some failure was transient)."""
        return any(getattr(error, "retryable", False) for _, error in self.errors)


class StructuredOutputError(LLMGateError):
    """The answer did not parse as the requested ``response_format``; ``text`` holds it."""

    def __init__(self, message: str, *, text: str) -> None:
        super().__init__(message)
        self.text = text
