"""Per-target circuit breaker. Time comes in as an argument."""

from __future__ import annotations

from typing import Literal

from router.policy import BreakerPolicy

__all__ = ["CircuitBreaker"]

State = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Opens after ``failure_threshold`` consecutive failures; after ``cooldown_s`` it
    lets exactly one probe through (half-open). The probe's outcome closes or reopens it."""

    __slots__ = ("_failures", "_opened_at", "_probing", "policy", "state")

    def __init__(self, policy: BreakerPolicy) -> None:
        self.policy = policy
        self.state: State = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False

    def allow(self, now: float) -> bool:
        if self.state == "closed":
            return True
        if self.state == "open" and now - self._opened_at >= self.policy.cooldown_s:
            self.state = "half_open"
            self._probing = False
        if self.state == "half_open" and not self._probing:
            self._probing = True
            return True
        return False

    def allow_peek(self, now: float) -> bool:
        """Whether `allow` would let an attempt through, without taking the probe."""
        if self.state == "open":
            return now - self._opened_at >= self.policy.cooldown_s
        return self.state == "closed" or not self._probing

    def reopens_in(self, now: float) -> float:
        """Seconds until an open breaker lets a probe through (0 if it would now)."""
        if self.state != "open":
            return 0.0
        return max(self._opened_at + self.policy.cooldown_s - now, 0.0)

    def record_success(self) -> None:
        self.state = "closed"
        self._failures = 0
        self._probing = False

    def record_failure(self, now: float) -> None:
        self._failures += 1
        if self.state == "half_open" or self._failures >= self.policy.failure_threshold:
            self.state = "open"
            self._opened_at = now
            self._probing = False

    def release(self) -> None:
        """An attempt ended without saying anything about health (e.g. a client error)."""
        self._probing = False
