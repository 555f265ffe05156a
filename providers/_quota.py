"""What an upstream's response headers say is left of its rate limits (`Quota`).

OpenAI (and the compatible servers that copy it) sends ``x-ratelimit-remaining-requests``
and ``-tokens`` with ``x-ratelimit-reset-requests`` and ``-tokens`` as durations
(``1s``, ``6m0s``, ``120ms``); Anthropic sends ``anthropic-ratelimit-requests-remaining``
and ``-tokens-remaining`` with ``-reset`` as RFC 3339 times.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime

from router.events import Quota

__all__ = ["quota_of"]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_SCHEMES = (
    # (requests left, requests reset, tokens left, tokens reset)
    (
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
    ),
    (
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-requests-reset",
        "anthropic-ratelimit-tokens-remaining",
        "anthropic-ratelimit-tokens-reset",
    ),
)


def quota_of(headers: Mapping[str, str], now: datetime | None = None) -> Quota | None:
    """The quota a response's headers state, or None when they state none."""
    for requests_left, requests_reset, tokens_left, tokens_reset in _SCHEMES:
        requests, tokens = _int(headers.get(requests_left)), _int(headers.get(tokens_left))
        if requests is None and tokens is None:
            continue
        resets = [
            _seconds(headers.get(name), now)
            for left, name in ((requests, requests_reset), (tokens, tokens_reset))
            if left is not None and left <= 0
        ]
        known = [r for r in resets if r is not None]
        return Quota(requests, tokens, max(known) if known else None)
    return None


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def _seconds(value: str | None, now: datetime | None) -> float | None:
    """Seconds from now until a reset given as a duration or an RFC 3339 time."""
    if not value:
        return None
    if "T" in value:  # a time
        try:
            at = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return max((at - (now or datetime.now(UTC))).total_seconds(), 0.0)
    parts = _DURATION.findall(value)
    if not parts:
        return None
    return sum(float(n) * _UNIT_S[unit] for n, unit in parts)
