"""A deadline over the upstream reads of one attempt, without a timer per read.

`asyncio.timeout_at` around every read creates and cancels a timer per chunk, the
largest cost of the engine's own per-chunk work. A `Watchdog` arms one timer; moving
the deadline later only records it, and a timer that fires early re-arms itself. It
cancels the task only while the task waits for the upstream, never while a consumer
holds the stream at a ``yield``; cancellation and `Task.uncancel` work as in
`asyncio.timeout`.

Deadlines are on the engine's injected clock, never the event loop's: the timer only
wakes the watchdog, which then asks the clock whether the deadline has passed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["Watchdog"]


class Watchdog:
    __slots__ = (
        "_armed_at",
        "_cancelling",
        "_clock",
        "_handle",
        "_loop",
        "_task",
        "deadline",
        "fired",
        "waiting",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, clock: Callable[[], float]) -> None:
        self._loop = loop
        self._clock = clock
        self._task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = 0.0
        self.deadline = 0.0
        self.waiting = False
        self.fired = False

    def wait(self, deadline: float) -> None:
        """About to await the upstream, which must answer by ``deadline``."""
        # A stream may be iterated by different tasks over its life (a server holds
        # the response back in the request's task, then streams it from another).
        task = asyncio.current_task()
        if task is not self._task:
            assert task is not None, "a Watchdog runs inside a task"
            self._task = task
            self._cancelling = task.cancelling()
        self.deadline = deadline
        self.waiting = True
        if self._handle is None or deadline < self._armed_at:
            self._arm(deadline)

    def _arm(self, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed_at = when
        self._handle = self._loop.call_later(max(when - self._clock(), 0.0), self._check)

    def _check(self) -> None:
        self._handle = None
        if not self.waiting:
            return  # re-armed by the next wait()
        if self._clock() < self.deadline:
            self._arm(self.deadline)
            return
        self.fired = True
        assert self._task is not None
        self._task.cancel()

    def expired(self) -> bool:
        """On CancelledError: whether this watchdog caused it (and it is now undone)."""
        return self.fired and self._task is not None and (self._task.uncancel() <= self._cancelling)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
