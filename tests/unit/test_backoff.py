"""`retry_delay`: exponential backoff with equal jitter, honouring Retry-After."""

from __future__ import annotations

import pytest

from router.backoff import retry_delay
from router.policy import RoutePolicy

POLICY = RoutePolicy(backoff_base_s=0.5, backoff_max_s=4.0, max_retry_after_s=30.0)


@pytest.mark.parametrize(
    ("retry_number", "ceiling"),
    [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 4.0), (10, 4.0)],
)
def test_delay_grows_exponentially_up_to_the_cap(retry_number: int, ceiling: float) -> None:
    # rng 0.5 sits in the middle of the equal-jitter band [ceiling/2, ceiling).
    assert retry_delay(POLICY, retry_number, None, 0.5) == pytest.approx(0.75 * ceiling)


@pytest.mark.parametrize(("rng", "expected"), [(0.0, 1.0), (0.999999, 2.0)])
def test_jitter_stays_within_half_to_full_ceiling(rng: float, expected: float) -> None:
    delay = retry_delay(POLICY, 2, None, rng)

    assert delay is not None
    assert 1.0 <= delay <= 2.0
    assert delay == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize(("retry_after", "expected"), [(3.0, 3.0), (30.0, 30.0), (-1.0, 0.0)])
def test_retry_after_is_honoured_instead_of_backoff(retry_after: float, expected: float) -> None:
    assert retry_delay(POLICY, 0, retry_after, 0.5) == expected


def test_retry_after_above_max_retry_after_means_do_not_wait() -> None:
    assert retry_delay(POLICY, 0, 30.5, 0.5) is None
