"""Recent attempts and failures per target, for the dashboard's routes page.

A `TargetHealth` is a `server.core.gateway.Observer`. An attempt counts once it has ended:
as a failure on its `AttemptFailed`, as a success when the request's `Done` names its
target (the attempt that answered). An attempt abandoned because the client went away
ended neither way and is not counted: that is no verdict on the target.

Counts live in a ring of time buckets per target (by default 30 buckets of 10 seconds:
the last 5 minutes), so an event costs O(1) and a target's memory is fixed. The number
of targets is bounded too (`max_targets`, least recently seen forgotten first): a
client can name any ``provider/model`` of a configured provider, and a gateway must
not grow with the names it is sent.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from router.events import AttemptFailed, Done, Event

__all__ = ["TargetHealth"]


class _Ring:
    """One target's buckets: bucket ``i`` of the ring holds the counts of the time
    slot ``slots[i]`` (slot = ``int(now // bucket_s)``); a stale slot is reused."""

    __slots__ = ("attempts", "failures", "slots")

    def __init__(self, size: int) -> None:
        self.slots = [-1] * size
        self.attempts = [0] * size
        self.failures = [0] * size

    def add(self, slot: int, failed: bool) -> None:
        i = slot % len(self.slots)
        if self.slots[i] != slot:
            self.slots[i] = slot
            self.attempts[i] = 0
            self.failures[i] = 0
        self.attempts[i] += 1
        if failed:
            self.failures[i] += 1

    def total(self, now_slot: int) -> tuple[int, int]:
        oldest = now_slot - len(self.slots)
        attempts = failures = 0
        for i, slot in enumerate(self.slots):
            if oldest < slot <= now_slot:
                attempts += self.attempts[i]
                failures += self.failures[i]
        return attempts, failures


class TargetHealth:
    """Attempts and failures per target over a rolling window (see the module doc)."""

    def __init__(
        self,
        *,
        window_s: float = 300.0,
        bucket_s: float = 10.0,
        max_targets: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < bucket_s <= window_s:
            raise ValueError("expected 0 < bucket_s <= window_s")
        self.window_s = window_s
        self.bucket_s = bucket_s
        self.max_targets = max_targets
        self._size = max(1, round(window_s / bucket_s))
        self._clock = clock
        self._rings: OrderedDict[str, _Ring] = OrderedDict()

    def observe(self, request_id: str, batch: list[Event]) -> None:
        for event in batch:
            if isinstance(event, AttemptFailed):
                self._count(event.target, failed=True)
            elif isinstance(event, Done):
                self._count(event.model, failed=False)

    def error_rate(self, target: str) -> tuple[int, int]:
        """``(attempts, failures)`` of ``target`` that ended within the window."""
        ring = self._rings.get(target)
        if ring is None:
            return 0, 0
        return ring.total(self._slot())

    def _slot(self) -> int:
        return int(self._clock() // self.bucket_s)

    def _count(self, target: str, *, failed: bool) -> None:
        ring = self._rings.get(target)
        if ring is None:
            if len(self._rings) >= self.max_targets:
                self._rings.popitem(last=False)
            ring = self._rings[target] = _Ring(self._size)
        else:
            self._rings.move_to_end(target)
        ring.add(self._slot(), failed)
