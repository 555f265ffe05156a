"""Middleware wraps every call of an `LLMGate`, streams included.

The first middleware in the list is the outermost. Subclass `Middleware` and override
`acompletion` and/or `astream`; call ``call_next(call)`` to continue the chain::

    class TagMiddleware(Middleware):
        async def acompletion(self, call, call_next):
            call.params["user"] = "team-a"
            return await call_next(call)

        async def astream(self, call, call_next):
            call.params["user"] = "team-a"
            async for chunk in call_next(call):
                yield chunk
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from llmgate.errors import AllProvidersFailedError, LLMGateError
from llmgate.types import Call, CompletionResponse, StreamChunk

__all__ = ["CompletionNext", "LoggingMiddleware", "Middleware", "RetryMiddleware", "StreamNext"]

CompletionNext = Callable[[Call], Awaitable[CompletionResponse]]
StreamNext = Callable[[Call], AsyncIterator[StreamChunk]]


class Middleware:
    """Base class: passes everything through unchanged."""

    async def acompletion(self, call: Call, call_next: CompletionNext) -> CompletionResponse:
        return await call_next(call)

    def astream(self, call: Call, call_next: StreamNext) -> AsyncIterator[StreamChunk]:
        return call_next(call)


def _retryable(error: BaseException) -> bool:
    if isinstance(error, AllProvidersFailedError):
        return error.retryable
    return bool(getattr(error, "retryable", False))


class RetryMiddleware(Middleware):
    """Retries a whole call whose failure was transient, with exponential backoff.

    A stream is retried only while it has not yielded anything: once a chunk reached
    the caller, a retry would repeat text (mid-stream recovery is the route's job).
    """

    def __init__(
        self, max_retries: int = 3, *, backoff_s: float = 0.5, max_backoff_s: float = 8.0
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s

    def _delay(self, retry: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * 2.0**retry)

    async def acompletion(self, call: Call, call_next: CompletionNext) -> CompletionResponse:
        for retry in range(self.max_retries + 1):
            try:
                return await call_next(call)
            except LLMGateError as error:
                if retry == self.max_retries or not _retryable(error):
                    raise
            await asyncio.sleep(self._delay(retry))
        raise AssertionError("unreachable")

    async def astream(self, call: Call, call_next: StreamNext) -> AsyncIterator[StreamChunk]:
        for retry in range(self.max_retries + 1):
            started = False
            try:
                async for chunk in call_next(call):
                    started = True
                    yield chunk
                return
            except LLMGateError as error:
                if started or retry == self.max_retries or not _retryable(error):
                    raise
            await asyncio.sleep(self._delay(retry))


class LoggingMiddleware(Middleware):
    """Logs one line per call when it ends: model, outcome, duration, fallbacks.

    Outcomes: ``ok``; ``partial`` (a stream failed after text reached the caller);
    ``failed``.
    """

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.INFO) -> None:
        self.logger = logger or logging.getLogger("llmgate")
        self.level = level

    def _log(self, call: Call, outcome: str, started: float, **fields: object) -> None:
        extra = " ".join(f"{k}={v}" for k, v in fields.items())
        self.logger.log(
            self.level,
            "llmgate model=%s stream=%s outcome=%s duration_ms=%.1f %s",
            call.model,
            call.stream,
            outcome,
            (time.monotonic() - started) * 1000,
            extra,
        )

    async def acompletion(self, call: Call, call_next: CompletionNext) -> CompletionResponse:
        started = time.monotonic()
        try:
            response = await call_next(call)
        except LLMGateError as error:
            self._log(call, "failed", started, error=type(error).__name__)
            raise
        self._log(
            call,
            "ok",
            started,
            answered_by=response.model,
            fallback_attempts=response.fallback_attempts,
        )
        return response

    async def astream(self, call: Call, call_next: StreamNext) -> AsyncIterator[StreamChunk]:
        started = time.monotonic()
        chars, fallbacks, model = 0, [], None
        try:
            async for chunk in call_next(call):
                chars += len(chunk.delta)
                fallbacks += chunk.fallback_attempts
                model = chunk.model or model
                yield chunk
        except LLMGateError as error:
            self._log(
                call,
                "partial" if chars else "failed",
                started,
                chars=chars,
                error=type(error).__name__,
                fallback_attempts=fallbacks,
            )
            raise
        self._log(call, "ok", started, chars=chars, answered_by=model, fallback_attempts=fallbacks)
