"""Routing policy: the one schema every door (TOML, API, forms) decodes through."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

__all__ = ["BreakerPolicy", "RoutePolicy", "Target", "parse_target"]

PositiveSeconds = Annotated[float, Meta(gt=0, le=86400)]
Reason = Literal[
    "rate_limited",
    "upstream_unavailable",
    "connect_failed",
    "timeout",
    "stream_interrupted",
    "malformed_response",
    "stream_error_event",
    "upstream_auth_failed",
    "model_not_found",
    "context_length_exceeded",
    "invalid_request",
]
TargetName = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]+/.+$", min_length=3, max_length=256)]


class BreakerPolicy(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Per-target circuit breaker: opens after ``failure_threshold`` consecutive
    failures, skips the target for ``cooldown_s``, then lets one probe through."""

    failure_threshold: Annotated[int, Meta(ge=1, le=1000)] = 5
    cooldown_s: PositiveSeconds = 30.0


class RoutePolicy(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """How one route behaves. ``targets`` are ``provider/model`` strings, in order."""

    targets: Annotated[list[TargetName], Meta(max_length=32)] = msgspec.field(default_factory=list)
    stream_fallback_mode: Literal["restart", "prefill", "user_turn", "terminate"] = "restart"
    stream_resume_prompt: Annotated[str, Meta(min_length=1, max_length=4000)] = (
        "Continue from exactly where you left off. Do not repeat anything already written."
    )
    max_retries: Annotated[int, Meta(ge=0, le=10)] = 2
    backoff_base_s: Annotated[float, Meta(ge=0, le=60)] = 0.25
    backoff_max_s: Annotated[float, Meta(ge=0, le=600)] = 8.0
    max_retry_after_s: Annotated[float, Meta(ge=0, le=3600)] = 30.0
    connect_timeout_s: PositiveSeconds = 10.0
    first_token_timeout_s: PositiveSeconds = 30.0
    stall_timeout_s: PositiveSeconds = 30.0
    request_timeout_s: PositiveSeconds = 300.0
    breaker: BreakerPolicy = BreakerPolicy()
    fallback_on: frozenset[Reason] | None = None
    """Failure reasons that may be retried or fall back; any other failure is returned
    at once. Unset: every retryable or fallback-able failure (see router.errors)."""


class Target(msgspec.Struct, frozen=True, gc=False):
    provider: str
    model: str

    @property
    def name(self) -> str:
        return f"{self.provider}/{self.model}"


def parse_target(name: str) -> Target:
    provider, sep, model = name.partition("/")
    if not sep or not provider or not model:
        raise ValueError(f"target {name!r} is not of the form provider/model")
    return Target(provider, model)
