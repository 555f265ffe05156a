"""Real client libraries, nobody's here, against a real gateway on 127.0.0.1.

Each test module drives one client through the scenarios of `tests.clients.scenarios`
with the client's default retry settings. A module shares one `World` (the fake
upstreams and a gateway with a route per scenario): starting a gateway costs half a
second, and each scenario's route is used by one test only.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.clients import scenarios
from tests.fakes.anthropic_upstream import AnthropicUpstream
from tests.fakes.openai_upstream import FakeUpstream
from tests.integration.conftest import KEY, RunningGateway

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = Path(__file__).with_name("node")


@dataclass
class World:
    gateway: RunningGateway
    up: FakeUpstream
    claude: AnthropicUpstream

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL, ending in ``/v1``."""
        return self.gateway.base_url

    def calls(self, *models: str) -> int:
        """Requests the OpenAI-compatible fake received for these models."""
        return sum(len(self.up.requests_for(model)) for model in models)


@contextlib.contextmanager
def open_world() -> Iterator[World]:
    """Fresh fakes, scripted for every scenario, behind a fresh gateway."""
    with FakeUpstream() as up, AnthropicUpstream() as claude:
        config = scenarios.setup(up, claude)
        gateway = RunningGateway(config, {"LLMGATE_MASTER_KEY": KEY, "UP_KEY": "sk-upstream"})
        try:
            yield World(gateway, up, claude)
        finally:
            gateway.stop()


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with open_world() as opened:
        yield opened


def run_node(script: str, payload: dict[str, Any], timeout_s: float = 40.0) -> dict[str, Any]:
    """Run ``tests/clients/node/<script>`` under the machine's node with ``payload`` as
    JSON on stdin; returns the JSON object it prints."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: the client suite runs the Node SDKs under it")
    if not (ROOT / "node_modules" / "ai").is_dir():
        pytest.fail("the Node client libraries are not installed: run `make install`")
    done = subprocess.run(
        [node, str(NODE_DIR / script)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=ROOT,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(f"{script} exited {done.returncode}:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


NODE_SCENARIOS: list[dict[str, str]] = [
    {"id": "cut", "run": "text", "route": "cut"},
    {"id": "cut-restart", "run": "text", "route": "cut-restart"},
    {"id": "tool-cut", "run": "toolCall", "route": "tool-cut"},
    {"id": "dead", "run": "failure", "route": "dead"},
    {"id": "gone", "run": "failure", "route": "gone"},
    {"id": "limited", "run": "failure", "route": "limited"},
    {"id": "thinker", "run": "reasoning", "route": "thinker"},
    {"id": "refuser-stream", "run": "refusalStream", "route": "refuser"},
]
"""What a Node script is asked to run: ``runs[run](route)``, reported under ``id``."""


def run_node_scenarios(
    world: World, script: str, jobs: list[dict[str, str]], **extra: Any
) -> dict[str, Any]:
    """Run every scenario in one Node process (they run concurrently, on their own
    routes); returns each one's result by id."""
    payload = {
        "baseUrl": world.base_url,
        "apiKey": KEY,
        "question": scenarios.QUESTION,
        "tool": scenarios.WEATHER_TOOL,
        "scenarios": jobs,
        **extra,
    }
    return run_node(script, payload)
