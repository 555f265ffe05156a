from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from providers import Upstream, make_client
from tests.fakes.openai_upstream import FakeUpstream


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture(params=["aiohttp", "httpx"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[Upstream]:
    """The real shared client, over each transport the gateway can be configured with."""
    client = make_client(request.param)
    yield client
    await client.aclose()
