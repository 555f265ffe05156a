"""Helpers for the observability tests: serving requests through the real engine to
observers, and a sleep and a wall clock that move only when a test says so."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from prometheus_client.parser import text_string_to_metric_families

from router.engine import Engine
from router.events import Done, Event, Failed, RequestRecord
from router.policy import RoutePolicy
from router.table import RoutingTable
from server.observe import Metrics
from tests.unit._fakes import REQUEST, FakeProvider

Observer = Callable[[str, list[Event]], None]


def routes(providers: list[FakeProvider], **policies: RoutePolicy) -> RoutingTable:
    return RoutingTable({p.name: p for p in providers}, policies)


async def serve(
    router: Engine,
    table: RoutingTable,
    route: str,
    request_id: str,
    *observers: Observer,
    started: Callable[[RequestRecord], None] | None = None,
) -> Done | Failed:
    """Run one request to its end, as the gateway does: ``started`` (its
    ``on_request_start`` hook) once the route is resolved, then every batch to every
    observer. The consumer accepts resets, as the dashboard's playground does."""
    last: Event | None = None
    record = RequestRecord(request_id=request_id, route=route)
    stream = router.stream(
        table, route, REQUEST, request_id=request_id, record=record, accept_reset=True
    )
    if started is not None:
        started(record)
    async for batch in stream:
        for observe in observers:
            observe(request_id, batch)
        last = batch[-1]
    assert isinstance(last, Done | Failed)
    return last


def samples(metrics: Metrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the rendered exposition, by name and labels."""
    body, _ = metrics.render()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    """The sum of the samples of ``name`` with these labels (and any others), or None."""
    wanted = set(labels.items())
    found = [v for (n, have), v in samples(metrics).items() if n == name and wanted <= have]
    return sum(found) if found else None


class GatedSleep:
    """A sleep that records each delay and returns only when the test lets it: one call
    per `step`, or every call once `open`."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self.opened = False
        self._permits = asyncio.Semaphore(0)
        self._called = asyncio.Condition()

    async def __call__(self, seconds: float) -> None:
        async with self._called:
            self.delays.append(seconds)
            self._called.notify_all()
        if not self.opened:
            await self._permits.acquire()

    async def called(self, times: int) -> None:
        """Wait until the sleep was entered ``times`` times in all."""
        async with self._called:
            await self._called.wait_for(lambda: len(self.delays) >= times)

    def step(self) -> None:
        self._permits.release()

    def open(self) -> None:
        self.opened = True
        self._permits.release()


class WallClock:
    """UTC wall-clock time that moves only when a test sets it."""

    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def back(self, days: float) -> datetime:
        return self.now - timedelta(days=days)
