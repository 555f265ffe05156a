"""Prometheus metrics from the engine's events: an `Observer` with a registry of its own.

Counted when a request ends, from the `RequestRecord` its `Done` or `Failed` carries:

- ``llmgate_requests_total{route, status, door}``: status ``ok``, ``partial`` or
  ``failed``; ``door`` the endpoint (``chat.completions``, ``messages``, ``responses``;
  empty for the library and the playground);
- ``llmgate_attempts_total{route, target, outcome, reason}``: every upstream attempt
  (``reason`` is the failure reason, ``""`` for a success);
- ``llmgate_fallbacks_total{route, from_target, to_target, reason}``: an attempt failed
  and another one followed (a retry of the same target has ``from_target == to_target``);
- ``llmgate_stream_switches_total{route, from_target, to_target, mode, reason}``: the
  answer continued on another target after content was delivered;
- ``llmgate_hedges_total{route, outcome}``: hedged attempts (``hedge_after_s``) by who
  sent content first: ``won`` (the hedge), ``lost`` (the attempt it hedged) or ``none``;
- ``llmgate_resets_total{route}``: switches that told the client to discard its text;
- ``llmgate_tokens_total{route, target, kind}``: the usage each attempt reported
  (``prompt``, ``completion``, ``cached``);
- ``llmgate_cost_usd_total{route, target}``: that usage at the target's price
  (`providers.pricing`), for targets that have one.

Counted as each attempt starts, for the requests the gateway announces (`started`, its
``on_request_start`` hook, which says the route before the first attempt):

- ``llmgate_selections_total{route, target}``: every upstream attempt started, whether
  a pool's pick, a retry, a fallback or a hedge; unlike ``llmgate_attempts_total`` it includes
  the attempts still running.

Timed with this observer's clock, from the gateway's `started` (or, for a request it
did not announce, from its first event batch, its first ``AttemptStarted``), which
comes before any upstream is contacted:

- ``llmgate_request_latency_seconds{route}``: until the final event;
- ``llmgate_time_to_first_token_seconds{route}``: until the first content batch;
- ``llmgate_gateway_overhead_seconds{route}``: the request's time to first token minus
  the time to first token of the attempt that delivered it (``AttemptRecord.ttft_ms``),
  i.e. what the gateway added before the first token compared with calling that target
  directly: failed attempts, retry waits and the gateway's own processing.

And, read when scraped: the request log's queue depth, written rows, write errors and
dropped rows (`watch_request_log`), the same of the stored Responses API responses
(``llmgate_responses_store_*``, `watch_responses`); ``llmgate_target_in_flight{target}``, each target's
upstream attempts running now, from the engine's loads (`watch_loads`); and
``llmgate_metrics_evicted_requests_total``, requests whose state was evicted before they
ended (see `Metrics.max_in_flight`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Container, Mapping
from itertools import pairwise
from typing import Generic, TypeVar, cast

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics import MetricWrapperBase

from providers.pricing import PriceBook
from router.balance import Load
from router.events import (
    AttemptRecord,
    AttemptStarted,
    Done,
    Event,
    Failed,
    Hedged,
    RequestRecord,
    TextDelta,
    ToolCallDelta,
)
from server.observe._scraped import LoadCollector, RequestLogCollector, RequestLogStats

__all__ = ["Metrics", "RequestLogStats"]

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
TTFT_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0)

M = TypeVar("M", bound=MetricWrapperBase)


class _Children(Generic[M]):
    """A metric's labelled children, cached per label tuple: ``labels()`` validates
    and locks on every call, which the hot path should not pay for twice."""

    __slots__ = ("_cache", "_metric")

    def __init__(self, metric: M) -> None:
        self._metric = metric
        self._cache: dict[tuple[str, ...], M] = {}

    def __call__(self, *labels: str) -> M:
        child = self._cache.get(labels)
        if child is None:
            child = self._cache[labels] = self._metric.labels(*labels)
        return child


class _Live:
    """One request in flight: when it began, its route once the gateway said it
    (`Metrics.started`), and where its first content came from."""

    __slots__ = ("attempt", "first", "first_attempt", "route", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.route: str | None = None
        self.attempt = 0
        self.first: float | None = None
        self.first_attempt = 0


class Metrics:
    """An `Observer` (``observe``) that keeps Prometheus metrics in its own registry.

    Per request it keeps only a start time and the first content's time and attempt,
    dropped when the request ends. A request whose stream is abandoned (the client went
    away) never ends, so at most ``max_in_flight`` requests are tracked: beyond that the
    oldest is evicted and counted.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.perf_counter,
        max_in_flight: int = 10_000,
        prices: Callable[[], PriceBook] | None = None,
        names: Callable[[], Container[str]] | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        self._prices = prices
        self._names = names
        """The route and target names labels may take (the table's); any other name a
        client chose is counted as ``other``. None: every name."""
        self.max_in_flight = max_in_flight
        self._clock = clock
        self._live: OrderedDict[str, _Live] = OrderedDict()
        r = self.registry
        self.requests = _Children(
            Counter(
                "llmgate_requests",
                "Requests by outcome and endpoint.",
                ["route", "status", "door"],
                registry=r,
            )
        )
        self.attempts = _Children(
            Counter(
                "llmgate_attempts",
                "Upstream attempts by outcome and failure reason.",
                ["route", "target", "outcome", "reason"],
                registry=r,
            )
        )
        self.fallbacks = _Children(
            Counter(
                "llmgate_fallbacks",
                "Failed attempts that another attempt followed.",
                ["route", "from_target", "to_target", "reason"],
                registry=r,
            )
        )
        self.switches = _Children(
            Counter(
                "llmgate_stream_switches",
                "Answers continued on another target after content was delivered.",
                ["route", "from_target", "to_target", "mode", "reason"],
                registry=r,
            )
        )
        self.hedges = _Children(
            Counter(
                "llmgate_hedges",
                "Hedged attempts, by who sent content first: won (the hedge), lost (the "
                "attempt it hedged) or none.",
                ["route", "outcome"],
                registry=r,
            )
        )
        self.resets = _Children(
            Counter(
                "llmgate_resets", "Stream switches that reset the client.", ["route"], registry=r
            )
        )
        self.latency = _Children(
            Histogram(
                "llmgate_request_latency_seconds",
                "From the request's first event to its outcome.",
                ["route"],
                buckets=LATENCY_BUCKETS,
                registry=r,
            )
        )
        self.ttft = _Children(
            Histogram(
                "llmgate_time_to_first_token_seconds",
                "From the request's first event to its first content.",
                ["route"],
                buckets=TTFT_BUCKETS,
                registry=r,
            )
        )
        self.overhead = _Children(
            Histogram(
                "llmgate_gateway_overhead_seconds",
                "Time to first token minus that of the attempt which delivered it.",
                ["route"],
                buckets=OVERHEAD_BUCKETS,
                registry=r,
            )
        )
        self.cost = _Children(
            Counter(
                "llmgate_cost_usd",
                "Spend in USD by the usage each attempt reported, at its target's price "
                "(attempts of targets without a price are not counted).",
                ["route", "target"],
                registry=r,
            )
        )
        self.tokens = _Children(
            Counter(
                "llmgate_tokens",
                "Tokens reported by the upstreams, by kind (prompt, completion, cached).",
                ["route", "target", "kind"],
                registry=r,
            )
        )
        self.selections = _Children(
            Counter(
                "llmgate_selections",
                "Upstream attempts started, by route and target: each time a target was "
                "chosen (a pool's pick, a retry or a fallback).",
                ["route", "target"],
                registry=r,
            )
        )
        self.evicted = Counter(
            "llmgate_metrics_evicted_requests",
            "Requests evicted from tracking before they ended (abandoned streams).",
            registry=r,
        )

    def observe(self, request_id: str, batch: list[Event]) -> None:
        """The `Observer`: called for every event batch of every request."""
        live = self._live.get(request_id)
        if live is None:
            live = self._begin(request_id)
        if live.first is None:
            for event in batch:
                if type(event) is TextDelta or type(event) is ToolCallDelta:
                    live.first = self._clock()
                    live.first_attempt = live.attempt
                    break
                if type(event) is AttemptStarted:
                    live.attempt = event.attempt
        if batch:  # an attempt's start travels alone, and so does the outcome, last
            last = batch[-1]
            kind = type(last)  # once: this runs for every chunk
            if kind is AttemptStarted or kind is Hedged:
                if live.route is not None:
                    known = self._known()
                    target = cast("AttemptStarted | Hedged", last).target
                    self.selections(_label(live.route, known), _label(target, known)).inc()
            elif kind is Done:
                self._end(request_id, live, cast(Done, last).record, "ok")
            elif kind is Failed:
                failed = cast(Failed, last)
                self._end(
                    request_id, live, failed.record, "partial" if failed.partial else "failed"
                )

    def started(self, record: RequestRecord) -> None:
        """The gateway's hook for a request about to run (`Gateway.on_request_start`),
        its route resolved: from here its attempts are counted as they start, and its
        timings run."""
        self._begin(record.request_id).route = record.route

    def watch_request_log(self, log: RequestLogStats) -> None:
        """Expose the request log writer's queue depth, writes and drops."""
        self.registry.register(RequestLogCollector(log))

    def watch_responses(self, writer: RequestLogStats) -> None:
        """Expose the stored responses' writer the same way (``llmgate_responses_store_*``)."""
        self.registry.register(
            RequestLogCollector(writer, "llmgate_responses_store", "Stored responses")
        )

    def watch_loads(self, loads: Callable[[], Mapping[str, Load]]) -> None:
        """Expose each target's requests in flight, read from ``loads`` (the engine's
        `router.engine.Engine.loads`) when scraped: nothing per request."""
        self.registry.register(LoadCollector(loads, lambda name: _label(name, self._known())))

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition: ``(body, content type)`` for ``GET /metrics``."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def _begin(self, request_id: str) -> _Live:
        if len(self._live) >= self.max_in_flight:
            self._live.popitem(last=False)
            self.evicted.inc()
        live = self._live[request_id] = _Live(self._clock())
        return live

    def _known(self) -> Container[str] | None:
        return self._names() if self._names is not None else None

    def _end(self, request_id: str, live: _Live, record: RequestRecord, status: str) -> None:
        now = self._clock()
        del self._live[request_id]
        known = self._known()
        route = _label(record.route, known)
        self.requests(route, status, record.door or "").inc()
        self.latency(route).observe(now - live.start)
        if live.first is not None:
            ttft = live.first - live.start
            self.ttft(route).observe(ttft)
            answered = _attempt(record, live.first_attempt)
            if answered is not None and answered.ttft_ms is not None:
                self.overhead(route).observe(max(ttft - answered.ttft_ms / 1000, 0.0))
        self._count(record, route, known)

    def _count(self, record: RequestRecord, route: str, known: Container[str] | None) -> None:
        prices = self._prices() if self._prices is not None else None
        for a in record.attempts:
            target = _label(a.target, known)
            self.attempts(route, target, a.outcome, a.error_type or "").inc()
            if a.usage is not None:
                self.tokens(route, target, "prompt").inc(a.usage.prompt_tokens)
                self.tokens(route, target, "completion").inc(a.usage.completion_tokens)
                if a.usage.cached_tokens:
                    self.tokens(route, target, "cached").inc(a.usage.cached_tokens)
                price = prices.price(a.target) if prices else None
                if price is not None:
                    self.cost(route, target).inc(price.cost(a.usage))
        for failed, following in pairwise(record.attempts):
            if failed.outcome == "failed":  # not a hedge's cancelled loser
                reason = failed.error_type or ""
                pair = _label(failed.target, known), _label(following.target, known)
                self.fallbacks(route, *pair, reason).inc()
        for hedge in record.hedges:
            self.hedges(route, _HEDGE_OUTCOME[hedge.won]).inc()
        for s in record.switches:
            pair = _label(s.from_target, known), _label(s.to_target, known)
            self.switches(route, *pair, s.mode, s.reason).inc()
            if s.reset:
                self.resets(route).inc()


_HEDGE_OUTCOME = {True: "won", False: "lost", None: "none"}
OTHER = "other"
"""The label of every route or target name that is not configured: a client may name
any ``provider/model``, and must not be able to grow the metrics without bound."""


def _label(name: str, known: Container[str] | None) -> str:
    return name if known is None or name in known else OTHER


def _attempt(record: RequestRecord, number: int) -> AttemptRecord | None:
    return next((a for a in record.attempts if a.attempt == number), None)
