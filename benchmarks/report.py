"""Markdown tables for a benchmark run (the JSON that run.py writes)."""

from __future__ import annotations

import json
import sys
from typing import Any

__all__ = ["markdown"]

_MODES = {
    "burst": "every chunk in one write",
    "paced": "1 ms between chunks",
}
# Targets for one gateway worker (from the benchmark issue).
MIN_RPS_C16_BURST = 500.0
MAX_CPU_MS_PACED = 2.0
MAX_ADDED_TTFT_P50_C1_MS = 2.0
MAX_TAIL_RATIO_C64 = 2.0  # "no p99 blow-up": total p99 within 2x of its p50
MAX_RSS_MB = 150.0


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _row(r: dict[str, Any], direct: dict[str, Any] | None) -> str:
    gw = direct is not None and r is not direct
    ratio = f"{r['rps'] / direct['rps']:.2f}" if gw and direct and direct["rps"] else "1"
    added = "-"
    added_total = "-"
    if gw and direct:
        added = (
            f"{r['ttft_p50_ms'] - direct['ttft_p50_ms']:+.2f} / "
            f"{r['ttft_p99_ms'] - direct['ttft_p99_ms']:+.2f}"
        )
        added_total = (
            f"{r['total_p50_ms'] - direct['total_p50_ms']:+.2f} / "
            f"{r['total_p99_ms'] - direct['total_p99_ms']:+.2f}"
        )
    return (
        f"| {r['concurrency']} | {r['target']} | {r['rps']:.0f} | {ratio} "
        f"| {r['ttft_p50_ms']:.2f} / {r['ttft_p99_ms']:.2f} "
        f"| {r['total_p50_ms']:.1f} / {r['total_p99_ms']:.1f} "
        f"| {added} | {added_total} "
        f"| {r['server_cpu_ms_per_resp']:.2f} | {100 * r['server_cpu_util']:.0f}% "
        f"| {100 * r['core1_util']:.0f}% | {_pct(r.get('server_core_others'))} "
        f"| {r['peak_rss_mb']:.0f} | {r['errors']} |"
    )


def _targets(data: dict[str, Any]) -> list[str]:
    results: list[dict[str, Any]] = data["results"]

    def get(mode: str, c: int, target: str) -> dict[str, Any] | None:
        for r in results:
            if (r["mode"], r["concurrency"], r["target"]) == (mode, c, target):
                return r
        return None

    gateways = sorted({r["target"] for r in results if r["target"].startswith("gw-")})
    lines = [
        "| target (one worker) | " + " | ".join(gateways) + " |",
        "|---|" + "---|" * len(gateways),
    ]

    def line(label: str, cell: Any) -> None:
        lines.append(f"| {label} | " + " | ".join(cell(g) for g in gateways) + " |")

    def mark(ok: bool) -> str:
        return "ok" if ok else "**MISS**"

    def rps(g: str) -> str:
        r, d = get("burst", 16, g), get("burst", 16, "direct")
        if r is None:
            return "n/a"
        vs = f", {r['rps'] / d['rps']:.2f}x direct" if d and d["rps"] else ""
        return f"{r['rps']:.0f}{vs} {mark(r['rps'] >= MIN_RPS_C16_BURST)}"

    def cpu(g: str) -> str:
        rs = [r for r in results if r["target"] == g and r["mode"] == "paced"]
        if not rs:
            return "n/a"
        worst = max(r["server_cpu_ms_per_resp"] for r in rs)
        each = ", ".join(f"c{r['concurrency']} {r['server_cpu_ms_per_resp']:.2f}" for r in rs)
        return f"{each} {mark(worst <= MAX_CPU_MS_PACED)}"

    def ttft(g: str) -> str:
        cells = []
        ok = True
        for mode in ("burst", "paced"):
            r, d = get(mode, 1, g), get(mode, 1, "direct")
            if r and d:
                added = r["ttft_p50_ms"] - d["ttft_p50_ms"]
                ok &= added <= MAX_ADDED_TTFT_P50_C1_MS
                cells.append(f"{mode} {added:+.2f}")
        return f"{', '.join(cells)} {mark(ok)}" if cells else "n/a"

    def tail(g: str) -> str:
        cells = []
        ok = True
        for mode in ("burst", "paced"):
            r, d = get(mode, 64, g), get(mode, 64, "direct")
            if r and r["total_p50_ms"]:
                ratio = r["total_p99_ms"] / r["total_p50_ms"]
                ok &= ratio <= MAX_TAIL_RATIO_C64
                base = (
                    f" (direct {d['total_p99_ms'] / d['total_p50_ms']:.2f})"
                    if d and d["total_p50_ms"]
                    else ""
                )
                cells.append(f"{mode} {ratio:.2f}{base}")
        return f"{', '.join(cells)} {mark(ok)}" if cells else "n/a"

    def rss(g: str) -> str:
        transport = g.removeprefix("gw-")
        peaks = [r["peak_rss_mb"] for r in results if r["target"] == g]
        peaks.append(data.get("gateway_startup_peak_rss_mb", {}).get(transport, 0.0))
        return f"{max(peaks):.0f} MB {mark(max(peaks) < MAX_RSS_MB)}"

    line(f"rps, burst, c16 (>= {MIN_RPS_C16_BURST:.0f})", rps)
    line(f"CPU ms/response, paced (<= {MAX_CPU_MS_PACED})", cpu)
    line(f"added TTFT p50 ms, c1 (<= {MAX_ADDED_TTFT_P50_C1_MS})", ttft)
    line(f"total p99/p50, c64 (<= {MAX_TAIL_RATIO_C64})", tail)
    line(f"peak RSS (< {MAX_RSS_MB:.0f} MB)", rss)
    return lines


def _load(data: dict[str, Any]) -> str:
    load = data.get("loadavg_1min")
    return f"{load['before']:.2f} / {load['after']:.2f}" if load else "n/a"


def markdown(data: dict[str, Any]) -> str:
    m, s = data["machine"], data["settings"]
    out = [
        f"Machine: {m['cores']} cores ({m['cpu']}), Python {m['python']}; {m['layout']}. "
        f"{s['chunks']} content chunks per response; {s['duration']} s measured after "
        f"{s['warmup']} s warm-up per row; {s['workers']} gateway worker(s); "
        f"repeats {s['repeat']} (medians). gateway source: "
        f"{s.get('source') or 'installed package'}, git {data.get('git', '')}. Load average "
        f"before/after: {_load(data)}.",
    ]
    head = (
        "| c | target | rps | x direct | TTFT p50 / p99 ms | total p50 / p99 ms "
        "| +TTFT p50 / p99 ms | +total p50 / p99 ms | server CPU ms/resp | server core "
        "| core 1 busy | core 0 others | peak RSS MB | errors |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    for mode in s["modes"]:
        rows = [r for r in data["results"] if r["mode"] == mode]
        if not rows:
            continue
        out += ["", f"### {mode}: {s['chunks']} chunks, {_MODES[mode]}", "", head]
        for c in s["concurrency"]:
            group = [r for r in rows if r["concurrency"] == c]
            direct = next((r for r in group if r["target"] == "direct"), None)
            out += [_row(r, direct) for r in group]
    out += ["", "### targets", "", *_targets(data)]
    errors = [r for r in data["results"] if r["errors"]]
    for r in errors:
        out.append(
            f"\n{r['mode']} c={r['concurrency']} {r['target']}: {r['errors']} errors, "
            f"first: {r['first_error']}"
        )
    return "\n".join(out)


if __name__ == "__main__":
    # Re-print the tables of a saved run: python benchmarks/report.py results/bench-*.json
    with open(sys.argv[1]) as f:
        print(markdown(json.load(f)))
