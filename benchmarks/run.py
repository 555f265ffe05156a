"""Gateway streaming benchmark: the gateway against the same upstream called directly.

Starts the fake upstream (benchmarks/upstream.py) and one `llmgate serve` per upstream
transport on loopback, then for every scenario (burst or 1 ms paced chunks; each
concurrency) measures the upstream directly and each gateway in turn, interleaved, so
that the ratios compare numbers taken under the same machine load. The Anthropic rows
follow: the fake's Anthropic Messages mode called directly ("direct-anthropic"), then
through the aiohttp gateway ("gw-anthropic": the client still speaks OpenAI to the
gateway, which speaks Anthropic upstream). With two or more cores the gateways get
core 0 to themselves; the upstream and this load generator share core 1.

    .venv/bin/python benchmarks/run.py            # full run, about 3 minutes
    .venv/bin/python benchmarks/run.py --quick    # about a minute

Prints markdown tables and writes JSON to benchmarks/results/. See README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import loadgen
import procstat
import report
from _harness import (
    ANTHROPIC_ROUTE_PREFIX,
    HERE,
    Proc,
    has_anthropic,
    has_embeddings,
    pin_cores,
    start_gateway,
    start_relay,
    start_upstream,
)
from measure import measure

TRANSPORTS = ("aiohttp", "httpx")
MODES = ("burst", "paced")


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each numeric field's median over repeats; errors are summed; ``rounds`` keeps
    the main fields of every round."""
    out = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = statistics.median(r[key] for r in runs)
    out["errors"] = sum(r["errors"] for r in runs)
    out["repeats"] = len(runs)
    # Each round's own numbers, to tell a disturbed round from a real change.
    keys = ("rps", "server_cpu_ms_per_resp", "ttft_p50_ms", "server_core_others")
    out["rounds"] = {k: [r[k] for r in runs] for k in keys}
    return out


class _Target:
    """One row of a scenario: who is called, with what model, in which dialect, and
    which direct row it is compared with."""

    def __init__(
        self,
        name: str,
        server: Proc,
        model: str,
        *,
        reference: str = "direct",
        transport: str | None = None,
        dialect: loadgen.Dialect = loadgen.OPENAI,
    ) -> None:
        self.name = name
        self.server = server
        self.model = model
        self.reference = reference
        self.transport = transport
        self.dialect = dialect


def _targets(
    args: argparse.Namespace,
    mode: str,
    upstream: Proc,
    relay: Proc | None,
    gateways: dict[str, Proc],
) -> list[_Target]:
    """Direct first, then the relay and each gateway; then the Anthropic pair."""
    fake_model = f"{mode}-{args.chunks}"
    targets = [_Target("direct", upstream, fake_model)]
    if mode == "skewed":  # the route of two slow-tailed deployments, without and with hedging
        targets += [_Target(f"gw-{t}", gw, mode, transport=t) for t, gw in gateways.items()]
        if gateways:
            t, gw = next(iter(gateways.items()))
            targets.append(_Target("gw-hedged", gw, "skewed-hedged", transport=t))
        return targets
    if relay is not None:
        targets.append(_Target("relay", relay, fake_model))
    targets += [_Target(f"gw-{t}", gw, mode, transport=t) for t, gw in gateways.items()]
    if args.pool and gateways:
        t, gw = next(iter(gateways.items()))
        targets.append(_Target("gw-pool", gw, f"pool-{mode}", transport=t))
    if mode == "burst" and args.embeddings and gateways:  # one 256-float vector, not streamed
        ref = "direct-embeddings"
        t, gw = next(iter(gateways.items()))
        targets.append(_Target(ref, upstream, "embed", reference=ref, dialect=loadgen.EMBEDDINGS))
        targets.append(
            _Target(
                "gw-embeddings", gw, "embed", reference=ref, transport=t, dialect=loadgen.EMBEDDINGS
            )
        )
    if args.responses and gateways:  # the same route through the Responses door
        t, gw = next(iter(gateways.items()))
        targets.append(_Target("gw-responses", gw, mode, transport=t, dialect=loadgen.RESPONSES))
    if args.anthropic and gateways:
        ref = "direct-anthropic"
        transport = "aiohttp" if "aiohttp" in gateways else next(iter(gateways))
        targets.append(_Target(ref, upstream, fake_model, reference=ref, dialect=loadgen.ANTHROPIC))
        targets.append(
            _Target(
                "gw-anthropic",
                gateways[transport],
                ANTHROPIC_ROUTE_PREFIX + mode,
                reference=ref,
                transport=transport,
            )
        )
    return targets


def _matrix(
    args: argparse.Namespace, upstream: Proc, relay: Proc | None, gateways: dict[str, Proc]
) -> list[dict[str, Any]]:
    """Every scenario: each of its `_targets` in turn; repeated; medians."""
    runs: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    client = [os.getpid()]
    for rep in range(args.repeat):
        for mode in args.modes:
            for c in args.concurrency:
                for t in _targets(args, mode, upstream, relay, gateways):
                    direct = t.server is upstream
                    watch = {"server": t.server.pids, "upstream": upstream.pids, "client": client}
                    r = measure(
                        t.server.port,
                        t.model,
                        c,
                        watch,
                        chunks=args.chunks,
                        server_core=0 if args.pinned and not direct else None,
                        warmup_s=args.warmup,
                        duration_s=args.duration,
                        max_requests=args.max_requests,
                        dialect=t.dialect,
                    )
                    name = t.name
                    r.update(
                        target=name,
                        mode=mode,
                        reference=t.reference,
                        transport=t.transport,
                        dialect=t.dialect.name,
                    )
                    runs.setdefault((mode, c, name), []).append(r)
                    print(
                        f"  [{rep + 1}/{args.repeat}] {mode:5} c={c:<3} {name:16} "
                        f"{r['rps']:7.0f} rps  ttft p50 {r['ttft_p50_ms']:6.2f} ms  "
                        f"total p50 {r['total_p50_ms']:7.2f} ms  "
                        f"cpu {r['server_cpu_ms_per_resp']:5.2f} ms/resp  errors {r['errors']}",
                        file=sys.stderr,
                        flush=True,
                    )
    return [_median(v) for v in runs.values()]


def _run(args: argparse.Namespace, run_dir: Path) -> dict[str, Any]:
    pin = args.pinned = pin_cores(args.no_pin)
    procs: list[Proc] = []
    try:
        upstream = start_upstream(run_dir, pin)
        procs.append(upstream)
        relay = None if args.no_relay else start_relay(run_dir, upstream.port, pin)
        if relay is not None:
            procs.append(relay)
        gateways: dict[str, Proc] = {}
        for transport in args.transports:
            gateways[transport] = start_gateway(
                run_dir,
                transport,
                upstream.port,
                chunks=args.chunks,
                workers=args.workers,
                pin=pin,
                source=args.source,
                budget=args.budget,
                pool=args.pool,
                hedge=args.hedge,
            )
            procs.append(gateways[transport])
        if pin:
            os.sched_setaffinity(0, {1})  # the load generator shares core 1 with the upstream
        idle = {t: procstat.rss_mb(gw.pids) for t, gw in gateways.items()}
        startup_peak = {t: procstat.peak_rss_mb(gw.pids) for t, gw in gateways.items()}
        results = _matrix(args, upstream, relay, gateways)
    finally:
        for p in reversed(procs):
            p.stop()
    return {
        "machine": {
            "cores": os.cpu_count(),
            "cpu": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "pinned": pin,
            "layout": "gateway on core 0; upstream and load generator on core 1"
            if pin
            else "unpinned",
        },
        "settings": {k: v for k, v in vars(args).items() if k != "out"},
        "gateway_idle_rss_mb": idle,
        "gateway_startup_peak_rss_mb": startup_peak,
        "results": results,
    }


def _csv(kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    return lambda s: [kind(x) for x in s.split(",") if x]


def _git_rev(where: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(where), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="llmgate streaming benchmark")
    parser.add_argument("--quick", action="store_true", help="short phases: under a minute in all")
    parser.add_argument("--transports", type=_csv(str), default=list(TRANSPORTS))
    parser.add_argument("--modes", type=_csv(str), default=list(MODES))
    parser.add_argument("--concurrency", type=_csv(int), default=[1, 16, 64])
    parser.add_argument("--duration", type=float, default=None, help="seconds measured per row")
    parser.add_argument("--warmup", type=float, default=None, help="seconds before measuring")
    parser.add_argument("--repeat", type=int, default=1, help="runs per row; report medians")
    parser.add_argument("--chunks", type=int, default=50, help="content chunks per response")
    parser.add_argument("--workers", type=int, default=1, help="gateway worker processes")
    parser.add_argument("--max-requests", type=int, default=200_000, help="cap per phase")
    parser.add_argument(
        "--source", type=Path, help="run the gateway from this source tree (another commit)"
    )
    parser.add_argument(
        "--budget",
        action="store_true",
        help="give the burst and paced routes a budget that never refuses (its cost)",
    )
    parser.add_argument(
        "--pool",
        action="store_true",
        help="add a gw-pool row: the same upstream as five members of a least_latency pool",
    )
    parser.add_argument(
        "--hedge",
        action="store_true",
        help="add the skewed mode: a slow-tailed upstream's TTFT through two deployments, "
        "without and with hedge_after_s (gw-hedged)",
    )
    parser.add_argument("--no-relay", action="store_true", help="skip the byte-relay floor")
    parser.add_argument(
        "--no-anthropic",
        dest="anthropic",
        action="store_false",
        help="skip the Anthropic-upstream rows (skipped anyway for a --source without them)",
    )
    parser.add_argument(
        "--no-responses",
        dest="responses",
        action="store_false",
        help="skip the gw-responses rows (skipped anyway for a --source without the door)",
    )
    parser.add_argument(
        "--no-embeddings",
        dest="embeddings",
        action="store_false",
        help="skip the embeddings rows (skipped anyway for a --source without the door)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not use taskset")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    if args.duration is None:
        args.duration = 1.5 if args.quick else 4.0
    if args.warmup is None:
        args.warmup = 0.3 if args.quick else 0.5
    bad = (set(args.transports) - set(TRANSPORTS)) | (set(args.modes) - set(MODES))
    if args.hedge:
        args.modes = [*args.modes, "skewed"]
    if bad:
        parser.error(f"unknown value(s): {', '.join(sorted(bad))}")
    if args.responses and args.source and not (args.source / "server/api/responses").is_dir():
        args.responses = False
    if args.embeddings and not has_embeddings(args.source):
        args.embeddings = False
    if args.anthropic and not has_anthropic(args.source):
        print(f"{args.source} has no Anthropic adapter: no Anthropic rows", file=sys.stderr)
        args.anthropic = False
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="llmgate-bench-") as tmp:
        data = _run(args, Path(tmp))
    data["wall_s"] = round(time.monotonic() - started, 1)
    # Other jobs on a shared machine show here; ours add about 1.5 while measuring.
    data["loadavg_1min"] = {"before": load_before[0], "after": os.getloadavg()[0]}
    data["when"] = time.strftime("%Y-%m-%d %H:%M:%S")
    data["git"] = _git_rev(args.source or HERE)
    path = args.out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    print(report.markdown(data))
    print(f"\nJSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
