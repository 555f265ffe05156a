"""Streaming a door's answer: hold it back until the first content, then relay it.

Until the first content reaches the client a failure is invisible, so a request that
fails on every target still answers with a real HTTP error; after it, every batch of
engine events is one write.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from router.events import (
    Done,
    Event,
    Failed,
    ReasoningDelta,
    RefusalDelta,
    TextDelta,
    ToolCallDelta,
)

__all__ = ["SSE_HEADERS", "hold_back", "relay"]

log = logging.getLogger("llmgate")
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
"""Streams are not cached, and proxies that honour ``x-accel-buffering`` do not hold them."""
# What ends the hold-back: anything the client is shown, or the outcome. Reasoning
# counts: a reasoning model can think for minutes, and a client shown nothing that long
# may give up on the request.
_CONTENT = (TextDelta, ToolCallDelta, ReasoningDelta, RefusalDelta, Done, Failed)


async def hold_back(
    events: AsyncIterator[list[Event]],
) -> tuple[list[list[Event]], Failed | None]:
    """Pull batches until the first content or the outcome.

    Until the first content a failure is invisible, so a request that fails on every
    target can still answer with a real HTTP error: the `Failed` event is returned then.
    """
    held: list[list[Event]] = []
    async for batch in events:
        held.append(batch)
        if any(type(e) in _CONTENT for e in batch):
            break
    last = held[-1][-1] if held and held[-1] else None
    if isinstance(last, Failed) and not last.partial:
        return held, last
    return held, None


async def relay(
    encode: Callable[[list[Event]], bytes],
    held: list[list[Event]],
    events: AsyncIterator[list[Event]],
    on_error: Callable[[], bytes],
) -> AsyncIterator[bytes]:
    """The response body: one write per batch. An unexpected error after the status
    line was sent ends the stream in-band (``on_error``), never as a success."""
    try:
        for batch in held:
            data = encode(batch)
            if data:
                yield data
        async for batch in events:
            data = encode(batch)
            if data:
                yield data
    except Exception as exc:
        log.exception("unhandled error while streaming a response", exc_info=exc)
        yield on_error()
