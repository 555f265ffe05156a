"""The ``llmgate`` command line, run as a real process."""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import httpx
import openai
import pytest
from litestar.testing import TestClient

from providers import load_config
from server.app import app_from_env, create_app
from server.store import DATABASE_URL_ENV
from tests.eventually import eventually

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config.example.toml"


def llmgate(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_check_config_accepts_the_example() -> None:
    result = llmgate("check-config", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            '[providers.m]\nkind = "mock"\nfoo = 1\n',
            "providers.m: Object contains unknown field `foo`",
        ),
        (
            '[providers.m]\nkind = "mock"\n[routes.chat]\ntargets = ["m/a"]\nmax_retries = "two"\n',
            "routes.chat.max_retries: Expected `int`, got `str`",
        ),
        (
            '[providers.m]\nkind = "mock"\n[routes.chat]\ntargets = ["x/a"]\n',
            "routes.chat.targets[0]: unknown provider 'x'",
        ),
        (
            '[providers.m]\nkind = "mock"\n[routes.chat]\ntargets = ["m/a"]\nstream_fallback_mode = "retry"\n',
            "routes.chat.stream_fallback_mode: Invalid enum value 'retry'; expected one of",
        ),
        (
            '[providers.m]\nkind = "vertex"\n',
            "providers.m.kind: Invalid value 'vertex'; expected one of openai, anthropic, gemini, mock",
        ),
        ("[providers\n", "not valid TOML"),
        (
            '[providers.m]\nkind = "mock"\n[providers.a]\nkind = "anthropic"\n'
            '[routes.embed]\ntargets = ["m/e", {pool = ["m/f", "a/claude-x"]}]\n'
            "embeddings = true\n",
            "routes.embed.targets[1].pool[1]: 'a/claude-x' cannot embed: provider 'a' is of "
            "kind 'anthropic'",
        ),
    ],
    ids=[
        "unknown-key",
        "wrong-type",
        "unknown-provider",
        "bad-mode",
        "bad-kind",
        "syntax",
        "cannot-embed",
    ],
)
def test_check_config_refuses_a_bad_file_naming_file_and_key(
    tmp_path: Path, toml: str, expected: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    result = llmgate("check-config", str(path))
    assert result.returncode == 2
    assert str(path) in result.stderr and expected in result.stderr


def test_serve_refuses_a_public_address_without_a_key() -> None:
    env = {k: v for k, v in os.environ.items() if k != "LLMGATE_MASTER_KEY"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            "--config",
            str(EXAMPLE),
            "--host",
            "0.0.0.0",
            "--port",
            str(free_port()),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert result.returncode == 2
    assert "LLMGATE_MASTER_KEY" in result.stderr


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    database = f"sqlite+aiosqlite:///{tmp_path / 'llmgate.db'}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "server.cli",
            "serve",
            "--config",
            str(EXAMPLE),
            "--port",
            str(port),
            "--workers",
            "2",
            "--database-url",
            database,
        ],
        cwd=ROOT,
        env={**os.environ, "LLMGATE_MASTER_KEY": "sk-cli"},
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:  # not listening yet
            return False

    eventually(healthy, "the gateway process to serve", within_s=30)
    yield base, proc
    proc.terminate()
    proc.wait(15)
    if proc.stderr:
        proc.stderr.close()


def test_serve_with_two_workers_streams_the_example_route(
    served: tuple[str, subprocess.Popen[str]],
) -> None:
    base, proc = served
    children = subprocess.run(
        ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True
    ).stdout.split()
    assert len(children) >= 2
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="sk-cli", max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="resilient", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 40  # the mock's full answer, across the mid-stream switch
    assert any(getattr(c, "llmgate", None) and "switch" in c.llmgate for c in chunks)
    with (
        openai.OpenAI(base_url=f"{base}/v1", api_key="nope", max_retries=0) as wrong,
        pytest.raises(openai.AuthenticationError),
    ):
        wrong.models.list()


def test_serving_workers_freeze_what_start_up_leaves_out_of_the_gc(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Full collections over the objects start-up leaves (imports, the store) stalled
    serving for 150-200 ms every few seconds; a `llmgate serve` worker freezes them
    once its lifespan has started (tests' own apps do not)."""
    monkeypatch.setenv("LLMGATE_CONFIG", str(EXAMPLE))
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    app = app_from_env()
    assert gc.get_freeze_count() == 0
    try:
        with TestClient(app) as client:  # runs the lifespan
            assert gc.get_freeze_count() > 0
            assert client.get("/healthz").status_code == 200
    finally:
        gc.unfreeze()


def test_version_is_printed_and_served() -> None:
    installed = version("llmgate")
    result = llmgate("--version")
    assert (result.returncode, result.stdout.strip()) == (0, f"llmgate {installed}")
    with TestClient(create_app(load_config(str(EXAMPLE)))) as client:
        assert client.get("/healthz").json()["version"] == installed
