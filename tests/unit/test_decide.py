"""`decide` and `client_error`: what follows a failed attempt, as one table each."""

from __future__ import annotations

from typing import Any

import pytest

from router.decide import (
    AskAgain,
    Attempt,
    Decision,
    NextTarget,
    Retry,
    Stop,
    client_error,
    decide,
)
from router.errors import (
    AnswerDiverged,
    AuthenticationFailed,
    ConnectFailed,
    ContentFiltered,
    ContextLengthExceeded,
    InvalidRequest,
    ModelNotFound,
    ProviderError,
    RateLimited,
    RequestTimeout,
    StreamErrorEvent,
    StreamInterrupted,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from router.policy import RoutePolicy

# The example route: ten seconds for a first token, thirty in all, two retries.
POLICY = RoutePolicy(
    targets=["a/m", "b/m"],
    max_retries=2,
    backoff_base_s=0.25,
    backoff_max_s=8.0,
    max_retry_after_s=30.0,
    first_token_timeout_s=10.0,
    request_timeout_s=30.0,
)

E503 = UpstreamUnavailable("503", upstream_status=503)
E429 = RateLimited("429", upstream_status=429, retry_after=7.0)
E429_LONG = RateLimited("429", upstream_status=429, retry_after=60.0)
SILENT = UpstreamTimeout("no first token", phase="first_token")
NO_CONNECT = UpstreamTimeout("connect", phase="connect")
STALL = UpstreamTimeout("stall", phase="stall")
CUT = StreamInterrupted("cut")
REFUSED = ConnectFailed("refused")
INVALID = InvalidRequest("bad param", upstream_status=400)
POLICY_BLOCK = ContentFiltered("blocked")
DIVERGED = AnswerDiverged("diverged")
TOTAL = RequestTimeout("total")

BACKOFF_0 = 0.1875  # equal jitter at 0.5 of the first ceiling, 0.25 s
BACKOFF_1 = 0.375


def facts(failure: ProviderError, **kw: Any) -> Attempt:
    defaults: dict[str, Any] = {
        "shape": "original",
        "produced": False,
        "delivered": False,
        "tries": 0,
        "targets_left": 1,
        "time_left_s": 29.0,
        "breaker_allows": True,
        "jitter": 0.5,
    }
    return Attempt(failure=failure, **{**defaults, **kw})


ROWS: list[Any] = [
    # failure, facts, route overrides, decision
    # --- transient failures before any content: backoff on the same target
    (E503, {}, {}, Retry(BACKOFF_0)),
    (E503, {"tries": 1}, {}, Retry(BACKOFF_1)),
    (E503, {"tries": 2}, {}, NextTarget()),
    (E503, {"tries": 2, "targets_left": 0}, {}, Stop()),
    (REFUSED, {}, {}, Retry(BACKOFF_0)),
    (StreamErrorEvent("overloaded"), {}, {}, Retry(BACKOFF_0)),
    # --- Retry-After is honoured, up to the route's cap
    (E429, {}, {}, Retry(7.0)),
    (E429_LONG, {}, {}, NextTarget()),
    (E429_LONG, {"targets_left": 0}, {}, Stop()),
    # --- a pool member that fails leaves the request to another member at once
    (E429, {"pool_left": 1}, {}, NextTarget()),
    (E503, {"pool_left": 2, "targets_left": 2}, {}, NextTarget()),
    (E503, {"pool_left": 1, "produced": True, "delivered": True}, {}, NextTarget()),
    (POLICY_BLOCK, {"pool_left": 1}, {}, Stop(exhausted=False)),
    # --- the open breaker refuses a retry: move on rather than wait for it
    (E503, {"breaker_allows": False}, {}, NextTarget()),
    # --- a silent or slow first token moves on at once while other targets are left
    (SILENT, {}, {}, NextTarget()),
    (NO_CONNECT, {}, {}, NextTarget()),
    (SILENT, {"targets_left": 0}, {}, Retry(BACKOFF_0)),
    (SILENT, {"targets_left": 0, "tries": 2}, {}, Stop()),
    # --- no retry may starve the next target of its first-token time (10 s)
    (E503, {"time_left_s": 21.0}, {}, Retry(BACKOFF_0)),
    (E503, {"time_left_s": 20.1}, {}, NextTarget()),
    (E429, {"time_left_s": 26.0}, {}, NextTarget()),
    (E429, {"time_left_s": 8.0, "targets_left": 0}, {}, Retry(7.0)),
    (E429, {"time_left_s": 6.0, "targets_left": 0}, {}, Stop()),
    # --- the request's time is up
    (TOTAL, {}, {}, Stop(exhausted=False)),
    (E503, {"time_left_s": 0.0}, {}, Stop()),
    # --- failures a retry of the same request cannot fix: next target, never a retry
    (AuthenticationFailed("401"), {}, {}, NextTarget()),
    (ModelNotFound("404"), {}, {}, NextTarget()),
    (ContextLengthExceeded("too long"), {}, {}, NextTarget()),
    (INVALID, {}, {}, NextTarget()),
    (INVALID, {"targets_left": 0}, {}, Stop()),
    # --- ... or that no target may fix
    (POLICY_BLOCK, {}, {}, Stop(exhausted=False)),
    (E503, {}, {"fallback_on": frozenset({"rate_limited"})}, Stop(exhausted=False)),
    (E429, {}, {"fallback_on": frozenset({"rate_limited"})}, Retry(7.0)),
    # --- mid-stream: another target continues; the last one is retried in the mode's shape
    (CUT, {"produced": True, "delivered": True}, {}, NextTarget()),
    (STALL, {"produced": True, "delivered": True}, {}, NextTarget()),
    (CUT, {"produced": True, "delivered": True, "targets_left": 0}, {}, Retry(BACKOFF_0)),
    (
        CUT,
        {"produced": True, "delivered": True, "targets_left": 0, "tries": 2},
        {},
        Stop(),
    ),
    (
        CUT,
        {"produced": True, "delivered": True},
        {"stream_fallback_mode": "terminate"},
        Stop(exhausted=False),
    ),
    (SILENT, {}, {"stream_fallback_mode": "terminate"}, NextTarget()),
    # a continuation that fails before adding anything may be retried like any attempt
    (E503, {"delivered": True, "shape": "prefill"}, {}, Retry(BACKOFF_0)),
    # --- the shape of the attempt was the problem: ask the same target differently
    (INVALID, {"shape": "prefill", "delivered": True}, {}, AskAgain()),
    (INVALID, {"shape": "prefill", "delivered": True, "produced": True}, {}, NextTarget()),
    (
        DIVERGED,
        {"delivered": True, "produced": True},
        {"stream_fallback_mode": "restart"},
        AskAgain(),
    ),
    (DIVERGED, {"delivered": True, "time_left_s": 0.0}, {}, Stop()),
]


@pytest.mark.parametrize(
    ("failure", "fact", "overrides", "expected"),
    ROWS,
    ids=[
        f"{type(f).__name__}-{'-'.join(f'{k}={v}' for k, v in {**x, **o}.items()) or 'fresh'}"
        for f, x, o, _ in ROWS
    ],
)
def test_decision_after_a_failed_attempt(
    failure: ProviderError, fact: dict[str, Any], overrides: dict[str, Any], expected: Decision
) -> None:
    policy = RoutePolicy(
        **{**{f: getattr(POLICY, f) for f in POLICY.__struct_fields__}, **overrides}
    )

    assert decide(policy, facts(failure, **fact)) == expected


# --- what the client is told -------------------------------------------------------------

NOT_FOUND = ModelNotFound("404", upstream_status=404)
TOO_LONG = ContextLengthExceeded("too long", upstream_status=400)
E429_3 = RateLimited("429", upstream_status=429, retry_after=3.0)


@pytest.mark.parametrize(
    ("failures", "stop", "told", "retry_after"),
    [
        pytest.param([("a", NOT_FOUND), ("b", NOT_FOUND)], None, NOT_FOUND, None, id="no-model"),
        pytest.param([("a", INVALID), ("b", TOO_LONG)], None, INVALID, None, id="client-side"),
        pytest.param([("a", NOT_FOUND), ("b", INVALID)], None, INVALID, None, id="4xx-not-404"),
        pytest.param([("a", NOT_FOUND), ("b", E503)], None, E503, None, id="transient-wins"),
        pytest.param([("a", E503), ("b", INVALID)], None, E503, None, id="primary-transient"),
        pytest.param([("a", E429), ("b", E503)], None, E429, 7.0, id="retry-after-relayed"),
        pytest.param([("a", E503), ("b", E429_3)], None, E503, 3.0, id="earliest-retry-after"),
        pytest.param(
            [("a", E503), ("a", E503), ("a", E429), ("b", SILENT)],
            None,
            E429,
            7.0,
            id="each-target-by-its-last-failure",
        ),
        pytest.param([("a", CUT), ("b", DIVERGED), ("b", E503)], None, CUT, None, id="diverged"),
        pytest.param(
            [("a", E503), ("b", POLICY_BLOCK)], POLICY_BLOCK, POLICY_BLOCK, None, id="stop"
        ),
        pytest.param([("a", E429), ("b", TOTAL)], TOTAL, TOTAL, None, id="total-timeout"),
    ],
)
def test_the_client_is_told_the_failure_that_decided(
    failures: list[tuple[str, ProviderError]],
    stop: ProviderError | None,
    told: ProviderError,
    retry_after: float | None,
) -> None:
    assert client_error(failures, stop) == (told, retry_after)


@pytest.mark.parametrize(
    ("error", "status"),
    [(NOT_FOUND, 404), (INVALID, 400), (TOO_LONG, 400), (E429, 429), (E503, 502), (SILENT, 504)],
)
def test_each_told_failure_has_the_status_of_its_cause(error: ProviderError, status: int) -> None:
    assert error.status == status
