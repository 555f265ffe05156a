"""`RequestLogWriter`: request log rows in SQLite and PostgreSQL, written in batches off
the hot path, through outages and shutdowns."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from sqlalchemy import Row, event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from router.engine import Engine
from router.errors import AuthenticationFailed
from router.events import Done, Failed, RequestRecord, Usage
from server.observe import RequestLogWriter, row_of
from server.store.models import RequestLog
from tests.observe._support import GatedSleep, WallClock, routes, serve
from tests.observe.conftest import Database
from tests.unit._fakes import FakeProvider, answer, cut, fail, route

USAGE = Usage(prompt_tokens=5, completion_tokens=2, total_tokens=7)


async def finished(router: Engine, *request_ids: str) -> list[Done | Failed]:
    """The final events of successful requests on route ``chat``, one per id."""
    a = FakeProvider("a", *[answer("Hello", usage=USAGE)] * len(request_ids))
    tbl = routes([a], chat=route("a"))
    return [await serve(router, tbl, "chat", rid) for rid in request_ids]


def feed(writer: RequestLogWriter, finals: list[Done | Failed]) -> None:
    for final in finals:
        writer.observe(final.record.request_id, [final])


async def rows(engine: AsyncEngine) -> dict[str, Row[Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(select(RequestLog.__table__))
        return {row.id: row for row in result}


@contextmanager
def inserts(engine: AsyncEngine, on_insert: asyncio.Event | None = None) -> Iterator[list[int]]:
    """Counts the request log INSERT statements sent to the database driver."""
    seen: list[int] = []

    def count(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO REQUEST_LOG"):
            seen.append(len(params) if isinstance(params, list | tuple) else 1)
            if on_insert is not None:
                on_insert.set()

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


def utc(moment: datetime) -> datetime:
    """SQLite returns the UTC timestamps we wrote without their zone."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- what is written ------------------------------------------------------------------


async def test_writes_each_finished_request_with_its_status_usage_and_record(
    router: Engine, engine: AsyncEngine
) -> None:
    refusal = AuthenticationFailed("bad key", provider="c", upstream_status=401)
    tbl = routes(
        [
            FakeProvider("a", answer("Hello", usage=USAGE)),
            FakeProvider("b", cut("Once")),
            FakeProvider("c", fail(refusal)),
        ],
        chat=route("a"),
        story=route("b", stream_fallback_mode="terminate"),
        strict=route("c"),
    )
    clock = WallClock()

    async with RequestLogWriter(engine, flush_interval_s=60, now=clock) as writer:
        finals = {
            rid: await serve(router, tbl, name, rid, writer.observe)
            for rid, name in [
                ("req-ok", "chat"),
                ("req-partial", "story"),
                ("req-failed", "strict"),
            ]
        }
        await writer.flush()

    written = await rows(engine)
    assert {rid: (r.route, r.target, r.status) for rid, r in written.items()} == {
        "req-ok": ("chat", "a/m", "ok"),
        "req-partial": ("story", "b/m", "partial"),
        "req-failed": ("strict", "c/m", "failed"),
    }
    ok = written["req-ok"]
    assert (ok.prompt_tokens, ok.completion_tokens, ok.total_tokens) == (5, 2, 7)
    assert (ok.error, ok.cost_usd) == (None, None)
    assert ok.ttft_ms is not None and 0 <= ok.ttft_ms <= ok.latency_ms
    assert utc(ok.created_at) == clock.now - timedelta(milliseconds=ok.latency_ms)
    assert written["req-partial"].ttft_ms is not None
    assert written["req-partial"].error == "StreamInterrupted: body cut"
    assert written["req-failed"].ttft_ms is None
    assert written["req-failed"].error == "AuthenticationFailed: bad key"
    for rid, final in finals.items():
        assert msgspec.convert(written[rid].record, RequestRecord) == final.record
    assert writer.dropped == 0


async def test_a_request_logged_again_is_stored_once(router: Engine, engine: AsyncEngine) -> None:
    # What a retry does after a commit whose acknowledgement was lost.
    finals = await finished(router, "req-1")

    async with RequestLogWriter(engine) as writer:
        feed(writer, finals)
        await writer.flush()
        feed(writer, finals)
        await writer.flush()

    assert list(await rows(engine)) == ["req-1"]
    assert (writer.written, writer.dropped, writer.write_errors) == (2, 0, 0)


async def test_a_row_the_database_rejects_is_dropped_and_the_others_are_written(
    router: Engine, engine: AsyncEngine
) -> None:
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite stores any text: it has nothing to reject here")
    # PostgreSQL refuses a NUL character in text, such as this upstream error message.
    refusal = AuthenticationFailed("bad\x00key", provider="b", upstream_status=401)
    tbl = routes(
        [FakeProvider("a", answer("Hi"), answer("Hi")), FakeProvider("b", fail(refusal))],
        chat=route("a"),
        strict=route("b"),
    )
    finals = [
        await serve(router, tbl, "chat", "req-1"),
        await serve(router, tbl, "strict", "req-2"),
        await serve(router, tbl, "chat", "req-3"),
    ]

    async with RequestLogWriter(engine) as writer:
        feed(writer, finals)
        await writer.flush()

    assert sorted(await rows(engine)) == ["req-1", "req-3"]
    assert writer.drops["rejected"] == 1


async def test_a_route_named_longer_than_its_column_is_logged_truncated(
    router: Engine, engine: AsyncEngine
) -> None:
    # A client may name any provider/model directly: the route is then that name.
    direct = "a/" + "m" * 300
    tbl = routes([FakeProvider("a", answer("Hi"))])

    async with RequestLogWriter(engine) as writer:
        await serve(router, tbl, direct, "req-1", writer.observe)
        await writer.flush()

    row = (await rows(engine))["req-1"]
    assert (row.route, row.target) == (direct[:200], direct[:256])


# --- batching -------------------------------------------------------------------------


async def test_writes_many_requests_in_few_inserts(router: Engine, engine: AsyncEngine) -> None:
    finals = await finished(router, *(f"req-{n:03}" for n in range(120)))

    with inserts(engine) as statements:
        async with RequestLogWriter(engine, batch_size=50, flush_interval_s=60) as writer:
            feed(writer, finals)
            await writer.flush()

    assert len(await rows(engine)) == 120
    assert statements == [50, 50, 20]


async def test_writes_a_part_batch_once_the_flush_interval_passes(
    router: Engine, engine: AsyncEngine
) -> None:
    inserted = asyncio.Event()

    with inserts(engine, on_insert=inserted) as statements:
        async with RequestLogWriter(engine, batch_size=100, flush_interval_s=0.01) as writer:
            feed(writer, await finished(router, "req-1", "req-2"))
            await asyncio.wait_for(inserted.wait(), timeout=10)  # no flush, no close

    assert statements == [2]


# --- never in the way of serving ------------------------------------------------------


async def test_a_full_queue_drops_rows_and_counts_them_without_waiting(
    router: Engine, engine: AsyncEngine
) -> None:
    finals = await finished(router, *(f"req-{n}" for n in range(5)))
    writer = RequestLogWriter(engine, max_queue=3)  # not started: as if the database hung

    feed(writer, finals)  # plain calls: there is nothing they could wait on

    assert (writer.depth, writer.dropped, writer.drops["queue_full"]) == (3, 2, 2)
    writer.start()
    await writer.aclose()
    assert sorted(await rows(engine)) == ["req-0", "req-1", "req-2"]


async def test_rows_wait_through_a_database_outage_and_are_written_once_it_is_back(
    router: Engine, engine: AsyncEngine, database: Database
) -> None:
    sleep = GatedSleep()
    tbl = routes([FakeProvider("a", *[answer("Hi")] * 4)], chat=route("a"))

    async with RequestLogWriter(
        engine, flush_interval_s=60, retry_initial_s=0.5, sleep=sleep
    ) as writer:
        await database.go_down(engine)
        for rid in ("req-1", "req-2"):
            await serve(router, tbl, "chat", rid, writer.observe)
        flushing = asyncio.create_task(writer.flush())
        await sleep.called(1)  # the insert failed: the writer backs off, nothing raised

        # Serving goes on; new rows queue behind the batch being retried.
        for rid in ("req-3", "req-4"):
            await serve(router, tbl, "chat", rid, writer.observe)
        assert (writer.depth, writer.write_errors) == (2, 1)
        sleep.step()
        await sleep.called(2)  # failed again: a longer wait
        await database.come_back()
        sleep.open()
        await flushing
        await writer.flush()

    assert sorted(await rows(engine)) == ["req-1", "req-2", "req-3", "req-4"]
    assert sleep.delays[:2] == [0.5, 1.0]
    assert writer.dropped == 0


# --- shutdown -------------------------------------------------------------------------


async def test_aclose_writes_every_row_still_queued(router: Engine, engine: AsyncEngine) -> None:
    writer = RequestLogWriter(engine, batch_size=500, flush_interval_s=60)
    writer.start()
    feed(writer, await finished(router, *(f"req-{n}" for n in range(10))))

    await writer.aclose()

    assert len(await rows(engine)) == 10
    assert (writer.depth, writer.dropped) == (0, 0)
    feed(writer, await finished(router, "late"))  # after shutdown: counted, not queued
    assert (writer.depth, writer.drops["shutdown"]) == (0, 1)


async def test_aclose_gives_up_at_its_deadline_and_counts_what_it_could_not_write(
    router: Engine, engine: AsyncEngine, database: Database
) -> None:
    sleep = GatedSleep()  # never opened: the retry waits past the deadline
    writer = RequestLogWriter(engine, flush_interval_s=60, sleep=sleep)
    writer.start()
    finals = await finished(router, "req-1", "req-2", "req-3")
    await database.go_down(engine)
    feed(writer, finals)

    await writer.aclose(timeout_s=0.05)

    assert writer.write_errors >= 1
    assert (writer.depth, writer.drops["shutdown"]) == (0, 3)
    await database.come_back()
    assert await rows(engine) == {}


# --- retention ------------------------------------------------------------------------


async def test_prune_deletes_only_rows_older_than_the_retention(
    router: Engine, engine: AsyncEngine
) -> None:
    clock = WallClock()
    today = clock.now
    ages = {"days-40": 40, "days-31": 31, "days-29": 29, "today": 0}
    finals = await finished(router, *ages)

    async with RequestLogWriter(engine, now=clock) as writer:
        for final in finals:
            clock.now = today - timedelta(days=ages[final.record.request_id])
            feed(writer, [final])
        await writer.flush()
        clock.now = today
        assert await writer.prune(30) == 2

    assert sorted(await rows(engine)) == ["days-29", "today"]


async def test_prunes_at_start_and_then_every_interval(router: Engine, engine: AsyncEngine) -> None:
    sleep, clock = GatedSleep(), WallClock()
    finals = await finished(router, "old", "new")
    writer = RequestLogWriter(
        engine, retention_days=30, prune_interval_s=3600, now=clock, sleep=sleep
    )

    async with writer:
        await sleep.called(1)  # pruned at start, now waiting for the next time
        today = clock.now
        clock.now = clock.back(days=40)
        feed(writer, finals[:1])
        clock.now = today
        feed(writer, finals[1:])
        await writer.flush()
        assert sorted(await rows(engine)) == ["new", "old"]

        sleep.step()
        await sleep.called(2)  # pruned again

        assert sorted(await rows(engine)) == ["new"]
    assert sleep.delays == [3600, 3600]


async def test_past_its_size_limit_the_oldest_rows_are_deleted(
    router: Engine, engine: AsyncEngine
) -> None:
    clock = WallClock()
    ids = [f"req-{i:02d}" for i in range(20)]
    finals = await finished(router, *ids)
    one_row = row_of(finals[0], clock.now)["size_bytes"]
    limit_mb = 5.5 * one_row / (1024 * 1024)  # room for five rows and a half
    async with RequestLogWriter(engine, max_mb=limit_mb, trim_every=8, now=clock) as writer:
        for i, final in enumerate(finals):
            clock.now = clock.now + timedelta(seconds=1)  # oldest first
            feed(writer, [final])
            if i % 4 == 3:
                await writer.flush()
        await writer.flush()
        await writer.trim()  # whatever the last writes left over the limit
    left = await rows(engine)
    assert sorted(left) == ids[-5:]  # the newest five: a sixth would pass the limit
    assert sum(row.size_bytes for row in left.values()) <= limit_mb * 1024 * 1024
