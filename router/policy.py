"""Routing policy: the one schema every door (TOML, API, forms) decodes through."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

__all__ = [
    "BALANCES",
    "Balance",
    "BreakerPolicy",
    "Budget",
    "Limit",
    "Pool",
    "RoutePolicy",
    "Target",
    "TargetEntry",
    "parse_target",
]

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


Spend = Annotated[float, Meta(gt=0, le=1e9)]
Count = Annotated[int, Meta(ge=1, le=10**15)]

BUDGET_PERIODS = ("minute", "hour", "day", "month")
BUDGET_METRICS = ("usd", "tokens", "requests")


class Budget(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    """Limits on a route's (or a key's) use, each per calendar window in ``timezone`` (or
    per rolling window, see ``window``):
    ``<metric>_per_<period>`` for metric ``usd`` (cost at the targets' prices), ``tokens``
    (prompt and completion) or ``requests``, period ``minute``, ``hour``, ``day`` or
    ``month``. A request that would exceed one is refused before any upstream call (or,
    with ``downgrade_to``, sent to that cheaper route instead); spend is counted when a
    request ends, so the one that crosses a limit finishes and the next is refused."""

    usd_per_minute: Spend | None = None
    usd_per_hour: Spend | None = None
    usd_per_day: Spend | None = None
    usd_per_month: Spend | None = None
    tokens_per_minute: Count | None = None
    tokens_per_hour: Count | None = None
    tokens_per_day: Count | None = None
    tokens_per_month: Count | None = None
    requests_per_minute: Count | None = None
    requests_per_hour: Count | None = None
    requests_per_day: Count | None = None
    requests_per_month: Count | None = None
    timezone: Annotated[str, Meta(min_length=1, max_length=64)] = "UTC"
    """The IANA zone whose calendar the windows follow (``Europe/Paris``)."""
    window: Literal["calendar", "rolling"] = "calendar"
    """``calendar``: a limit resets when its minute, hour, day or month begins.
    ``rolling``: it covers the last minute, hour, day or 30 days, at any moment."""
    downgrade_to: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    """A route to serve the request instead when this budget is spent (routes only)."""

    def limits(self) -> list[tuple[str, str, float]]:
        """``(metric, period, limit)`` of every limit set."""
        out = []
        for metric in BUDGET_METRICS:
            for period in BUDGET_PERIODS:
                value = getattr(self, f"{metric}_per_{period}")
                if value is not None:
                    out.append((metric, period, float(value)))
        return out


class Limit(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    """A deployment's rate limits (``[providers.NAME.limits."model"]``, or ``"*"``): the
    engine skips a target that reached one in the last minute (see `router.limits`)."""

    rpm: Annotated[int, Meta(ge=1, le=10**9)] | None = None
    """Requests per minute."""
    tpm: Annotated[int, Meta(ge=1, le=10**12)] | None = None
    """Tokens (prompt and completion) per minute."""


Balance = Literal["weighted", "round_robin", "least_busy", "least_latency", "lowest_cost"]
BALANCES: tuple[Balance, ...] = (
    "weighted",
    "round_robin",
    "least_busy",
    "least_latency",
    "lowest_cost",
)


class Pool(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    """Deployments of one model that share a route entry's load (see `router.balance`).

    ``balance`` orders the usable members for each request: ``weighted`` (random, in
    proportion to ``weights``, one per member; equal without them), ``round_robin``,
    ``least_busy`` (fewest requests in flight), ``least_latency`` (lowest recent time to
    first token, exploring now and then) or ``lowest_cost`` (cheapest price, ties by
    fewest in flight). A member that fails before the first token is replaced by the
    next member before the route moves on to its next entry."""

    pool: Annotated[list[TargetName], Meta(min_length=1, max_length=32)]
    balance: Balance = "weighted"
    weights: list[Annotated[float, Meta(gt=0, le=1e6)]] | None = None

    def __post_init__(self) -> None:
        if self.weights is not None and len(self.weights) != len(self.pool):
            raise ValueError(
                f"expected one weight per pool member ({len(self.pool)}), got {len(self.weights)}"
            )
        if self.weights is not None and self.balance != "weighted":
            raise ValueError(f"weights apply to balance = 'weighted', not {self.balance!r}")
        if len(set(self.pool)) != len(self.pool):
            raise ValueError("a pool names each member once")


TargetEntry = TargetName | Pool
"""One entry of a route's fallback order: a ``provider/model`` string (a pool of one)
or a `Pool`."""


class RoutePolicy(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """How one route behaves. ``targets`` are its entries in fallback order: each a
    ``provider/model`` string or a `Pool` of them."""

    targets: Annotated[list[TargetEntry], Meta(max_length=32)] = msgspec.field(default_factory=list)
    stream_fallback_mode: Literal["restart", "prefill", "user_turn", "terminate"] = "prefill"
    """How an answer cut after content was delivered continues (see README): ``prefill``
    continues from the text shown (as ``user_turn`` where the target cannot), ``restart``
    asks the original question again, ``terminate`` stops."""
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
    budget: Budget | None = None
    affinity: Literal["off", "session"] = "off"
    """``session``: the requests of one session go to the same member of each pool
    while it is usable (its prompt cache keeps hitting); see `router.balance.by_session`."""
    affinity_ttl_s: PositiveSeconds = 600.0
    """With ``affinity = "session"``: how long a session stays on the member that last
    served it when that is not its own (after its own failed), counted from its last
    request; about a prompt cache's lifetime. See `router.balance.Sessions`."""
    hedge_after_s: PositiveSeconds | Literal["p95"] | None = None
    """Hedged first tokens: an attempt that has sent no content this long after it
    started gets a second one, on the next candidate, in parallel; the first to send
    content answers and the other is cancelled. ``"p95"``: the route's recent 95th
    percentile time to first token (no hedging until it has enough samples). Unset:
    never (see `router.hedge`)."""
    embeddings: bool = False
    """The route serves ``/v1/embeddings``: every target must be able to embed, which
    the configuration's validation checks (``check-config``, every write)."""

    def members(self) -> list[str]:
        """Every target the route may use, entry by entry, each once."""
        names = [name for entry in self.targets for name in _names(entry)]
        return list(dict.fromkeys(names))


def _names(entry: TargetEntry) -> list[str]:
    return entry.pool if isinstance(entry, Pool) else [entry]


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
