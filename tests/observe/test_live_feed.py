"""The live feed's bookkeeping, driven by the real engine: rows per running request,
bounded queues per dashboard, bounded memory for requests that never end."""

from __future__ import annotations

from router.engine import Engine
from router.events import RequestRecord
from server.observe.live import LiveFeed, RowFilter
from tests.observe._support import routes, serve
from tests.unit._fakes import FakeClock, FakeProvider, RecordingSleep, answer, cut, route


async def test_a_dashboard_sees_a_request_start_switch_and_end() -> None:
    router = Engine(clock=FakeClock(), rng=lambda: 0.5, sleep=RecordingSleep())
    feed = LiveFeed()
    sub = feed.subscribe(RowFilter())
    a = FakeProvider("a", cut("Once", " upon"), supports_prefill=True)
    b = FakeProvider("b", answer(" a time."), supports_prefill=True)
    feed.started(RequestRecord(request_id="r1", route="chat"))
    await serve(
        router,
        routes([a, b], chat=route("a", "b", stream_fallback_mode="prefill")),
        "chat",
        "r1",
        feed.observe,
    )

    rows = [sub.queue.get_nowait() for _ in range(sub.queue.qsize())]
    assert rows[0] is not None and rows[0].status == "running" and rows[0].route == "chat"
    final = rows[-1]
    assert final is not None
    assert final.status == "ok" and final.target == "b/m" and final.attempts == 2
    assert [(s.from_target, s.to_target, s.mode) for s in final.switches] == [
        ("a/m", "b/m", "prefill")
    ]
    assert any(r is not None and r.status == "running" and r.switches for r in rows)
    assert feed.running == {}


def test_a_dashboard_that_falls_behind_is_marked_lagged_not_waited_for() -> None:
    feed = LiveFeed(queue_size=2)
    slow = feed.subscribe(RowFilter())
    for i in range(5):
        feed.started(RequestRecord(request_id=f"r{i}", route="chat"))
    assert slow.queue.qsize() == 2
    assert slow.lagged and feed.lagged == 1


def test_requests_that_never_end_are_evicted_beyond_the_cap_and_counted() -> None:
    feed = LiveFeed(max_running=3)
    for i in range(5):
        feed.started(RequestRecord(request_id=f"r{i}", route="chat"))
    assert list(feed.running) == ["r2", "r3", "r4"]
    assert feed.evicted == 2


def test_closing_ends_every_open_feed() -> None:
    feed = LiveFeed()
    sub = feed.subscribe(RowFilter())
    feed.started(RequestRecord(request_id="r1", route="chat"))
    feed.close()
    assert sub.queue.get_nowait() is None
