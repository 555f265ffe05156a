"""Two ``llmgate serve`` processes on one database. A route changed through one
process's admin API reaches the other within a second; a stream in flight there
finishes on the policy it started with, and the next request uses the new one."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.store import DATABASE_URL_ENV
from tests.admin.conftest import ADMIN_KEY, CLIENT_KEY, MESSAGES, Clients
from tests.eventually import eventually_async
from tests.fakes.openai_upstream import FakeUpstream, Stream

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"
OLD_PIECES = [f"old{i} " for i in range(20)]
CONFIG = """
[server]
reload_poll_s = {poll}

[providers.up]
kind = "openai"
base_url = "{base_url}"

[routes.chat]
targets = ["up/old-model"]
max_retries = 0
first_token_timeout_s = 5
stall_timeout_s = 5
"""


class GatewayProcess(Clients):
    """``llmgate serve --workers 1`` in a process of its own; output goes to ``log``."""

    def __init__(self, config: Path, database_url: str, log: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        super().__init__(f"http://127.0.0.1:{port}")
        env = {k: v for k, v in os.environ.items() if k != DATABASE_URL_ENV}
        env |= {"LLMGATE_MASTER_KEY": CLIENT_KEY, "LLMGATE_ADMIN_KEY": ADMIN_KEY}
        args = ["serve", "--config", str(config), "--port", str(port), "--workers", "1"]
        self.log = log
        with log.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "server.cli", *args, "--database-url", database_url],
                cwd=config.parent,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def ready(self) -> None:
        async def healthy() -> bool:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                return (await self.http.get("/healthz")).status_code == 200
            except httpx.TransportError:  # not listening yet
                return False

        await eventually_async(healthy, "the gateway process to serve", within_s=30)

    async def aclose(self) -> None:
        await super().aclose()
        self.proc.terminate()
        await asyncio.to_thread(self.proc.wait, 15)


Start = Callable[[str], Awaitable[tuple[GatewayProcess, GatewayProcess]]]


@pytest.fixture
def upstream() -> AsyncIterator[FakeUpstream]:
    with FakeUpstream() as fake:
        fake.script("old-model", Stream(OLD_PIECES, delay_s=0.1))  # two seconds in flight
        fake.script("new-model", Stream(["new ", "answer"]))
        yield fake


@pytest.fixture
async def gateways(
    database_url: str, upstream: FakeUpstream, tmp_path: Path
) -> AsyncIterator[Start]:
    """``await gateways(poll)``: processes A and B on the (unmigrated) test database."""
    started: list[GatewayProcess] = []

    async def start(poll: str) -> tuple[GatewayProcess, GatewayProcess]:
        config = tmp_path / "llmgate.toml"
        config.write_text(CONFIG.format(poll=poll, base_url=upstream.base_url))
        for name in ("a", "b"):
            started.append(GatewayProcess(config, database_url, tmp_path / f"{name}.log"))
        await asyncio.gather(*(p.ready() for p in started))
        return started[0], started[1]

    yield start
    for process in started:
        await process.aclose()


async def test_a_change_on_one_process_reaches_the_other_within_a_second_sparing_streams_in_flight(
    gateways: Start, upstream: FakeUpstream, database_url: str
) -> None:
    # PostgreSQL: a 30 s poll, so only NOTIFY can be this fast. SQLite: the poll alone.
    a, b = await gateways("0.2" if database_url.startswith("sqlite") else "30")
    assert await a.revision() == await b.revision() == 1  # seeded once, from the file

    first_content = asyncio.Event()
    in_flight = asyncio.create_task(_stream(b, first_content))
    await asyncio.wait_for(first_content.wait(), 10)

    response = await a.admin.put("/routes/chat", json={"targets": ["up/new-model"]})
    written_at = time.monotonic()
    assert response.status_code == 200
    revision = response.json()["revision"]
    assert revision == 2 and await a.revision() == 2  # the writer: at once
    propagation = await b.serves_within(revision, 1.0)  # the other process
    switched_at = written_at + propagation
    print(f"\npropagation to the other process: {propagation * 1000:.0f} ms")

    assert await b.answer() == (200, "up/new-model", "new answer")
    assert not in_flight.done()

    chunks = await in_flight
    content = [(t, c) for t, c in chunks if c != "[DONE]" and c["choices"]]
    assert {c["model"] for _, c in content} == {"old-model"}
    assert "".join(c["choices"][0]["delta"].get("content") or "" for _, c in content) == "".join(
        OLD_PIECES
    )
    assert chunks[-1][1] == "[DONE]"
    assert chunks[-1][0] > switched_at  # it was still streaming after B had switched
    assert (len(upstream.requests_for("old-model")), len(upstream.requests_for("new-model"))) == (
        1,
        1,
    )


async def _stream(gateway: Clients, first_content: asyncio.Event) -> list[tuple[float, Any]]:
    """Every SSE event of one streamed request, with the time it arrived."""
    events: list[tuple[float, Any]] = []
    body = {"model": "chat", "messages": MESSAGES, "stream": True}
    async with gateway.http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                data = line.removeprefix("data: ")
                events.append((time.monotonic(), data if data == "[DONE]" else json.loads(data)))
                first_content.set()
    return events


def test_serve_refuses_to_start_when_it_cannot_migrate_its_database(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--config", str(EXAMPLE), "--port", "9"],
        cwd=tmp_path,
        env={**os.environ, DATABASE_URL_ENV: "postgresql://postgres@127.0.0.1:1/nowhere"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "llmgate: database error: ConnectionRefusedError" in result.stderr


async def test_session_affinity_puts_a_session_on_the_same_member_in_both_processes(
    gateways: Start, upstream: FakeUpstream, database_url: str
) -> None:
    a, b = await gateways("0.2" if database_url.startswith("sqlite") else "30")
    members = ["m-a", "m-b", "m-c"]
    for model in members:
        upstream.script(model, Stream([f"from {model}"]))
    route = {"targets": [{"pool": [f"up/{m}" for m in members]}], "affinity": "session"}
    response = await a.admin.put("/routes/chat", json=route)
    assert response.status_code == 200
    await b.serves_within(response.json()["revision"], 5.0)

    async def ask(gateway: GatewayProcess, **headers: str) -> str:
        body = {"model": "chat", "messages": MESSAGES}
        answer = await gateway.http.post("/v1/chat/completions", json=body, headers=headers)
        assert answer.status_code == 200, answer.text
        model: str = answer.json()["model"]
        return model

    one_session = {await ask((a, b)[i % 2], **{"x-llmgate-session": "s-1"}) for i in range(20)}
    assert len(one_session) == 1  # twenty requests, two processes, one member
    sessions = {await ask((a, b)[i % 2], **{"x-llmgate-session": f"s-{i}"}) for i in range(20)}
    assert len(sessions) >= 2  # twenty sessions spread over the members
