"""What every HTTP adapter shares: status-to-error mapping and transport errors."""

from __future__ import annotations

import contextlib
import email.utils
import time
from collections.abc import Callable, Iterator

import httpx
import msgspec

from router.errors import (
    AuthenticationFailed,
    ConnectFailed,
    ContentFiltered,
    ContextLengthExceeded,
    InvalidRequest,
    ModelNotFound,
    ProviderError,
    RateLimited,
    StreamErrorEvent,
    StreamInterrupted,
    UpstreamTimeout,
    UpstreamUnavailable,
)

__all__ = [
    "Classifier",
    "error_for_status",
    "in_band_error",
    "openai_style_classifier",
    "parse_retry_after",
    "transport_errors",
]

# Classifies a 400-class body into a more specific error type, or None.
Classifier = Callable[[int, dict[str, object]], type[ProviderError] | None]


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """``retry-after-ms``, or ``Retry-After`` as seconds or an HTTP date."""
    ms = headers.get("retry-after-ms")
    if ms:
        with contextlib.suppress(ValueError):
            return max(float(ms) / 1000, 0.0)
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(parsed.timestamp() - time.time(), 0.0) if parsed else None


def _error_object(body: bytes) -> tuple[str, dict[str, object]]:
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return body.decode(errors="replace")[:500] or "(empty body)", {}
    err = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(err, dict):
        message = err.get("message") or err.get("error") or data
        return str(message)[:2000], err
    return str(err)[:2000], {}


def error_for_status(
    provider: str,
    status: int,
    headers: httpx.Headers,
    body: bytes,
    classify: Classifier | None = None,
) -> ProviderError:
    """One error type per reason for a non-2xx upstream response."""
    message, err = _error_object(body)
    text = f"{provider} returned HTTP {status}: {message}"
    retry_after = parse_retry_after(headers)
    cls: type[ProviderError]
    specific = classify(status, err) if classify else None
    if specific is not None:
        cls = specific
    elif status == 429:
        cls = RateLimited
    elif status in (401, 403):
        cls = AuthenticationFailed
    elif status == 404:
        cls = ModelNotFound
    elif status in (408, 409) or status >= 500:
        cls = UpstreamUnavailable
    elif status == 413:
        cls = ContextLengthExceeded
    else:
        cls = InvalidRequest
    return cls(text, provider=provider, upstream_status=status, retry_after=retry_after)


def in_band_error(provider: str, error: object, classify: Classifier) -> ProviderError:
    """An error event in a stream's body: the type ``classify`` gives its error object
    (called with status 0, as no status came with it), else `StreamErrorEvent`."""
    err = error if isinstance(error, dict) else {"message": str(error)}
    kind = err.get("type")
    detail = f"{kind}: {err.get('message', '')}" if kind else err.get("message", err)
    cls = classify(0, err) or StreamErrorEvent
    return cls(f"{provider} sent an error event mid-stream: {detail}", provider=provider)


def openai_style_classifier(status: int, err: dict[str, object]) -> type[ProviderError] | None:
    """OpenAI's error codes, which most compatible servers copy."""
    code = str(err.get("code") or err.get("type") or "")
    message = str(err.get("message") or "").lower()
    if code in ("context_length_exceeded", "string_above_max_length") or (
        status == 400 and ("context length" in message or "context window" in message)
    ):
        return ContextLengthExceeded
    if code in ("content_filter", "content_policy_violation"):
        return ContentFiltered
    return None


@contextlib.contextmanager
def transport_errors(provider: str, state: list[bool]) -> Iterator[None]:
    """Map httpx transport failures. ``state[0]`` says response headers arrived."""
    try:
        yield
    except httpx.TimeoutException as exc:
        # Some transports report every connection failure as ConnectTimeout; only a
        # real timeout underneath counts as one.
        if _is_real_timeout(exc):
            phase = (
                "connect" if isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout)) else "read"
            )
            raise UpstreamTimeout(
                f"{provider} timed out ({phase})", phase=phase, provider=provider
            ) from exc
        _raise_broken(provider, state, exc)
    except (httpx.TransportError, httpx.StreamError) as exc:
        _raise_broken(provider, state, exc)


def _is_real_timeout(exc: BaseException) -> bool:
    """A timeout raised by the client itself, or one with a `TimeoutError` underneath.

    httpx's own transport raises httpcore's timeout while handling the `TimeoutError`
    (an implicit ``__context__``, one level further down); httpx-aiohttp reports a
    dropped connection as ``ConnectTimeout`` caused by a non-timeout aiohttp error.
    """
    cause = exc.__cause__
    if cause is None:
        return True
    for _ in range(8):  # a bounded walk: chains may be long or, in theory, cyclic
        if cause is None:
            break
        if isinstance(cause, TimeoutError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _raise_broken(provider: str, state: list[bool], exc: Exception) -> None:
    if state[0]:
        raise StreamInterrupted(
            f"{provider} connection broke mid-response: {exc!r}", provider=provider
        ) from exc
    raise ConnectFailed(f"could not reach {provider}: {exc!r}", provider=provider) from exc
