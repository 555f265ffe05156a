"""The routes list's view models: each route's entries in fallback order, a pool's
members grouped under its strategy, and per target what the running gateway knows.

Per target: its circuit breaker state (`router.engine.Engine.breaker_states`; a target
never tried is closed); its attempts and failures that ended within the health window
(`server.observe.health.TargetHealth`) and its share of the route's attempts there; its
requests in flight and recent time to first token (`router.balance.Load`, what the
pools balance on). The health window counts per target, whatever route made the
attempt: a target two routes share shows the same attempts under both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from router.balance import Load
from router.policy import Pool, RoutePolicy
from server.dashboard.filters import ms, percent
from server.dashboard.forms import show_value
from server.observe.health import TargetHealth

__all__ = ["EntryView", "Live", "RouteView", "TargetView"]


@dataclass(frozen=True)
class TargetView:
    name: str
    state: str
    """The circuit breaker's: ``closed``, ``open`` or ``half_open``."""
    attempts: int
    failures: int
    share: float | None
    """Of the attempts of the route's targets in the window; None when there were none."""
    in_flight: int
    ttft_s: float | None
    """Recent time to first token; None until one was measured."""
    weight: float | None = None
    """In a ``weighted`` pool with ``weights``."""

    @property
    def state_label(self) -> str:
        return self.state.replace("_", " ")

    @property
    def rate(self) -> float | None:
        return self.failures / self.attempts if self.attempts else None

    @property
    def rate_class(self) -> str:
        rate = self.rate or 0.0
        return "bad" if rate >= 0.5 else ("warn" if self.failures else "good")

    @property
    def outcome(self) -> str:
        failed = f"{self.failures}/{self.attempts} failed"
        return f"{failed} ({percent(self.rate)})" if self.failures else failed

    @property
    def share_label(self) -> str:
        return f"{percent(self.share)} of attempts"

    @property
    def ttft_label(self) -> str:
        return ms(None if self.ttft_s is None else self.ttft_s * 1000)

    @property
    def weight_label(self) -> str | None:
        return None if self.weight is None else f"weight {show_value(self.weight)}"


@dataclass(frozen=True)
class EntryView:
    """One entry of the route's ``targets``: a pool, or a single target (``balance`` None)."""

    targets: list[TargetView]
    balance: str | None = None


@dataclass(frozen=True)
class RouteView:
    name: str
    policy: RoutePolicy
    entries: list[EntryView]
    edit_url: str
    delete_url: str

    @property
    def fallback_on(self) -> str | None:
        reasons = self.policy.fallback_on
        return None if reasons is None else ", ".join(sorted(reasons))

    @property
    def timeouts(self) -> str:
        p = self.policy
        seconds = (p.connect_timeout_s, p.first_token_timeout_s, p.stall_timeout_s)
        return " / ".join(show_value(t) for t in (*seconds, p.request_timeout_s)) + " s"

    @property
    def breaker(self) -> str:
        b = self.policy.breaker
        return f"opens after {b.failure_threshold} failures, for {show_value(b.cooldown_s)} s"


@dataclass(frozen=True)
class Live:
    """What the page reads of the running gateway, once per page."""

    health: TargetHealth
    breakers: Mapping[str, str]
    loads: Mapping[str, Load]

    def entries(self, policy: RoutePolicy) -> list[EntryView]:
        """The route's entries as written, each target with what is known of it now."""
        counts = {t: self.health.error_rate(t) for t in policy.members()}
        total = sum(attempts for attempts, _ in counts.values())

        def target(name: str, weight: float | None) -> TargetView:
            attempts, failures = counts[name]
            load = self.loads.get(name)
            return TargetView(
                name,
                self.breakers.get(name, "closed"),
                attempts,
                failures,
                attempts / total if total else None,
                load.in_flight if load else 0,
                load.ttft_s if load else None,
                weight,
            )

        entries = []
        for entry in policy.targets:
            if isinstance(entry, Pool):
                weights: list[float | None] = [None] * len(entry.pool)
                if entry.weights is not None:
                    weights = [*entry.weights]
                members = [target(t, w) for t, w in zip(entry.pool, weights, strict=True)]
                entries.append(EntryView(members, entry.balance))
            else:
                entries.append(EntryView([target(entry, None)]))
        return entries
