"""`TargetHealth`: attempts and failures per target over a rolling window, on an
injected clock."""

from __future__ import annotations

from router.errors import ClientDisconnected
from router.events import (
    AttemptFailed,
    AttemptStarted,
    Done,
    Event,
    Failed,
    RequestRecord,
    TextDelta,
    Usage,
)
from server.observe.health import TargetHealth


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _failed(target: str, attempt: int = 1) -> AttemptFailed:
    return AttemptFailed(attempt, target, "upstream_unavailable", "503", 503, 0, None)


def _done(target: str) -> Done:
    return Done(target, "stop", Usage(), RequestRecord(request_id="r", route="chat"))


def _request(health: TargetHealth, *batches: list[Event]) -> None:
    for batch in batches:
        health.observe("r", batch)


def test_a_failed_attempt_then_a_success_elsewhere_counts_one_each() -> None:
    health = TargetHealth(clock=Clock())
    _request(
        health,
        [AttemptStarted(1, "a/x", "original")],
        [_failed("a/x"), AttemptStarted(2, "b/y", "original")],
        [TextDelta("hi")],
        [_done("b/y")],
    )
    assert health.error_rate("a/x") == (1, 1)
    assert health.error_rate("b/y") == (1, 0)
    assert health.error_rate("never/tried") == (0, 0)


def test_started_and_abandoned_attempts_are_not_counted() -> None:
    health = TargetHealth(clock=Clock())
    record = RequestRecord(request_id="r", route="chat")
    _request(
        health,
        [AttemptStarted(1, "a/x", "original")],
        [TextDelta("partial")],
        [Failed(ClientDisconnected("gone"), True, Usage(), record, [])],
    )
    assert health.error_rate("a/x") == (0, 0)


def test_counts_leave_the_window_bucket_by_bucket() -> None:
    clock = Clock()
    health = TargetHealth(window_s=60, bucket_s=10, clock=clock)
    _request(health, [_failed("a/x")], [_failed("a/x")])  # t=1000, slot 100
    clock.now += 30
    _request(health, [_done("a/x")])  # slot 103
    assert health.error_rate("a/x") == (3, 2)
    clock.now += 29.9  # slot 105: the first slot is still inside the last 6
    assert health.error_rate("a/x") == (3, 2)
    clock.now += 0.1  # slot 106: the slot of the two failures has left
    assert health.error_rate("a/x") == (1, 0)
    clock.now += 60
    assert health.error_rate("a/x") == (0, 0)


def test_a_reused_bucket_starts_from_zero() -> None:
    clock = Clock()
    health = TargetHealth(window_s=30, bucket_s=10, clock=clock)
    _request(health, [_failed("a/x")])
    clock.now += 30  # the same ring position, three slots later
    _request(health, [_done("a/x")])
    assert health.error_rate("a/x") == (1, 0)


def test_memory_is_bounded_in_targets_and_buckets() -> None:
    clock = Clock()
    health = TargetHealth(window_s=300, bucket_s=10, max_targets=3, clock=clock)
    for i in range(1000):  # one bucket a request: 1000 buckets, 1001 targets
        clock.now += 10
        _request(health, [_failed("hot/x")], [_done(f"p/model-{i}")])
    assert len(health._rings) == 3
    assert all(len(ring.slots) == 30 for ring in health._rings.values())
    assert health.error_rate("hot/x") == (30, 30)  # the last 5 minutes only
    assert health.error_rate("p/model-999") == (1, 0)
    assert health.error_rate("p/model-0") == (0, 0)  # forgotten, least recently seen
