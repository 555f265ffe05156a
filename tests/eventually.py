"""Waiting for something that happens in the background (a log row written, a change
heard by another process), without sleeping a fixed time: poll until it holds or a
deadline passes, and say what never happened."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["eventually", "eventually_async"]

T = TypeVar("T")
POLL_S = 0.02


def eventually(check: Callable[[], T], what: str, within_s: float = 10.0) -> T:
    """``check()``'s first truthy result; fails naming ``what`` after ``within_s``."""
    deadline = time.monotonic() + within_s
    while not (result := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(POLL_S)
    return result


async def eventually_async(
    check: Callable[[], Awaitable[T]], what: str, within_s: float = 10.0
) -> T:
    """The same for an async ``check``, without blocking the event loop."""
    deadline = time.monotonic() + within_s
    while not (result := await check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(POLL_S)
    return result
