"""A run of the playground, from its spec to the SSE messages the page shows.

A normal run is a real request (`Gateway.run`): it shows in the live feed, the request
log and the metrics, and counts for the circuit breakers, like any client's. A simulated
run goes through a private `Engine` over `simulated_table` (see `simulate`). Either way
the stream ends with the engine's outcome, or with a failure of its own when the run
breaks off or exceeds the route's request timeout, then `END`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator
from typing import Any

from litestar.response import ServerSentEventMessage

from router.engine import Engine
from router.errors import NoSuchModel
from router.events import Done, Event, Failed
from router.provider import ProviderRequest
from server.core.gateway import Gateway
from server.dashboard.playground.render import END, Renderer, Run
from server.dashboard.playground.simulate import simulated_table

__all__ = ["GRACE_S", "messages"]

log = logging.getLogger("llmgate.dashboard")

GRACE_S = 2.0
"""Beyond the route's ``request_timeout_s``, which the engine enforces itself, before
the playground gives up on a run."""


def _start(gateway: Gateway, run: Run) -> tuple[AsyncIterator[list[Event]], float]:
    """The run's event stream and the route's request timeout."""
    spec = run.spec
    params: dict[str, Any] = {} if spec.max_tokens is None else {"max_tokens": spec.max_tokens}
    request = ProviderRequest([{"role": "user", "content": spec.prompt}], params)
    table = gateway.table
    if not run.simulated:
        # The playground shows a restart's reset marker, so it asks for it.
        events = gateway.run(spec.route, request, run.request_id, accept_reset=True)
        return events, table.resolve(spec.route).policy.request_timeout_s
    sim = simulated_table(table, spec.route, spec.simulate, spec.n)
    engine = Engine(clock=time.monotonic, rng=random.random)
    events = engine.stream(sim, spec.route, request, request_id=run.request_id, accept_reset=True)
    return events, sim.routes[spec.route].policy.request_timeout_s


async def messages(gateway: Gateway, render: Renderer) -> AsyncIterator[ServerSentEventMessage]:
    """The run of ``render.run`` as SSE messages, `END` last."""
    assert render.run is not None
    events: AsyncIterator[list[Event]] | None = None
    try:
        try:
            events, timeout = _start(gateway, render.run)
        except (NoSuchModel, ValueError) as exc:
            for message in render.failure(f"The run cannot start: {exc}"):
                yield message
            yield END
            return
        yield render.begin(timeout)
        deadline = asyncio.get_running_loop().time() + timeout + GRACE_S
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    batch = await anext(events)
            except StopAsyncIteration:
                for message in render.failure("The run ended without an outcome."):
                    yield message
                break
            except TimeoutError:
                for message in render.failure(
                    f"The run exceeded the route's request timeout ({timeout:g} s)."
                ):
                    yield message
                break
            for message in render.batch(batch):
                yield message
            if batch and type(batch[-1]) in (Done, Failed):
                break
        yield END
    except Exception:
        log.exception("playground run %s failed", render.run.request_id)
        for message in render.failure("The playground failed; see the gateway's log."):
            yield message
        yield END
    finally:
        # The client went away, the run timed out or ended: release the upstream now.
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()
