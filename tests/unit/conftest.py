from __future__ import annotations

import pytest

from router.engine import Engine
from tests.unit._fakes import FakeClock, RecordingSleep


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def engine(clock: FakeClock, sleep: RecordingSleep) -> Engine:
    return Engine(clock=clock, rng=lambda: 0.5, sleep=sleep)
