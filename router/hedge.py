"""Hedged first tokens: a second attempt beside a slow first one, the first to answer wins.

A route with ``hedge_after_s`` gives an attempt that has sent no content by then (and
nothing was shown to the client yet) a partner: the route's next usable candidate,
asked the same request in parallel. Each attempt runs in its own task and passes its
batches through one queue; before it takes in its first content (text, reasoning, a
tool call or its finish) it *claims* the race. The first claim wins: the other attempt
is cancelled at once, which closes its upstream connection, and its record says it
was cancelled and why. The client sees one stream, the winner's.

An attempt that fails before either claimed leaves the other running alone: the
engine reports the failure as usual and decides whether the request goes on.

Everything here is plain asyncio; deadlines are on the engine's injected clock, as the
`Watchdog`'s are.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from math import ceil

from router._attempt import Try
from router.events import Event

__all__ = ["MIN_SAMPLES", "Latencies", "Race"]

MIN_SAMPLES = 20
"""``hedge_after_s = "p95"`` hedges only once the route has this many samples."""


class Latencies:
    """A route's recent times to first token (seconds), for ``hedge_after_s = "p95"``."""

    __slots__ = ("_p95", "_samples")

    def __init__(self, size: int = 200) -> None:
        self._samples: deque[float] = deque(maxlen=size)
        self._p95: float | None = None

    def add(self, seconds: float) -> None:
        self._samples.append(seconds)
        self._p95 = None

    def p95(self) -> float | None:
        """The 95th percentile of the recent samples (nearest rank); None until there
        are `MIN_SAMPLES`."""
        n = len(self._samples)
        if n < MIN_SAMPLES:
            return None
        if self._p95 is None:
            self._p95 = sorted(self._samples)[ceil(0.95 * n) - 1]
        return self._p95


Launch = Callable[[], tuple[Try, AsyncGenerator[list[Event], None], list[Event]] | None]
"""Starts the partner: its attempt, its event stream (gated by `Race.gate`) and the
events that announce it; None if no candidate is usable any more."""


class Race:
    """The attempts of one hedge. `run` yields their batches, and each attempt that
    failed while another still ran (a `Try`, for the engine to report); afterwards
    `result` is the attempt whose outcome the request goes on from."""

    __slots__ = ("_queue", "_tasks", "aborted", "partner", "result", "winner")

    def __init__(self) -> None:
        self._queue: asyncio.Queue[list[Event] | Try | None] = asyncio.Queue()
        self._tasks: dict[Try, asyncio.Task[None]] = {}
        self.winner: Try | None = None
        """The attempt that claimed first: the one the client sees."""
        self.partner: Try | None = None
        self.result: Try | None = None
        self.aborted = False

    def gate(self, tr: Try) -> Callable[[], Awaitable[None]]:
        """``tr``'s claim, for `run_attempt`: returns at once if ``tr`` is the first to
        claim, otherwise never (``tr`` is being cancelled)."""

        async def claim() -> None:
            if self.winner is None:
                self.winner = tr
                self._cancel(but=tr, why=f"{tr.target.name} sent content first")
            elif self.winner is not tr:
                await asyncio.get_running_loop().create_future()  # cancelled, never set

        return claim

    def abort(self, why: str) -> None:
        """Stop every attempt still running: the request ends without them."""
        self.aborted = True
        self._cancel(but=None, why=why)

    def _cancel(self, but: Try | None, why: str) -> None:
        for tr, task in self._tasks.items():
            if tr is not but and not task.done() and tr.cancelled is None:
                tr.cancelled = why
                task.cancel()

    def _start(self, tr: Try, events: AsyncGenerator[list[Event], None]) -> None:
        self._tasks[tr] = asyncio.create_task(self._pump(tr, events))

    async def _pump(self, tr: Try, events: AsyncGenerator[list[Event], None]) -> None:
        put = self._queue.put_nowait
        try:
            async with aclosing(events):
                async for batch in events:
                    put(batch)
        finally:
            put(tr)

    async def run(
        self,
        first: Try,
        events: AsyncGenerator[list[Event], None],
        hedge_at: float,
        clock: Callable[[], float],
        launch: Launch,
    ) -> AsyncGenerator[list[Event] | Try, None]:
        """Run ``first``; at ``hedge_at`` (on ``clock``), if no attempt claimed yet,
        start the partner ``launch`` gives."""
        self._start(first, events)
        queue = self._queue
        loop = asyncio.get_running_loop()
        timer = loop.call_later(max(hedge_at - clock(), 0.0), queue.put_nowait, None)
        live = 1
        try:
            while live:
                item = await queue.get()
                if item is None:  # time to hedge
                    if self.winner is None and self.partner is None and not self.aborted:
                        started = launch()
                        if started is not None:
                            self.partner, partner_events, announce = started
                            self._start(self.partner, partner_events)
                            live += 1
                            yield announce
                elif type(item) is list:
                    yield item
                else:
                    assert isinstance(item, Try)
                    live -= 1
                    if item.cancelled is not None:
                        continue
                    if self.winner is None and item.error is None:
                        # it ended cleanly without any content: an (empty) answer
                        self.winner = item
                        self._cancel(but=item, why=f"{item.target.name} answered first")
                    if self.winner is None or item is self.winner:
                        self.result = item
                    if (
                        item.error is not None
                        and item is not self.winner
                        and (item is not self.result or live)
                    ):
                        yield item  # failed beside another attempt: the engine reports it
        finally:
            timer.cancel()
            for task in self._tasks.values():
                task.cancel()
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
            for tr in self._tasks:
                if tr.cancelled is not None and tr.rec.outcome == "running":
                    tr.rec.outcome = "cancelled"
                    tr.rec.error = tr.cancelled
