"""One measured scenario: client-side latencies plus server CPU and memory from /proc."""

from __future__ import annotations

from typing import Any

import loadgen
import procstat
from _harness import HOST, KEY, arun

__all__ = ["measure"]


def measure(
    port: int,
    model: str,
    concurrency: int,
    watch: dict[str, list[int]],
    *,
    chunks: int,
    server_core: int | None = None,
    warmup_s: float,
    duration_s: float,
    max_requests: int,
    dialect: loadgen.Dialect = loadgen.OPENAI,
) -> dict[str, Any]:
    """Drive ``model`` on ``port``, speaking ``dialect``; ``watch`` names the pids of "server", "upstream" and
    "client", whose CPU is read at the start and the end of the measured phase.
    ``server_core``: the core the server is pinned to, to report what else ran there."""
    marks: dict[str, Any] = {}

    def on_measure_start() -> None:
        marks["cpu"] = {k: procstat.cpu_seconds(p) for k, p in watch.items()}
        if server_core is not None:
            marks["core"] = procstat.core_busy_seconds(server_core)
        marks["reset"] = procstat.reset_peak(watch["server"])

    def on_measure_end() -> None:
        marks["cpu"] = {k: procstat.cpu_seconds(p) - marks["cpu"][k] for k, p in watch.items()}
        if server_core is not None:
            marks["core"] = procstat.core_busy_seconds(server_core) - marks["core"]
        marks["peak"] = procstat.peak_rss_mb(watch["server"])

    phase = arun(
        loadgen.run_phase(
            HOST,
            port,
            loadgen.request_bytes(HOST, port, model, KEY, dialect),
            expect_chunks=chunks,
            dialect=dialect,
            concurrency=concurrency,
            warmup_s=warmup_s,
            duration_s=duration_s,
            max_requests=max_requests,
            on_measure_start=on_measure_start,
            on_measure_end=on_measure_end,
        )
    )
    cpu, n, elapsed = marks["cpu"], len(phase.samples), phase.elapsed or 1e-9
    ttft = [s.ttft * 1000 for s in phase.samples]
    total = [s.total * 1000 for s in phase.samples]
    per_resp = 1000 / n if n else 0.0
    return {
        "concurrency": concurrency,
        "responses": n,
        "errors": phase.errors,
        "first_error": phase.first_error,
        "elapsed_s": phase.elapsed,
        "rps": n / elapsed,
        "ttft_p50_ms": loadgen.percentile(ttft, 0.50),
        "ttft_p99_ms": loadgen.percentile(ttft, 0.99),
        "total_p50_ms": loadgen.percentile(total, 0.50),
        "total_p99_ms": loadgen.percentile(total, 0.99),
        "server_cpu_ms_per_resp": cpu["server"] * per_resp,
        "server_cpu_util": cpu["server"] / elapsed,
        "upstream_cpu_ms_per_resp": cpu["upstream"] * per_resp,
        "client_cpu_ms_per_resp": cpu["client"] * per_resp,
        "core1_util": (cpu["upstream"] + cpu["client"]) / elapsed,
        # Busy time of the server's core not spent by the server: other jobs (10 ms ticks).
        "server_core_others": (
            max(marks["core"] - cpu["server"], 0.0) / elapsed if "core" in marks else None
        ),
        "peak_rss_mb": marks["peak"],
        "peak_is_per_scenario": marks["reset"],
    }
