"""What happens after a failed attempt, and what the client is finally told.

`decide` is the engine's one place for "what now?": a pure function of the failure,
the attempt's facts and the time left, so that every rule below is a row of a table
test rather than a branch of a stateful loop.

    the request's time is up ........................................... stop
    restart, the new answer left the text shown (AnswerDiverged) ....... ask again as user_turn
    content policy; outside ``fallback_on``; terminate after content ... stop
    the target refused an assistant prefill ............................ ask again as user_turn
    another member of the target's pool is left ........................ next target (that
      member), at once: another deployment beats waiting on this one
    no first token in time (connect, first_token), other targets left .. next target, at once
    retryable, retries left, the breaker allows, and either nothing was
      shown yet or no other target is left, and the wait fits in the
      time left while leaving the next target its first-token time ..... retry after a delay
    other targets left ................................................. next target
    otherwise .......................................................... stop

`client_error` then picks, from every target's last failure, the error a client sees.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from router.backoff import retry_delay
from router.errors import (
    AnswerDiverged,
    InvalidRequest,
    ModelNotFound,
    ProviderError,
    RequestTimeout,
    UpstreamTimeout,
)
from router.events import Shape
from router.policy import RoutePolicy

__all__ = [
    "AskAgain",
    "Attempt",
    "Decision",
    "NextTarget",
    "Retry",
    "Stop",
    "client_error",
    "decide",
]


class Retry(msgspec.Struct, frozen=True):
    """Try the same target again after ``delay_s``."""

    delay_s: float


class NextTarget(msgspec.Struct, frozen=True):
    """Move on to the route's next target now."""


class AskAgain(msgspec.Struct, frozen=True):
    """Ask the same target again at once, in the ``user_turn`` shape; not a retry."""


class Stop(msgspec.Struct, frozen=True):
    """Give up. ``exhausted``: the route ran out of targets, retries or time, so the
    client hears of the targets' failures as a whole (`client_error`); otherwise the
    failure itself is final (content policy, ``fallback_on``, ``terminate``)."""

    exhausted: bool = True


Decision = Retry | NextTarget | AskAgain | Stop


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    """The facts of one failed attempt that the decision depends on."""

    failure: ProviderError
    shape: Shape
    """How the attempt was asked: the original messages, or a continuation."""
    produced: bool
    """The attempt had started answering (text) when it failed."""
    delivered: bool
    """The client already shows answer text, from this attempt or earlier ones."""
    tries: int
    """Retries already made on this target."""
    targets_left: int
    """Targets after this one that may still be tried."""
    pool_left: int = 0
    """Of those, the members of this target's pool (they come first)."""
    time_left_s: float
    """Until the request's deadline (``request_timeout_s`` from its start)."""
    breaker_allows: bool
    """The target's circuit breaker would let another attempt through now."""
    jitter: float = 0.5
    """Uniform in [0, 1): where in its range the backoff lands."""


def decide(policy: RoutePolicy, a: Attempt) -> Decision:
    """What the engine does after the failed attempt ``a`` of a route with ``policy``."""
    failure = a.failure
    if isinstance(failure, RequestTimeout):
        return Stop(exhausted=False)
    if a.time_left_s <= 0:
        return Stop()
    if isinstance(failure, AnswerDiverged):
        return AskAgain()
    if not failure.fallback or (
        policy.fallback_on is not None and failure.reason not in policy.fallback_on
    ):
        return Stop(exhausted=False)
    if a.delivered and policy.stream_fallback_mode == "terminate":
        return Stop(exhausted=False)
    if a.shape == "prefill" and isinstance(failure, InvalidRequest) and not a.produced:
        return AskAgain()  # this target refuses prefills; the failure is still reported
    if a.pool_left:
        return NextTarget()
    moving_on: Decision = NextTarget() if a.targets_left else Stop()
    silent = isinstance(failure, UpstreamTimeout) and not a.produced
    if silent and a.targets_left:
        return moving_on  # a target that stays silent gets no second chance before the rest
    if (
        not failure.retryable
        or a.tries >= policy.max_retries
        or not a.breaker_allows
        or (a.produced and a.targets_left)
    ):
        return moving_on
    delay = retry_delay(policy, a.tries, failure.retry_after, a.jitter)
    if delay is None or delay >= a.time_left_s:
        return moving_on
    # A retry may itself wait out a whole first-token timeout; the next target must
    # still have one of its own afterwards.
    if a.targets_left and delay + 2 * policy.first_token_timeout_s > a.time_left_s:
        return moving_on
    return Retry(delay)


_CLIENT_SIDE = range(400, 500)


def _client_side(error: ProviderError) -> bool:
    """A failure about the request itself (4xx other than 429), not about a target's health."""
    return error.status in _CLIENT_SIDE and error.status != 429


def client_error(
    failures: Sequence[tuple[str, ProviderError]], stop: ProviderError | None = None
) -> tuple[ProviderError, float | None]:
    """The error a client is told, and the Retry-After (seconds) to relay with it.

    ``failures`` is every failed attempt as ``(target, error)`` in order; ``stop`` the
    failure that ended the request by itself, if one did (it is then what the client
    hears). Otherwise each target's last failure counts, in the order tried:

    - every target said the model does not exist: that (404 ``model_not_found``);
    - every target refused the request itself (400s): the first such refusal, never a
      5xx, since no retry of the same request can help;
    - otherwise the first target whose failure is transient (429, 5xx, unreachable,
      timeouts): the route's real cause, which a later target's refusal must not mask.
    """
    if stop is not None:
        return stop, stop.retry_after
    last: dict[str, ProviderError] = {}
    for target, error in failures:
        if not isinstance(error, AnswerDiverged):
            last[target] = error  # dicts keep first-insertion order: the order tried
    errors = list(last.values()) or [failures[-1][1]]
    if all(isinstance(e, ModelNotFound) for e in errors):
        chosen = errors[0]
    elif all(_client_side(e) for e in errors):
        chosen = next(e for e in errors if not isinstance(e, ModelNotFound))
    else:
        chosen = next(e for e in errors if not _client_side(e))
    if chosen.retry_after is not None:
        return chosen, chosen.retry_after
    waits = [e.retry_after for e in errors if e.retry_after is not None and not _client_side(e)]
    return chosen, min(waits) if waits else None
