"""Where the gateway spends CPU per streamed response: one scenario, profiled.

    .venv/bin/python benchmarks/profile_gateway.py --transport aiohttp --mode burst --concurrency 16
    .venv/bin/python benchmarks/profile_gateway.py --profiler cprofile ...
    .venv/bin/python benchmarks/profile_gateway.py --upstream-api anthropic ...

Starts the fake upstream and one gateway, measures the scenario once without a
profiler (the real CPU per response), then once more under the profiler, and prints
the gateway's CPU per response split into parts (upstream request, body read, SSE
parsing, writing the answer, engine, handler, litestar, outside the app: see
``_PARTS``) and the top functions, in microseconds of CPU per response:

- ``py-spy`` (default; ``pip install py-spy``): samples the running gateway (pausing
  it for each sample, which costs a few percent; unpaused samples come out torn), so
  shares are faithful; µs = share of on-CPU samples x the CPU per response measured
  without the profiler. Time in a C call or the kernel shows on the Python function
  that made it; time in the event loop's own C code shows on ``Runner.run``. Only
  the main thread's samples count: py-spy 0.4 counts threads blocked in a queue
  ``get`` (aiosqlite's connection thread, the default executor's workers) as on
  CPU, so other threads' samples are left out, their real CPU is read from
  ``/proc/PID/task/*/schedstat`` and printed apart, and the main thread's CPU per
  response without the profiler is what its samples share out.
- ``cprofile``: the gateway runs under cProfile (CPU clock, on only while measuring);
  exact call counts per response, but every Python call is inflated several times
  over, so small, frequent functions look dearer than they are.

Raw output (collapsed stacks or .pstats) lands in benchmarks/results/.
"""

from __future__ import annotations

import argparse
import os
import pstats
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import procstat
from _harness import ANTHROPIC_ROUTE_PREFIX, HERE, Proc, pin_cores, start_gateway, start_upstream
from measure import measure

_SITE = ("site-packages/", "lib/python3.11/", str(HERE.parent) + "/")


def _short(path: str, line: int, name: str) -> str:
    for prefix in _SITE:
        if prefix in path:
            path = path.split(prefix, 1)[1]
    return f"{name} ({path}:{line})" if name else path


def _table(title: str, rows: list[tuple[float, float, str, str]]) -> None:
    print(f"\n| {title} µs/resp | share | calls/resp | function |\n|---:|---:|---:|---|")
    for us, share, calls, func in rows:
        print(f"| {us:.0f} | {100 * share:.1f}% | {calls} | {func} |")


def _print_pstats(path: Path, responses: int, real_ms: float, top: int) -> None:
    raw = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    total = sum(tt for (_, _, tt, _, _) in raw.values())
    scale = 1e6 / responses
    print(
        f"\ncProfile: {total * scale / 1000:.2f} ms CPU/response under the profiler, "
        f"{real_ms:.2f} without; µs below are profiled (inflated) time"
    )
    by_self = sorted(raw.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    _table(
        "self",
        [
            (tt * scale, tt / total, f"{nc / responses:.1f}", _short(*f))
            for f, (_, nc, tt, _, _) in by_self
        ],
    )
    frequent = [kv for kv in raw.items() if kv[1][1] >= responses * 0.9]
    by_cum = sorted(frequent, key=lambda kv: kv[1][3], reverse=True)[:top]
    _table(
        "cumulative",
        [
            (ct * scale, ct / total, f"{nc / responses:.1f}", _short(*f))
            for f, (_, nc, _, ct, _) in by_cum
        ],
    )


_FRAME = re.compile(r"^(?P<name>.*) \((?P<path>.*?)(?::(?P<line>\d+))?\)$")


def _frame(text: str) -> str:
    m = _FRAME.match(text)
    return f"{m['name']} ({_short(m['path'], 0, '')})" if m else text


# Parts of the gateway's work, each named by the frames that mark it. A sample belongs to
# the part of its innermost marked frame, so the adapter's body read, deep inside the
# engine's generators that litestar's streaming loop drives, counts as the body read.
_PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "upstream request open and close: `Upstream.stream` -> httpx-aiohttp -> aiohttp "
        "`ClientSession._request`, response release",
        ("Upstream.stream (providers/_client.py)", "AsyncClient.stream (httpx/"),
    ),
    (
        "reading the upstream body: `Response.aiter_raw` -> httpx-aiohttp -> aiohttp "
        "`StreamReader`",
        ("Response.aiter_raw (httpx/",),
    ),
    (
        "SSE parsing and translation to chunks (`SSEParser.feed`, the adapter's "
        "`_Reader.feed` / `_translate`, msgspec)",
        ("SSEParser.feed (", "_Reader.feed (providers/", "._translate (providers/"),
    ),
    (
        "writing the answer: litestar `ASGIStreamingResponse`, `ChunkEncoder` (OpenAI "
        "SSE bytes), `capture_response_started`, uvicorn `send`",
        (
            "ASGIStreamingResponse.",
            "ChunkEncoder.",
            "EventEncoder.",
            "capture_response_started",
            "RequestResponseCycle.send (",
        ),
    ),
    (
        "engine and adapter loop: `Engine._run` / `_attempt`, watchdog, `hold_back` / "
        "`relay`, `sse_chunks`, the adapter's request body",
        (
            "Engine.",
            "Watchdog.",
            "hold_back (server/",
            "relay (server/",
            "sse_chunks (providers/",
            "Provider.stream (providers/",
        ),
    ),
    (
        "request handler: `chat_completions` (auth, `parse_chat_request`, building the "
        "stream response)",
        ("chat_completions (server/", "create_message (server/"),
    ),
    (
        "litestar routing, middleware, request and signature handling",
        ("Litestar.__call__ (litestar/",),
    ),
)
_OUTSIDE = (
    "outside the app: the event loop (`Runner.run`: wake-ups, syscalls, callbacks), "
    "uvicorn's and aiohttp's protocol callbacks (HTTP parsing, `data_received`)"
)


def _part(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, markers in _PARTS:
            if any(m in frame for m in markers):
                return name
    return _OUTSIDE


def _print_collapsed(path: Path, main_ms: float, top: int) -> None:
    """py-spy's raw output: ``frame;frame;... count`` per line, outermost first.

    Stacks rooted in ``threading``'s ``_bootstrap`` are other threads': left out.
    ``main_ms``: the main thread's CPU per response without the profiler, which the
    main thread's samples share out."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    parts: Counter[str] = Counter()
    total = 0
    others = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";")]
        if frames[0].startswith(("_bootstrap (threading", "Thread._bootstrap (threading")):
            others += n
            continue
        total += n
        parts[_part(frames)] += n
        own[frames[-1]] += n
        for f in set(frames):
            inclusive[f] += n
    if not total:
        print("no samples")
        return
    us = main_ms * 1000 / total
    print(
        f"\npy-spy: {total} on-CPU samples of the main thread ({others} of other threads "
        f"left out); the main thread's {main_ms:.2f} ms CPU/response without the profiler "
        "shared out by samples"
    )
    print("\n| part (main thread) | µs/resp | share |\n|---|---:|---:|")
    for name, n in parts.most_common():
        print(f"| {name} | {n * us:.0f} | {100 * n / total:.0f}% |")
    _table("self", [(n * us, n / total, "-", f) for f, n in own.most_common(top)])
    _table("inclusive", [(n * us, n / total, "-", f) for f, n in inclusive.most_common(top)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="profile one gateway scenario")
    parser.add_argument("--transport", choices=("aiohttp", "httpx"), default="aiohttp")
    parser.add_argument("--mode", choices=("burst", "paced"), default="paced")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--chunks", type=int, default=50)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--profiler", choices=("py-spy", "cprofile"), default="py-spy")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument(
        "--upstream-api",
        choices=("openai", "anthropic"),
        default="openai",
        help="what the gateway speaks upstream (the client speaks OpenAI either way)",
    )
    parser.add_argument("--source", type=Path, help="run the gateway from this source tree")
    parser.add_argument("--no-pin", action="store_true")
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if args.profiler == "py-spy" and not Path(py_spy).exists():
        parser.error("py-spy is not installed: pip install py-spy, or use --profiler cprofile")
    pin = pin_cores(args.no_pin)
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    ext = "pstats" if args.profiler == "cprofile" else "txt"
    api = "" if args.upstream_api == "openai" else "-anthropic"
    kept = out_dir / f"profile-{args.transport}{api}-{args.mode}-c{args.concurrency}-{stamp}.{ext}"
    model = (ANTHROPIC_ROUTE_PREFIX if api else "") + args.mode
    procs: list[Proc] = []
    with tempfile.TemporaryDirectory(prefix="llmgate-prof-") as tmp:
        dump = Path(tmp) / f"gateway.{ext}"
        try:
            upstream = start_upstream(Path(tmp), pin)
            procs.append(upstream)
            gw = start_gateway(
                Path(tmp),
                args.transport,
                upstream.port,
                chunks=args.chunks,
                workers=1,
                pin=pin,
                profile_to=dump if args.profiler == "cprofile" else None,
                source=args.source,
            )
            procs.append(gw)
            if pin:
                os.sched_setaffinity(0, {1})
            watch = {"server": gw.pids, "upstream": upstream.pids, "client": [os.getpid()]}

            def run(warmup: float) -> dict[str, Any]:
                """One measured phase, plus ``main_share``: the main thread's part of
                the gateway's CPU in it, from /proc (warm-up included)."""
                before = procstat.thread_cpu_seconds(gw.pids[0])
                r = measure(
                    gw.port,
                    model,
                    args.concurrency,
                    watch,
                    chunks=args.chunks,
                    warmup_s=warmup,
                    duration_s=args.duration,
                    max_requests=200_000,
                )
                after = procstat.thread_cpu_seconds(gw.pids[0])
                used = {t: cpu - before.get(t, 0.0) for t, cpu in after.items()}
                total_cpu = sum(used.values())
                main = used.get(gw.pids[0], total_cpu)
                r["main_share"] = main / total_cpu if total_cpu else 1.0
                return r

            plain = run(0.5)
            if args.profiler == "cprofile":
                gw.signal(signal.SIGUSR1)
                time.sleep(0.2)
                profiled = run(0.0)
                gw.signal(signal.SIGUSR2)
            else:
                sampler = subprocess.Popen(
                    [py_spy, "record", "-r", str(args.rate), "-f", "raw",
                     "-d", str(int(args.duration + 2)), "-p", str(gw.pids[0]), "-o", str(dump)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )  # fmt: skip
                profiled = run(0.5)
                try:
                    sampler.wait(60)
                except subprocess.TimeoutExpired:
                    sampler.kill()
                    sampler.wait()
            deadline = time.monotonic() + 30
            while not dump.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)  # let the dump finish writing
        finally:
            for p in reversed(procs):
                p.stop()
        if not dump.exists():
            print("no profile was written", file=sys.stderr)
            return 1
        shutil.copy(dump, kept)
    cpu, share = plain["server_cpu_ms_per_resp"], plain["main_share"]
    spy_cpu = profiled["server_cpu_ms_per_resp"]
    print(
        f"{args.transport}{api} {args.mode} c={args.concurrency}: without profiler "
        f"{plain['rps']:.0f} rps, {cpu:.2f} ms CPU/response, of which other threads "
        f"than the main one {1000 * cpu * (1 - share):.0f} µs; profiled "
        f"{profiled['rps']:.0f} rps, {spy_cpu:.2f} ms CPU/response (other threads "
        f"{1000 * spy_cpu * (1 - profiled['main_share']):.0f} µs: py-spy's pauses) over "
        f"{profiled['responses']} responses"
    )
    if args.profiler == "cprofile":
        _print_pstats(kept, int(profiled["responses"]), plain["server_cpu_ms_per_resp"], args.top)
    else:
        _print_collapsed(kept, cpu * share, args.top)
    print(f"\nraw profile: {kept}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
