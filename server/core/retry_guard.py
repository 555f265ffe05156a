"""Answering a client's automatic retry of a request llmgate has just given up on.

When every target of a route has failed, llmgate has already made the attempts its
policy allows, and its answer says so: ``x-should-retry: false``, which the openai and
anthropic SDKs (and LangChain, pydantic-ai, instructor, built on them) obey. Some
clients decide on the status code alone: the Vercel AI SDK retries any 5xx, 408, 409
or 429 twice, after 2 s and 4 s (or after ``Retry-After``), so one of its calls would
run the whole route three times. Such clients are named by their ``User-Agent``
(``[server] retry_guard_user_agents``). An identical request from one of them (same
key, path and body) within ``[server] retry_guard_s`` of the failure gets that failure
again, marked ``x-llmgate-retry-guard: replayed``, without an upstream call. A failure
that came with a ``Retry-After`` is replayed only until then: a client that waited as
told is served anew.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

import msgspec

__all__ = ["REPLAYED", "Remembered", "RetryGuard"]

REPLAYED = "x-llmgate-retry-guard"


class Remembered(msgspec.Struct, frozen=True):
    """A final failure's response, as it was sent."""

    status: int
    body: bytes
    headers: dict[str, str]
    until: float


class RetryGuard:
    """Final failures of the last ``window_s`` seconds, by request fingerprint; bounded
    (the oldest is forgotten first) and per process."""

    def __init__(
        self,
        window_s: float,
        user_agents: Sequence[str],
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = 4096,
    ) -> None:
        self._window = window_s
        self._agents = tuple(a.lower() for a in user_agents if a)
        self._clock = clock
        self._max = max_entries
        self._failures: OrderedDict[bytes, Remembered] = OrderedDict()

    def fingerprint(self, user_agent: str | None, who: str, path: str, body: bytes) -> bytes | None:
        """The key of a request from a client that retries on status alone; None for any
        other client (or with the guard off), which is then never looked up."""
        if not self._window or not user_agent or not self._agents:
            return None
        agent = user_agent.lower()
        if not any(a in agent for a in self._agents):
            return None
        digest = hashlib.sha256(who.encode())
        digest.update(b"\0" + path.encode() + b"\0")
        digest.update(body)
        return digest.digest()

    def recall(self, fingerprint: bytes) -> Remembered | None:
        """The failure to replay for this request, if it is still fresh."""
        if not self._failures:
            return None
        now = self._clock()
        while self._failures:  # the oldest first: drop what has expired
            oldest = next(iter(self._failures.values()))
            if oldest.until > now:
                break
            self._failures.popitem(last=False)
        hit = self._failures.get(fingerprint)
        if hit is not None and hit.until <= now:  # a shorter Retry-After than those before it
            del self._failures[fingerprint]
            return None
        return hit

    def remember(
        self,
        fingerprint: bytes,
        status: int,
        body: bytes,
        headers: dict[str, str],
        retry_after: float | None,
    ) -> None:
        """Keep a final failure to replay; until its ``retry_after`` if it has one."""
        wait = self._window if retry_after is None else min(retry_after, self._window)
        if wait <= 0:
            return
        until = self._clock() + wait
        self._failures.pop(fingerprint, None)
        self._failures[fingerprint] = Remembered(status, body, headers, until)
        while len(self._failures) > self._max:
            self._failures.popitem(last=False)
