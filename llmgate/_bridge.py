"""Synchronous calls over the async engine: a private event loop in its own thread.

The caller's thread only waits on futures, so a synchronous call works from a plain
script, from a worker thread of a running event loop, and even from inside a running
loop (which it then blocks, as any synchronous call does) without deadlocking.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread:
    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="llmgate-loop", daemon=True
        )
        self._thread.start()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def iterate(self, stream: AsyncIterator[T]) -> Iterator[T]:
        """Drive an async iterator from this thread; closes it however iteration ends."""
        try:
            while True:
                try:
                    yield self.run(_anext(stream))
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                self.run(aclose())

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self.run(self._loop.shutdown_asyncgens())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


async def _anext(stream: AsyncIterator[T]) -> T:
    return await stream.__anext__()
