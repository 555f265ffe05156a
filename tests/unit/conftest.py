from __future__ import annotations

import pytest

from router.engine import Engine
from tests.unit._fakes import RecordingSleep, SteadyClock


@pytest.fixture
def clock() -> SteadyClock:
    return SteadyClock()


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def engine(clock: SteadyClock, sleep: RecordingSleep) -> Engine:
    return Engine(clock=clock, rng=lambda: 0.5, sleep=sleep)
