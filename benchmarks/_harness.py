"""Starting and stopping the benchmark's processes: the fake upstream and gateways."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import procstat

__all__ = [
    "ANTHROPIC_ROUTE_PREFIX",
    "HOST",
    "KEY",
    "Proc",
    "arun",
    "child_env",
    "has_anthropic",
    "pin_cores",
    "start_gateway",
    "start_relay",
    "start_upstream",
]

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
KEY = "bench-key"
_KEY_ENV = "LLMGATE_BENCH_KEY"
# Loopback only: never let a proxy from the environment see these requests.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

T = TypeVar("T")


def arun(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def pin_cores(no_pin: bool = False) -> bool:
    """Whether to pin: two cores or more and taskset available."""
    return not no_pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMGATE_")}
    env[_KEY_ENV] = KEY
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _taskset(core: int | None) -> list[str]:
    return ["taskset", "-c", str(core)] if core is not None else []


class Proc:
    """A child process we started; stopped by its own pid only."""

    def __init__(
        self, name: str, cmd: list[str], port: int, log: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.port = port
        self.log = log
        self._log = log.open("wb")
        # cwd: `python -m` puts it first on sys.path, and it must not shadow --source.
        self.popen = subprocess.Popen(
            cmd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**child_env(), **(env or {})},
            cwd=log.parent,
        )
        self.pids = [self.popen.pid]

    def wait_ready(self, path: str, timeout_s: float = 30.0) -> None:
        url = f"http://{HOST}:{self.port}{path}"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.popen.poll() is None:
            try:
                with _opener.open(url, timeout=2) as r:
                    if r.status == 200:
                        self.pids = procstat.tree(self.popen.pid)
                        return
            except OSError:
                time.sleep(0.1)
        self.stop()
        tail = self.log.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{self.name} did not become ready at {url}:\n{tail}")

    def signal(self, signum: int) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signum)

    def stop(self, signum: int | None = None) -> None:
        if self.popen.poll() is None:
            if signum is None:
                self.popen.terminate()
            else:
                self.popen.send_signal(signum)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self._log.close()


def start_upstream(run_dir: Path, pin: bool) -> Proc:
    port = _free_port()
    cmd = [*_taskset(1 if pin else None), sys.executable, str(HERE / "upstream.py")]
    proc = Proc("upstream", [*cmd, "--host", HOST, "--port", str(port)], port, run_dir / "up.log")
    proc.wait_ready("/")
    return proc


def start_relay(run_dir: Path, upstream_port: int, pin: bool) -> Proc:
    """The byte relay (relay.py) on the gateway's core: the floor for any proxy."""
    port = _free_port()
    cmd = [*_taskset(0 if pin else None), sys.executable, str(HERE / "relay.py")]
    cmd += ["--host", HOST, "--port", str(port), "--upstream-port", str(upstream_port)]
    proc = Proc("relay", cmd, port, run_dir / "relay.log")
    proc.wait_ready("/")
    return proc


ANTHROPIC_ROUTE_PREFIX = "anthropic-"
"""Routes ``anthropic-burst`` and ``anthropic-paced`` go to the fake's Anthropic mode."""


def has_anthropic(source: Path | None) -> bool:
    """Whether the gateway (the installed one, or the tree ``source``) has the
    Anthropic adapter: commits before it reject an ``anthropic`` provider."""
    return source is None or (source / "providers" / "anthropic.py").exists()


def has_embeddings(source: Path | None) -> bool:
    """Whether the gateway (the installed one, or the tree ``source``) has the embeddings
    door: commits before it reject a route with ``embeddings``."""
    return source is None or (source / "server" / "api" / "embeddings").is_dir()


BUDGET = """
[routes.{route}.budget]
requests_per_minute = 1000000000
tokens_per_day = 1000000000000
"""
"""A budget that never refuses: what enforcing one costs (``run.py --budget``)."""


POOL_MEMBERS = 5


def _pool(upstream_port: int, chunks: int) -> str:
    """``pool-burst`` and ``pool-paced``: a `least_latency` pool of five deployments (five
    providers, one fake upstream), what choosing among them costs (``run.py --pool``)."""
    members = [f"pool{i}" for i in range(POOL_MEMBERS)]
    text = "".join(
        f'\n[providers.{m}]\nkind = "openai"\nbase_url = "http://{HOST}:{upstream_port}/v1"\n'
        for m in members
    )
    for mode in ("burst", "paced"):
        pool = ", ".join(f'"{m}/{mode}-{chunks}"' for m in members)
        text += f'\n[routes.pool-{mode}]\ntargets = [{{ pool = [{pool}], balance = "least_latency" }}]\n'
    return text


HEDGE_AFTER_S = 0.05


def _hedge(upstream_port: int, chunks: int) -> str:
    """``skewed`` and ``skewed-hedged``: two deployments of the fake's slow-tailed
    ``skewed`` model, without and with ``hedge_after_s`` (``run.py --hedge``)."""
    targets = f'["up/skewed-{chunks}", "up2/skewed-{chunks}"]'
    return (
        f'\n[providers.up2]\nkind = "openai"\nbase_url = "http://{HOST}:{upstream_port}/v1"\n'
        f"\n[routes.skewed]\ntargets = {targets}\n"
        f"\n[routes.skewed-hedged]\ntargets = {targets}\nhedge_after_s = {HEDGE_AFTER_S}\n"
    )


def _config(
    upstream_port: int,
    transport: str,
    chunks: int,
    anthropic: bool,
    budget: bool = False,
    pool: bool = False,
    hedge: bool = False,
    embeddings: bool = False,
) -> str:
    config = f"""\
[server]
master_key_env = "{_KEY_ENV}"
upstream_transport = "{transport}"

[providers.up]
kind = "openai"
base_url = "http://{HOST}:{upstream_port}/v1"

[routes.burst]
targets = ["up/burst-{chunks}"]

[routes.paced]
targets = ["up/paced-{chunks}"]
"""
    if embeddings:
        config += '\n[routes.embed]\ntargets = ["up/embed"]\nembeddings = true\n'
    if anthropic:
        config += f"""
[providers.upa]
kind = "anthropic"
base_url = "http://{HOST}:{upstream_port}"
api_key_env = "{_KEY_ENV}"

[routes.{ANTHROPIC_ROUTE_PREFIX}burst]
targets = ["upa/burst-{chunks}"]

[routes.{ANTHROPIC_ROUTE_PREFIX}paced]
targets = ["upa/paced-{chunks}"]
"""
    if budget:
        config += BUDGET.format(route="burst") + BUDGET.format(route="paced")
    if pool:
        config += _pool(upstream_port, chunks)
    if hedge:
        config += _hedge(upstream_port, chunks)
    return config


def start_gateway(
    run_dir: Path,
    transport: str,
    upstream_port: int,
    *,
    chunks: int,
    workers: int,
    pin: bool,
    profile_to: Path | None = None,
    source: Path | None = None,
    budget: bool = False,
    pool: bool = False,
    hedge: bool = False,
) -> Proc:
    """`llmgate serve` with a generated config; under cProfile if ``profile_to``; from
    the source tree ``source`` (say, an unpacked other commit) instead of the installed
    package if given: it goes first on PYTHONPATH. The config routes ``burst`` and
    ``paced`` to the fake upstream's OpenAI mode and, if the gateway has the Anthropic
    adapter, ``anthropic-burst`` and ``anthropic-paced`` to its Anthropic mode. With
    ``budget``, ``burst`` and ``paced`` carry a budget that never refuses; with ``pool``
    the config also has the ``pool-burst`` and ``pool-paced`` routes; with ``hedge``,
    ``skewed`` and ``skewed-hedged``."""
    port = _free_port()
    config = run_dir / f"gateway-{transport}.toml"
    config.write_text(
        _config(
            upstream_port,
            transport,
            chunks,
            has_anthropic(source),
            budget,
            pool,
            hedge,
            has_embeddings(source),
        )
    )
    if profile_to is not None:
        gateway = [sys.executable, str(HERE / "_profiled_gateway.py"), str(profile_to)]
    elif source is not None:
        gateway = [sys.executable, "-m", "server.cli"]
    else:
        script = Path(sys.executable).with_name("llmgate")
        gateway = [str(script)] if script.exists() else [sys.executable, "-m", "server.cli"]
    cmd = [
        *_taskset(0 if pin else None),
        *gateway,
        "serve",
        "--config", str(config),
        "--host", HOST,
        "--port", str(port),
        "--workers", str(workers),
    ]  # fmt: skip
    env = {"PYTHONPATH": str(source.resolve())} if source is not None else None
    # Its own working directory: the gateway keeps its policy store there (./llmgate.db,
    # seeded from the config only when empty), so gateways never share one.
    home = run_dir / f"gateway-{transport}"
    home.mkdir(exist_ok=True)
    proc = Proc(f"gateway-{transport}", cmd, port, home / "gateway.log", env)
    proc.wait_ready("/healthz")
    return proc
