"""`Engine.embed`: an embeddings request runs through a route as any request does."""

from __future__ import annotations

import pytest

from router.collect import Answer, fold
from router.engine import Engine
from router.errors import InvalidRequest, RequestError
from router.events import AttemptFailed, Embeddings, Event, Failed, Finish, Usage
from router.provider import EmbedRequest
from router.table import RoutingTable
from tests.unit._fakes import (
    FakeClock,
    FakeProvider,
    RecordingSleep,
    down,
    fail,
    route,
    table,
)

REQUEST = EmbedRequest(["one", "two"], dimensions=2)
VECTORS = [[1.0, 0.0], [0.0, 1.0]]


def vectors(usage: int = 3) -> list[list[Embeddings | Usage | Finish]]:
    return [[Embeddings(VECTORS), Usage(usage, 0, usage), Finish("stop")]]


async def run(engine: Engine, t: RoutingTable, model: str = "r") -> list[Event]:
    return [e async for batch in engine.embed(t, model, REQUEST, request_id="q") for e in batch]


def engine() -> tuple[Engine, RecordingSleep]:
    sleep = RecordingSleep()
    return Engine(clock=FakeClock(), rng=lambda: 0.5, sleep=sleep), sleep


async def test_the_vectors_travel_as_one_event_before_done() -> None:
    a = FakeProvider("a", vectors())
    eng, _ = engine()

    answer = fold([await run(eng, table(route("a"), a))])

    assert isinstance(answer, Answer)
    assert answer.vectors == VECTORS
    assert answer.done.model == "a/m" and answer.done.usage == Usage(3, 0, 3)
    assert [(r.target, r.outcome) for r in answer.done.record.attempts] == [("a/m", "ok")]
    assert a.calls[0].request == REQUEST


async def test_a_failure_is_retried_then_falls_back_like_any_request() -> None:
    a = FakeProvider("a", fail(down()), fail(down()))
    b = FakeProvider("b", vectors())
    eng, sleep = engine()

    events = await run(eng, table(route("a", "b", max_retries=1), a, b))
    answer = fold([events])

    assert isinstance(answer, Answer) and answer.vectors == VECTORS
    assert [e.target for e in events if isinstance(e, AttemptFailed)] == ["a/m", "a/m"]
    assert len(sleep.delays) == 1  # one backoff before the retry
    outcomes = [(r.target, r.outcome) for r in answer.done.record.attempts]
    assert outcomes == [("a/m", "failed"), ("a/m", "failed"), ("b/m", "ok")]


async def test_a_request_every_target_refuses_fails_with_the_refusal() -> None:
    refused = InvalidRequest("no token arrays here", provider="a", upstream_status=400)
    a = FakeProvider("a", fail(refused))
    eng, _ = engine()

    outcome = fold([await run(eng, table(route("a"), a))])

    assert isinstance(outcome, Failed) and outcome.error is refused


async def test_a_route_with_a_target_that_cannot_embed_is_refused_at_once() -> None:
    a = FakeProvider("a")
    cannot = FakeProvider("c")
    cannot.supports_embeddings = False
    eng, _ = engine()

    with pytest.raises(RequestError, match="c/m cannot embed") as raised:
        eng.embed(table(route("a", "c"), a, cannot), "r", REQUEST, request_id="q")

    assert raised.value.code == "model_not_embeddable"
    assert a.calls == []
