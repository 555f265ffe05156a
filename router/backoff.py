"""Retry delays: exponential backoff with equal jitter, honouring Retry-After."""

from __future__ import annotations

from router.policy import RoutePolicy

__all__ = ["retry_delay"]


def retry_delay(
    policy: RoutePolicy, retry_number: int, retry_after: float | None, jitter: float
) -> float | None:
    """Seconds to wait before retry ``retry_number`` (0-based) on the same target;
    ``jitter`` (uniform in [0, 1)) places it in the upper half of the backoff's range.

    ``None`` means do not wait for this target: its Retry-After is longer than the
    policy accepts, so the route moves on to its next target instead.
    """
    if retry_after is not None:
        if retry_after > policy.max_retry_after_s:
            return None
        return max(retry_after, 0.0)
    ceiling = min(policy.backoff_max_s, policy.backoff_base_s * 2.0**retry_number)
    return ceiling / 2 + jitter * ceiling / 2
