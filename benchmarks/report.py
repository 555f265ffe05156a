"""Markdown tables for a benchmark run (the JSON that run.py writes)."""

from __future__ import annotations

import json
import sys
from typing import Any

__all__ = ["markdown"]

_MODES = {
    "burst": "every chunk in one write",
    "paced": "1 ms between chunks",
    "skewed": "every chunk in one write, after 10 ms (300 ms for one request in 20); "
    "gw-hedged hedges after 50 ms",
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


def _reference(r: dict[str, Any]) -> str:
    """The direct row this row is compared with (runs before the Anthropic rows had
    only "direct")."""
    ref: str = r.get("reference") or "direct"
    return ref


def _targets(data: dict[str, Any]) -> list[str]:
    results: list[dict[str, Any]] = data["results"]

    def get(mode: str, c: int, target: str) -> dict[str, Any] | None:
        for r in results:
            if (r["mode"], r["concurrency"], r["target"]) == (mode, c, target):
                return r
        return None

    gateways = sorted(
        {
            r["target"]
            for r in results
            if r["target"].startswith("gw-")
            and r["mode"] in ("burst", "paced")
            and r.get("dialect") != "embeddings"
        },
        key=lambda g: (g == "gw-anthropic", g),
    )
    refs = {r["target"]: _reference(r) for r in results}
    lines = [
        "| target (one worker) | " + " | ".join(gateways) + " |",
        "|---|" + "---|" * len(gateways),
    ]

    def line(label: str, cell: Any) -> None:
        lines.append(f"| {label} | " + " | ".join(cell(g) for g in gateways) + " |")

    def mark(ok: bool) -> str:
        return "ok" if ok else "**MISS**"

    def rps(g: str) -> str:
        r, d = get("burst", 16, g), get("burst", 16, refs[g])
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
            r, d = get(mode, 1, g), get(mode, 1, refs[g])
            if r and d:
                added = r["ttft_p50_ms"] - d["ttft_p50_ms"]
                ok &= added <= MAX_ADDED_TTFT_P50_C1_MS
                cells.append(f"{mode} {added:+.2f}")
        return f"{', '.join(cells)} {mark(ok)}" if cells else "n/a"

    def tail(g: str) -> str:
        cells = []
        ok = True
        for mode in ("burst", "paced"):
            r, d = get(mode, 64, g), get(mode, 64, refs[g])
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
        rows = [r for r in results if r["target"] == g]
        transport = rows[0].get("transport") or g.removeprefix("gw-")
        peaks = [r["peak_rss_mb"] for r in rows]
        peaks.append(data.get("gateway_startup_peak_rss_mb", {}).get(transport, 0.0))
        return f"{max(peaks):.0f} MB {mark(max(peaks) < MAX_RSS_MB)}"

    line(f"rps, burst, c16 (>= {MIN_RPS_C16_BURST:.0f})", rps)
    line(f"CPU ms/response, paced (<= {MAX_CPU_MS_PACED})", cpu)
    line(f"added TTFT p50 ms, c1 (<= {MAX_ADDED_TTFT_P50_C1_MS})", ttft)
    line(f"total p99/p50, c64 (<= {MAX_TAIL_RATIO_C64})", tail)
    line(f"peak RSS (< {MAX_RSS_MB:.0f} MB)", rss)
    return lines


def _anthropic_vs_openai(data: dict[str, Any]) -> list[str]:
    """gw-anthropic against the OpenAI path of the same gateway process, row by row."""
    results: list[dict[str, Any]] = data["results"]
    rows = {(r["mode"], r["concurrency"], r["target"]): r for r in results}
    anth = [r for r in results if r["target"] == "gw-anthropic"]
    if not anth:
        return []
    transport = anth[0].get("transport") or "aiohttp"
    out = [
        "",
        f"### Anthropic upstream vs OpenAI upstream (the same gw-{transport} process)",
        "",
        "| mode | c | CPU ms/resp openai / anthropic | ratio | rps openai / anthropic "
        "| +TTFT p50 ms openai / anthropic |",
        "|---|---|---|---|---|---|",
    ]
    for r in anth:
        o = rows.get((r["mode"], r["concurrency"], f"gw-{transport}"))
        if o is None:
            continue
        d_o = rows.get((r["mode"], r["concurrency"], _reference(o)))
        d_a = rows.get((r["mode"], r["concurrency"], _reference(r)))
        cpu_o, cpu_a = o["server_cpu_ms_per_resp"], r["server_cpu_ms_per_resp"]
        ratio = f"{cpu_a / cpu_o:.2f}" if cpu_o else "-"
        added = (
            f"{o['ttft_p50_ms'] - d_o['ttft_p50_ms']:+.2f} / "
            f"{r['ttft_p50_ms'] - d_a['ttft_p50_ms']:+.2f}"
            if d_o and d_a
            else "-"
        )
        out.append(
            f"| {r['mode']} | {r['concurrency']} | {cpu_o:.2f} / {cpu_a:.2f} | {ratio} "
            f"| {o['rps']:.0f} / {r['rps']:.0f} | {added} |"
        )
    return out


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
            by_target = {r["target"]: r for r in group}
            out += [_row(r, by_target.get(_reference(r))) for r in group]
    out += ["", "### targets", "", *_targets(data)]
    out += _anthropic_vs_openai(data)
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
