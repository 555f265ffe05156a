"""Test doubles for the pure engine: a scripted upstream, a clock and a sleep.

`FakeProvider` is a fake of an upstream (it implements `router.provider.Provider`), not a
mock of our own code: each `stream` call plays the next script, step by step.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Sequence
from typing import Any, TypeVar

import msgspec

from router.errors import ProviderError, StreamInterrupted, UpstreamUnavailable
from router.events import Chunk, Event, Finish, Reset, TextDelta, Usage
from router.policy import RoutePolicy
from router.provider import AttemptOptions, EmbedRequest, ProviderRequest
from router.table import RoutingTable


class Hang:
    """A script step that waits forever, like an upstream that went silent."""


HANG = Hang()


class Until:
    """A script step that waits until the test calls `release`: an upstream whose next
    bytes come exactly when the test says."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def release(self) -> None:
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()


Step = list[Chunk] | ProviderError | Hang | Until
Script = Sequence[Step]
T = TypeVar("T")

REQUEST = ProviderRequest([{"role": "user", "content": "Tell me a story"}], {"temperature": 0.2})


class Call(msgspec.Struct):
    model: str
    request: ProviderRequest | EmbedRequest
    options: AttemptOptions


class FakeProvider:
    """An upstream that plays one script per `stream` call and records what it was sent.

    A step is a batch of chunks to yield, a `ProviderError` to raise, `HANG` or an
    `Until`. A call
    beyond the scripts fails the test (the engine does not catch `AssertionError`).
    """

    def __init__(self, name: str, *scripts: Script, supports_prefill: bool = False) -> None:
        self.name = name
        self.supports_prefill = supports_prefill
        self.scripts = list(scripts)
        self.calls: list[Call] = []
        self.closed = 0

    def prefill_ok(self, model: str) -> bool:
        return self.supports_prefill

    def add(self, *scripts: Script) -> None:
        self.scripts.extend(scripts)

    supports_embeddings = True

    def stream(
        self, model: str, request: ProviderRequest, options: AttemptOptions
    ) -> AsyncGenerator[list[Chunk], None]:
        return self._play(Call(model, request, options))

    def embed(
        self, model: str, request: EmbedRequest, options: AttemptOptions
    ) -> AsyncGenerator[list[Chunk], None]:
        return self._play(Call(model, request, options))

    async def _play(self, call: Call) -> AsyncGenerator[list[Chunk], None]:
        self.calls.append(call)
        if not self.scripts:
            raise AssertionError(f"{self.name}: unexpected call #{len(self.calls)}")
        script = self.scripts.pop(0)
        try:
            for step in script:
                if isinstance(step, ProviderError):
                    raise step
                if isinstance(step, Hang):
                    await asyncio.Event().wait()
                elif isinstance(step, Until):
                    await step.wait()
                else:
                    yield step
        finally:
            self.closed += 1


def answer(*texts: str, finish: str = "stop", usage: Usage | None = None) -> Script:
    """A complete answer: one batch per text, then usage (if any) and the finish."""
    steps: list[Step] = [[TextDelta(t)] for t in texts]
    if usage is not None:
        steps.append([usage])
    steps.append([Finish(finish)])
    return steps


def cut(*texts: str) -> Script:
    """Some text, then the body ends without the upstream's end marker."""
    return [*([TextDelta(t)] for t in texts), StreamInterrupted("body cut", provider="x")]


def fail(error: ProviderError) -> Script:
    return [error]


def down() -> UpstreamUnavailable:
    return UpstreamUnavailable("service unavailable", provider="x", upstream_status=503)


class FakeClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class SteadyClock:
    """Monotonic seconds that follow real time (so that timeouts fire) and jump ahead
    when a test says so (a breaker's cooldown, without waiting it out)."""

    def __init__(self) -> None:
        self._offset = 1000.0 - time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += seconds


class RecordingSleep:
    """Records the delays the engine asks for and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def route(*providers: str, **policy: Any) -> RoutePolicy:
    """A route over ``<provider>/m`` targets, in order."""
    return RoutePolicy(targets=[f"{p}/m" for p in providers], **policy)


def table(policy: RoutePolicy, *providers: FakeProvider) -> RoutingTable:
    return RoutingTable({p.name: p for p in providers}, {"r": policy})


def client_text(events: Sequence[Event]) -> str:
    """What a client shows: text deltas, discarding everything before a `Reset`."""
    shown = ""
    for event in events:
        if isinstance(event, Reset):
            shown = ""
        elif isinstance(event, TextDelta):
            shown += event.text
    return shown


def of_type(events: Sequence[Event], kind: type[T]) -> list[T]:
    return [e for e in events if isinstance(e, kind)]
