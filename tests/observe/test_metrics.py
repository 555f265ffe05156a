"""`Metrics`: the engine's events, as Prometheus samples in the rendered exposition."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from providers.pricing import Price, PriceBook
from router.engine import Engine
from router.errors import AuthenticationFailed
from router.events import (
    AttemptFailed,
    AttemptRecord,
    AttemptStarted,
    Done,
    Event,
    RequestRecord,
    StreamSwitch,
    SwitchRecord,
    TextDelta,
    Usage,
)
from server.observe import Metrics, RequestLogWriter
from server.store import create_engine
from tests.observe._support import routes, sample, samples, serve
from tests.unit._fakes import REQUEST, FakeClock, FakeProvider, answer, cut, down, fail, route

# --- counts, from requests through the real engine --------------------------------------


async def test_counts_a_successful_request_by_route_status_and_attempt(router: Engine) -> None:
    metrics = Metrics()
    a = FakeProvider("a", answer("Hello", " there"))

    await serve(router, routes([a], chat=route("a")), "chat", "req-1", metrics.observe)

    assert sample(metrics, "llmgate_requests_total", route="chat", status="ok") == 1
    attempt = {"route": "chat", "target": "a/m", "outcome": "ok", "reason": ""}
    assert sample(metrics, "llmgate_attempts_total", **attempt) == 1
    assert sample(metrics, "llmgate_request_latency_seconds_count", route="chat") == 1
    assert sample(metrics, "llmgate_time_to_first_token_seconds_count", route="chat") == 1
    assert sample(metrics, "llmgate_gateway_overhead_seconds_count", route="chat") == 1
    assert not [k for k in samples(metrics) if k[0] == "llmgate_fallbacks_total"]


async def test_counts_retries_and_fallbacks_before_the_first_token(router: Engine) -> None:
    metrics = Metrics()
    a = FakeProvider("a", fail(down()), fail(down()))
    b = FakeProvider("b", answer("Hi"))

    tbl = routes([a, b], chat=route("a", "b", max_retries=1))
    await serve(router, tbl, "chat", "req-1", metrics.observe)

    failed = {"route": "chat", "target": "a/m", "outcome": "failed"}
    assert sample(metrics, "llmgate_attempts_total", **failed, reason="upstream_unavailable") == 2
    ok = {"route": "chat", "target": "b/m", "outcome": "ok", "reason": ""}
    assert sample(metrics, "llmgate_attempts_total", **ok) == 1
    fallback = {"route": "chat", "reason": "upstream_unavailable", "from_target": "a/m"}
    assert sample(metrics, "llmgate_fallbacks_total", **fallback, to_target="a/m") == 1
    assert sample(metrics, "llmgate_fallbacks_total", **fallback, to_target="b/m") == 1
    assert sample(metrics, "llmgate_requests_total", route="chat", status="ok") == 1
    assert not [k for k in samples(metrics) if k[0] == "llmgate_stream_switches_total"]


async def test_counts_each_attempt_as_a_selection_when_it_starts(router: Engine) -> None:
    metrics = Metrics()
    a = FakeProvider("a", fail(down()), fail(down()))
    b = FakeProvider("b", answer("Hi"), answer("Hello", " again"))
    tbl = routes([a, b], chat=route("a", "b", max_retries=1), solo=route("b"))

    await serve(router, tbl, "chat", "req-1", metrics.observe, started=metrics.started)

    assert sample(metrics, "llmgate_selections_total", route="chat", target="a/m") == 2
    assert sample(metrics, "llmgate_selections_total", route="chat", target="b/m") == 1
    # counted as it starts: an attempt still running is a selection already
    record = RequestRecord(request_id="req-2", route="solo")
    stream = router.stream(tbl, "solo", REQUEST, request_id="req-2", record=record)
    metrics.started(record)
    metrics.observe("req-2", await anext(stream))
    assert sample(metrics, "llmgate_selections_total", route="solo", target="b/m") == 1
    assert (
        sample(
            metrics, "llmgate_attempts_total", route="solo", target="b/m", outcome="ok", reason=""
        )
        is None
    )
    await stream.aclose()


@pytest.mark.parametrize(
    ("mode", "continuation", "resets"),
    [
        ("restart", ("A long", " time ago"), 1),  # a different answer: the client resets
        ("restart", ("Once", " upon", " a time"), 0),  # the same start: trimmed, seamless
        ("user_turn", (" a time",), 0),
    ],
)
async def test_counts_stream_switches_by_mode_and_resets(
    router: Engine, mode: str, continuation: tuple[str, ...], resets: int
) -> None:
    metrics = Metrics()
    a = FakeProvider("a", cut("Once", " upon"))
    b = FakeProvider("b", answer(*continuation))

    tbl = routes([a, b], chat=route("a", "b", stream_fallback_mode=mode))
    await serve(router, tbl, "chat", "req-1", metrics.observe)

    switch = {"route": "chat", "from_target": "a/m", "to_target": "b/m"}
    assert (
        sample(
            metrics,
            "llmgate_stream_switches_total",
            **switch,
            mode=mode,
            reason="stream_interrupted",
        )
        == 1
    )
    assert (sample(metrics, "llmgate_resets_total", route="chat") or 0) == resets
    assert sample(metrics, "llmgate_requests_total", route="chat", status="ok") == 1


async def test_tells_partial_from_failed_requests(router: Engine) -> None:
    metrics = Metrics()
    cut_off = FakeProvider("a", cut("Once"))
    refused = FakeProvider(
        "b", fail(AuthenticationFailed("bad key", provider="b", upstream_status=401))
    )
    tbl = routes(
        [cut_off, refused],
        story=route("a", stream_fallback_mode="terminate"),
        chat=route("b"),
    )

    await serve(router, tbl, "story", "req-1", metrics.observe)
    await serve(router, tbl, "chat", "req-2", metrics.observe)

    assert sample(metrics, "llmgate_requests_total", route="story", status="partial") == 1
    assert sample(metrics, "llmgate_requests_total", route="chat", status="failed") == 1
    assert sample(metrics, "llmgate_requests_total", route="chat", status="ok") is None
    # A request that never delivered content has no time to first token.
    assert not sample(metrics, "llmgate_time_to_first_token_seconds_count", route="chat")
    assert sample(metrics, "llmgate_request_latency_seconds_count", route="chat") == 1
    failed = {"route": "chat", "target": "b/m", "outcome": "failed"}
    assert sample(metrics, "llmgate_attempts_total", **failed, reason="upstream_auth_failed") == 1


# --- timings, from scripted batches on an injected clock --------------------------------


def attempt(number: int, target: str, start_ms: float, ttft_ms: float | None) -> AttemptRecord:
    return AttemptRecord(attempt=number, target=target, start_ms=start_ms, ttft_ms=ttft_ms)


SWITCH = SwitchRecord(
    from_target="a/m",
    to_target="b/m",
    mode="user_turn",
    reason="stream_interrupted",
    chars_delivered=4,
)
FALLBACK_THEN_ANSWER: list[tuple[float, list[Event]]] = [
    (0.0, [AttemptStarted(1, "a/m", "original")]),
    (0.3, [AttemptFailed(1, "a/m", "upstream_unavailable", "down", 503, 0, None)]),
    (0.3, [AttemptStarted(2, "b/m", "original")]),
    (0.5, [TextDelta("Hi")]),  # attempt 2 measured its first token at 100 ms
    (0.7, [TextDelta(" there")]),
    (
        0.8,
        [
            Done(
                "b/m",
                "stop",
                Usage(),
                RequestRecord(
                    request_id="req-1",
                    route="chat",
                    attempts=[attempt(1, "a/m", 0, None), attempt(2, "b/m", 300, 100)],
                ),
            )
        ],
    ),
]
CONTENT_THEN_SWITCH: list[tuple[float, list[Event]]] = [
    (0.0, [AttemptStarted(1, "a/m", "original")]),
    (0.2, [TextDelta("Once")]),  # attempt 1 measured its first token at 150 ms
    (0.4, [AttemptFailed(1, "a/m", "stream_interrupted", "cut", None, 4, None)]),
    (0.4, [AttemptStarted(2, "b/m", "user_turn")]),
    (0.6, [StreamSwitch(SWITCH), TextDelta(" upon")]),
    (
        0.9,
        [
            Done(
                "b/m",
                "stop",
                Usage(),
                RequestRecord(
                    request_id="req-1",
                    route="chat",
                    attempts=[attempt(1, "a/m", 0, 150), attempt(2, "b/m", 400, 20)],
                    switches=[SWITCH],
                ),
            )
        ],
    ),
]


@pytest.mark.parametrize(
    ("script", "ttft", "overhead", "latency"),
    [
        pytest.param(FALLBACK_THEN_ANSWER, 0.5, 0.4, 0.8, id="first-token-from-the-fallback"),
        pytest.param(CONTENT_THEN_SWITCH, 0.2, 0.05, 0.9, id="first-token-before-a-switch"),
    ],
)
def test_gateway_overhead_is_time_to_first_token_minus_that_of_the_delivering_attempt(
    script: list[tuple[float, list[Event]]], ttft: float, overhead: float, latency: float
) -> None:
    clock = FakeClock()
    start = clock.now
    metrics = Metrics(clock=clock)

    for at, batch in script:
        clock.now = start + at
        metrics.observe("req-1", batch)

    for name, seconds in [
        ("llmgate_time_to_first_token_seconds", ttft),
        ("llmgate_gateway_overhead_seconds", overhead),
        ("llmgate_request_latency_seconds", latency),
    ]:
        assert sample(metrics, f"{name}_count", route="chat") == 1
        assert sample(metrics, f"{name}_sum", route="chat") == pytest.approx(seconds)


def test_timings_run_from_when_the_gateway_started_the_request() -> None:
    clock = FakeClock()
    start = clock.now
    metrics = Metrics(clock=clock)

    metrics.started(RequestRecord(request_id="req-1", route="chat"))
    for at, batch in FALLBACK_THEN_ANSWER:
        clock.now = start + 0.1 + at  # the first batch comes 100 ms after the start
        metrics.observe("req-1", batch)

    assert sample(metrics, "llmgate_request_latency_seconds_sum", route="chat") == pytest.approx(
        0.9
    )
    assert sample(metrics, "llmgate_selections_total", route="chat", target="a/m") == 1
    assert sample(metrics, "llmgate_selections_total", route="chat", target="b/m") == 1


# --- bounds and plumbing ------------------------------------------------------------------


def test_requests_that_never_end_are_evicted_beyond_the_cap_and_counted() -> None:
    metrics = Metrics(max_in_flight=2)

    for n in range(5):  # abandoned streams: started, never ended
        metrics.observe(f"gone-{n}", [AttemptStarted(1, "a/m", "original")])

    assert sample(metrics, "llmgate_metrics_evicted_requests_total") == 3
    metrics.observe("req-1", [AttemptStarted(1, "a/m", "original")])
    metrics.observe(
        "req-1", [Done("a/m", "stop", Usage(), RequestRecord(request_id="req-1", route="chat"))]
    )
    assert sample(metrics, "llmgate_requests_total", route="chat", status="ok") == 1
    assert sample(metrics, "llmgate_metrics_evicted_requests_total") == 4


def test_each_metrics_has_a_registry_of_its_own() -> None:
    first, second = Metrics(), Metrics()  # a shared global registry would refuse the second
    first.observe(
        "req-1", [Done("a/m", "stop", Usage(), RequestRecord(request_id="req-1", route="chat"))]
    )

    assert sample(first, "llmgate_requests_total", route="chat", status="ok") == 1
    assert sample(second, "llmgate_requests_total", route="chat", status="ok") is None


def test_renders_the_prometheus_text_format() -> None:
    body, content_type = Metrics().render()

    assert content_type.startswith("text/plain; version=")
    names = {f.name for f in text_string_to_metric_families(body.decode())}
    assert {"llmgate_requests", "llmgate_attempts", "llmgate_gateway_overhead_seconds"} <= names


async def test_exposes_the_request_log_queue_depth_and_drops() -> None:
    engine = create_engine("sqlite+aiosqlite://")  # the writer is not started
    try:
        writer = RequestLogWriter(engine, max_queue=2)
        metrics = Metrics()
        metrics.watch_request_log(writer)
        for n in range(3):
            record = RequestRecord(request_id=f"req-{n}", route="chat")
            writer.observe(record.request_id, [Done("a/m", "stop", Usage(), record)])

        assert sample(metrics, "llmgate_request_log_queue_depth") == 2
        assert sample(metrics, "llmgate_request_log_dropped_total", reason="queue_full") == 1
        assert sample(metrics, "llmgate_request_log_dropped_total", reason="shutdown") == 0
        assert sample(metrics, "llmgate_request_log_written_total") == 0
    finally:
        await engine.dispose()


async def test_counts_tokens_and_cost_per_target_at_its_price(router: Engine) -> None:
    book = PriceBook({"a": {"m": Price(input_per_mtok=2.0, output_per_mtok=10.0)}})
    metrics = Metrics(prices=lambda: book)
    a = FakeProvider("a", answer("Hi", usage=Usage(1000, 200, 1200, cached_tokens=0)))
    b = FakeProvider("b", answer("Hi", usage=Usage(50, 5, 55)))

    await serve(
        router, routes([a, b], chat=route("a"), other=route("b")), "chat", "r1", metrics.observe
    )
    await serve(
        router, routes([a, b], chat=route("a"), other=route("b")), "other", "r2", metrics.observe
    )

    labels = {"route": "chat", "target": "a/m"}
    assert sample(metrics, "llmgate_tokens_total", **labels, kind="prompt") == 1000
    assert sample(metrics, "llmgate_tokens_total", **labels, kind="completion") == 200
    assert sample(metrics, "llmgate_cost_usd_total", **labels) == pytest.approx(
        (1000 * 2.0 + 200 * 10.0) / 1e6
    )
    # b has no price: its tokens are counted, its cost is not invented
    assert sample(metrics, "llmgate_tokens_total", route="other", target="b/m", kind="prompt") == 50
    assert sample(metrics, "llmgate_cost_usd_total", route="other", target="b/m") is None


async def test_exposes_each_targets_requests_in_flight_when_scraped(router: Engine) -> None:
    metrics = Metrics()
    metrics.watch_loads(router.loads)
    a = FakeProvider("a", answer("Hello", " there"))
    assert not [k for k in samples(metrics) if k[0] == "llmgate_target_in_flight"]

    stream = router.stream(routes([a], chat=route("a")), "chat", REQUEST, request_id="req-1")
    await anext(stream)  # the attempt has started: it is in flight
    assert sample(metrics, "llmgate_target_in_flight", target="a/m") == 1
    async for _ in stream:
        pass
    assert sample(metrics, "llmgate_target_in_flight", target="a/m") == 0
