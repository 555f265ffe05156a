"""CPU time and memory of a process tree, read from Linux's /proc.

CPU comes from each thread's ``schedstat`` (nanoseconds on CPU) where the kernel has
it, else from ``stat``'s utime+stime (clock ticks, usually 10 ms). Peak memory is
``VmHWM``; writing ``5`` to ``clear_refs`` resets it, so each scenario can report its
own peak (root or the process owner only; otherwise the peak since start).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "core_busy_seconds",
    "cpu_seconds",
    "peak_rss_mb",
    "reset_peak",
    "rss_mb",
    "thread_cpu_seconds",
    "tree",
]

_TICK = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (uvicorn's worker processes when --workers > 1)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def _cpu_one(pid: int) -> float:
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
        return sum(int((t / "schedstat").read_text().split()[0]) for t in tasks) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """CPU time used so far by each thread of ``pid`` (schedstat; empty without it)."""
    out: dict[int, float] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for t in tasks:
        try:
            out[int(t.name)] = int((t / "schedstat").read_text().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            continue
    return out


def cpu_seconds(pids: list[int]) -> float:
    """CPU time used so far by these processes (all their threads)."""
    return sum(_cpu_one(p) for p in pids)


def core_busy_seconds(core: int) -> float:
    """Time one core spent busy (anything but idle and iowait) since boot, from
    /proc/stat; minus our server's CPU it tells how much else ran on that core."""
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith(f"cpu{core} "):
                f = [int(x) for x in line.split()[1:]]
                return (sum(f[:8]) - f[3] - f[4]) / _TICK  # guest time is inside user
    except (OSError, ValueError):
        pass
    return 0.0


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_rss_mb(pids: list[int]) -> float:
    """Sum of the processes' peak resident set sizes, in MiB."""
    return sum(_status_kb(p, "VmHWM:") for p in pids) / 1024


def rss_mb(pids: list[int]) -> float:
    return sum(_status_kb(p, "VmRSS:") for p in pids) / 1024


def reset_peak(pids: list[int]) -> bool:
    """Restart peak-RSS accounting; False if the kernel refused."""
    ok = True
    for p in pids:
        try:
            Path(f"/proc/{p}/clear_refs").write_text("5")
        except OSError:
            ok = False
    return ok
