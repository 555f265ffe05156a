"""Error types the engine decides on.

Adapters map every upstream failure to exactly one of these, by *reason*; the engine
never reads message text. Each class says whether the same target may be tried again
(``retryable``), whether the route may move on to its next target (``fallback``), and
which HTTP status and OpenAI error ``type``/``code`` a client sees when it is final.

    LLMGateError
     ├── ConfigError                  bad configuration (never reaches the engine)
     ├── RequestError                 the client's request is invalid (400)
     ├── NoSuchModel                  unknown route or target (404)
     ├── ClientDisconnected           the client went away before the answer ended
     └── ProviderError                an upstream attempt failed
          ├── RateLimited             429                       retry, fallback
          ├── UpstreamUnavailable     5xx, overloaded           retry, fallback
          │    └── CircuitOpen        every target's breaker is open (503): nothing was tried
          ├── ConnectFailed           refused/reset before headers   retry, fallback
          ├── UpstreamTimeout         connect/first_token/stall  retry, fallback
          │    └── RequestTimeout     the request's total time ran out  neither
          ├── StreamInterrupted       body cut, no end marker   retry, fallback
          ├── MalformedResponse       unparseable SSE or JSON   retry, fallback
          ├── StreamErrorEvent        in-band error event       retry, fallback
          ├── AuthenticationFailed    401/403 upstream          fallback only
          ├── ModelNotFound           404 upstream              fallback only
          ├── ContextLengthExceeded   prompt too long           fallback only
          ├── InvalidRequest          other 4xx                 fallback only
          ├── ContentFiltered         content policy            neither: returned to client
          └── AnswerDiverged          a restart's new answer left the text shown:
                                      continued as user_turn (see router.decide)

Which failure a client is finally told about, with which status, is
`router.decide.client_error`'s choice.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AnswerDiverged",
    "AuthenticationFailed",
    "CircuitOpen",
    "ClientDisconnected",
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
    "RequestTimeout",
    "StreamErrorEvent",
    "StreamInterrupted",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]


class LLMGateError(Exception):
    """Base of every error llmgate raises."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    code: ClassVar[str | None] = None

    @property
    def message(self) -> str:
        return str(self)


class ConfigError(LLMGateError):
    """A configuration file or policy is invalid. ``source`` names what was read (a file,
    ``config`` for a write, ``key`` for an API key's fields, a revision), ``path`` the key
    in it (``routes.chat.max_retries``) and ``detail`` what is wrong there."""

    status = 422
    type = "invalid_request_error"
    code = "invalid_config"

    def __init__(self, message: str, *, source: str = "", path: str = "") -> None:
        self.source = source
        self.path = path
        self.detail = message
        where = self.where
        super().__init__(f"{where}: {message}" if where else message)

    @property
    def where(self) -> str:
        """``source: path``, as a message names the place."""
        return ": ".join(part for part in (self.source, self.path) if part)


class RequestError(LLMGateError):
    """The client's request is invalid; ``param`` names the offending field."""

    status = 400
    type = "invalid_request_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        if code is not None:
            self.code = code  # type: ignore[misc]  # an instance's own, finer code


class NoSuchModel(RequestError):
    status = 404
    code = "model_not_found"


class ClientDisconnected(LLMGateError):
    """The client closed the connection before the answer ended; only ever recorded
    (request log, metrics), since nobody is left to tell."""

    status = 499
    type = "client_error"
    code = "client_disconnected"


class ProviderError(LLMGateError):
    """One upstream attempt failed. Carries the provider, its status and Retry-After."""

    retryable: ClassVar[bool] = True
    fallback: ClassVar[bool] = True
    # Whether this failure says something about the target's health (circuit breaker).
    target_fault: ClassVar[bool] = True
    status = 502
    type = "upstream_error"
    reason: ClassVar[str] = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        upstream_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.upstream_status = upstream_status
        self.retry_after = retry_after


class RateLimited(ProviderError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"
    reason = "rate_limited"


class UpstreamUnavailable(ProviderError):
    reason = "upstream_unavailable"


class CircuitOpen(UpstreamUnavailable):
    """No target could be tried: each one's circuit breaker was open (another request
    took the probe). ``retry_after`` says when the first one lets a probe through."""

    status = 503
    reason = "circuit_open"


class ConnectFailed(ProviderError):
    reason = "connect_failed"


class UpstreamTimeout(ProviderError):
    """``phase`` is one of connect, first_token, stall, total."""

    status = 504
    type = "timeout_error"
    reason = "timeout"

    def __init__(self, message: str, *, phase: str, provider: str = "") -> None:
        super().__init__(message, provider=provider)
        self.phase = phase


class RequestTimeout(UpstreamTimeout):
    """The request's total time (``request_timeout_s``) ran out: nothing is left to
    try with, whatever the failure was."""

    retryable = False
    fallback = False
    reason = "request_timeout"

    def __init__(self, message: str, *, provider: str = "") -> None:
        super().__init__(message, phase="total", provider=provider)


class StreamInterrupted(ProviderError):
    reason = "stream_interrupted"


class MalformedResponse(ProviderError):
    reason = "malformed_response"


class StreamErrorEvent(ProviderError):
    reason = "stream_error_event"


class AuthenticationFailed(ProviderError):
    retryable = False
    reason = "upstream_auth_failed"


class ModelNotFound(ProviderError):
    """The upstream does not know the model. Told to a client (404) only when every
    target of the route said so; otherwise a misconfigured target is the gateway's
    problem, not the caller's."""

    retryable = False
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"
    reason = "model_not_found"


class ContextLengthExceeded(ProviderError):
    retryable = False
    target_fault = False
    status = 400
    type = "invalid_request_error"
    code = "context_length_exceeded"
    reason = "context_length_exceeded"


class InvalidRequest(ProviderError):
    retryable = False
    target_fault = False
    status = 400
    type = "invalid_request_error"
    reason = "invalid_request"


class ContentFiltered(ProviderError):
    retryable = False
    target_fault = False
    fallback = False
    status = 400
    type = "invalid_request_error"
    code = "content_filter"
    reason = "content_filtered"


class AnswerDiverged(ProviderError):
    """``restart`` mode, for a client that cannot discard text: the new answer does not
    repeat what the client already shows, so it was abandoned; the answer continues in
    the ``user_turn`` shape instead. Says nothing about the target's health."""

    retryable = False
    target_fault = False
    reason = "restart_diverged"
