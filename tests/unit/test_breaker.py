"""`CircuitBreaker`: opens after consecutive failures, probes back after the cooldown."""

from __future__ import annotations

from router.breaker import CircuitBreaker
from router.policy import BreakerPolicy

T0 = 100.0


def opened(threshold: int = 3, cooldown: float = 30.0) -> CircuitBreaker:
    breaker = CircuitBreaker(BreakerPolicy(failure_threshold=threshold, cooldown_s=cooldown))
    for _ in range(threshold):
        breaker.record_failure(T0)
    return breaker


def test_stays_closed_below_failure_threshold() -> None:
    breaker = CircuitBreaker(BreakerPolicy(failure_threshold=3))
    breaker.record_failure(T0)
    breaker.record_failure(T0)

    assert breaker.state == "closed"
    assert breaker.allow(T0)


def test_opens_after_threshold_consecutive_failures() -> None:
    breaker = opened(threshold=3)

    assert breaker.state == "open"


def test_success_resets_the_consecutive_failure_count() -> None:
    breaker = CircuitBreaker(BreakerPolicy(failure_threshold=2))
    breaker.record_failure(T0)
    breaker.record_success()
    breaker.record_failure(T0)

    assert breaker.state == "closed"


def test_skips_while_open_until_cooldown_has_passed() -> None:
    breaker = opened(cooldown=30.0)

    assert not breaker.allow(T0 + 29.9)
    assert breaker.state == "open"


def test_lets_exactly_one_probe_through_after_cooldown() -> None:
    breaker = opened(cooldown=30.0)

    assert breaker.allow(T0 + 30.0)
    assert breaker.state == "half_open"
    assert not breaker.allow(T0 + 31.0)


def test_probe_success_closes() -> None:
    breaker = opened()
    breaker.allow(T0 + 30.0)
    breaker.record_success()

    assert breaker.state == "closed"
    assert breaker.allow(T0 + 30.0)
    assert breaker.allow(T0 + 30.0)


def test_probe_failure_reopens_for_a_full_cooldown() -> None:
    breaker = opened(threshold=3, cooldown=30.0)
    breaker.allow(T0 + 30.0)
    breaker.record_failure(T0 + 40.0)  # one failure suffices in half-open

    assert breaker.state == "open"
    assert not breaker.allow(T0 + 69.9)
    assert breaker.allow(T0 + 70.0)


def test_release_returns_the_probe_without_closing() -> None:
    breaker = opened()
    breaker.allow(T0 + 30.0)
    breaker.release()

    assert breaker.state == "half_open"
    assert breaker.allow(T0 + 30.0)


def test_allow_peek_does_not_take_the_probe() -> None:
    breaker = opened(cooldown=30.0)

    assert not breaker.allow_peek(T0 + 10.0)
    assert breaker.allow_peek(T0 + 30.0)
    assert breaker.allow_peek(T0 + 30.0)
    assert breaker.state == "open"
    assert breaker.allow(T0 + 30.0)
    assert not breaker.allow_peek(T0 + 30.0)
