"""What `server.observe.metrics.Metrics` reads only when ``/metrics`` is scraped, never
per request: the request log writer's counters, and each target's requests in flight
from the engine's loads."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from router.balance import Load

__all__ = ["LoadCollector", "RequestLogCollector", "RequestLogStats"]


class RequestLogStats(Protocol):
    """What the metrics read from the request log writer when scraped."""

    @property
    def depth(self) -> int: ...
    @property
    def written(self) -> int: ...
    @property
    def write_errors(self) -> int: ...
    @property
    def drops(self) -> Mapping[str, int]: ...


class RequestLogCollector(Collector):
    """A background writer's queue depth, writes, write errors and drops, named
    ``<prefix>_queue_depth`` ...: the request log's, or the stored responses'."""

    def __init__(
        self,
        log: RequestLogStats,
        prefix: str = "llmgate_request_log",
        rows: str = "Request log rows",
    ) -> None:
        self._log = log
        self._prefix = prefix
        self._rows = rows

    def collect(self) -> Iterable[Metric]:
        log, prefix, rows = self._log, self._prefix, self._rows
        yield GaugeMetricFamily(
            f"{prefix}_queue_depth", f"{rows} waiting to be written.", value=log.depth
        )
        yield CounterMetricFamily(f"{prefix}_written", f"{rows} written.", value=log.written)
        yield CounterMetricFamily(
            f"{prefix}_write_errors",
            f"Failed writes of {rows.lower()} (each is retried).",
            value=log.write_errors,
        )
        dropped = CounterMetricFamily(
            f"{prefix}_dropped", f"{rows} dropped, by reason.", labels=["reason"]
        )
        for reason, count in log.drops.items():
            dropped.add_metric([reason], count)
        yield dropped


class LoadCollector(Collector):
    """``llmgate_target_in_flight{target}``: the engine's count of each target's attempts
    running now (what ``least_busy`` pools balance on), for every target tried so far."""

    def __init__(
        self, loads: Callable[[], Mapping[str, Load]], label: Callable[[str], str] = str
    ) -> None:
        self._loads = loads
        self._label = label

    def collect(self) -> Iterable[Metric]:
        in_flight = GaugeMetricFamily(
            "llmgate_target_in_flight",
            "Requests in flight on each target (its upstream attempts running now).",
            labels=["target"],
        )
        counts: dict[str, int] = {}
        for target, load in self._loads().items():
            name = self._label(target)  # unconfigured names are summed under one label
            counts[name] = counts.get(name, 0) + load.in_flight
        for target, count in sorted(counts.items()):
            in_flight.add_metric([target], count)
        yield in_flight
