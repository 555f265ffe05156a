"""An A/B of benchmark runs: medians per side, each round's tail ratio beside them.

    .venv/bin/python benchmarks/compare.py \
        --side before results/bench-A1.json results/bench-A2.json \
        --side after results/bench-B1.json results/bench-B2.json

Each side is a list of run.py JSON files (short runs of both sides taken in turn, see
README.md). For every gateway row (mode, concurrency, target) it prints, per side, the
median over the files of: TTFT p50 and p99, the TTFT p99/p50 ratio (the median of each
run's ratio, and every run's ratio, so the spread shows), CPU per response, rps as a
ratio to the direct row of the same run, and the gateway core's share taken by others.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

__all__ = ["compare"]


def _rows(path: Path) -> dict[tuple[str, int, str], tuple[dict[str, Any], dict[str, Any]]]:
    """(mode, c, target) -> (gateway row, its direct row) of one run."""
    results: list[dict[str, Any]] = json.loads(path.read_text())["results"]
    by_key = {(r["mode"], r["concurrency"], r["target"]): r for r in results}
    out = {}
    for (mode, c, target), r in by_key.items():
        ref = by_key.get((mode, c, r.get("reference") or "direct"))
        if target.startswith("gw-") and ref is not None:
            out[(mode, c, target)] = (r, ref)
    return out


def _cell(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> str:
    med = statistics.median
    ratios = [r["ttft_p99_ms"] / r["ttft_p50_ms"] for r, _ in pairs]
    others = [r["server_core_others"] for r, _ in pairs if r.get("server_core_others") is not None]
    busy = f"{100 * med(others):.0f}%" if others else "-"
    return (
        f"{med(r['ttft_p50_ms'] for r, _ in pairs):.1f} "
        f"| {med(r['ttft_p99_ms'] for r, _ in pairs):.1f} "
        f"| **{med(ratios):.2f}** ({' '.join(f'{x:.1f}' for x in ratios)}) "
        f"| {med(r['server_cpu_ms_per_resp'] for r, _ in pairs):.2f} "
        f"| {med(r['rps'] / d['rps'] for r, d in pairs):.4f} "
        f"| {busy} |"
    )


def compare(sides: list[tuple[str, list[Path]]]) -> str:
    """Markdown: one line per gateway row and side."""
    runs = [(name, [_rows(p) for p in paths]) for name, paths in sides]
    keys = sorted({k for _, rs in runs for r in rs for k in r})
    lines = [
        "| mode | c | target | side (runs) | TTFT p50 ms | TTFT p99 ms | TTFT p99/p50 (each run) "
        "| CPU ms/resp | rps x direct | core 0 others |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mode, c, target in keys:
        for name, rs in runs:
            pairs = [r[(mode, c, target)] for r in rs if (mode, c, target) in r]
            if pairs:
                lines.append(f"| {mode} | {c} | {target} | {name} ({len(pairs)}) | {_cell(pairs)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="compare benchmark runs side by side")
    parser.add_argument(
        "--side",
        nargs="+",
        action="append",
        required=True,
        metavar=("NAME", "JSON"),
        help="a side's name, then its run.py JSON files",
    )
    args = parser.parse_args(argv)
    sides = [(s[0], [Path(p) for p in s[1:]]) for s in args.side]
    if any(not paths for _, paths in sides):
        parser.error("every --side needs a name and at least one JSON file")
    print(compare(sides))
    return 0


if __name__ == "__main__":
    sys.exit(main())
