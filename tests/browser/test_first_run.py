"""The first run, as a new user meets it: ``llmgate serve`` with no admin key or
password prints a one-time sign-in link; following it in a browser lands on the
overview, signed in."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
from pathlib import Path

import httpx

from tests.browser.conftest import Browser
from tests.eventually import eventually_async

ROOT = Path(__file__).resolve().parents[2]
SECRETS = ("LLMGATE_ADMIN_KEY", "LLMGATE_ADMIN_PASSWORD", "LLMGATE_MASTER_KEY")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_the_printed_link_signs_in_to_the_overview(browser: Browser, tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}
    env["LLMGATE_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'llmgate.db'}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server.cli",
        "serve",
        "--config",
        str(ROOT / "config.example.toml"),
        "--port",
        str(port),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    try:
        link = None
        async with asyncio.timeout(30):
            while link is None:
                line = (await proc.stderr.readline()).decode()
                assert line, "serve exited without printing a sign-in link"
                found = re.search(r"(http://\S+/admin/login\?token=\S+)", line)
                link = found.group(1) if found else None
        base = f"http://127.0.0.1:{port}"

        async def serving() -> bool:
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(f"{base}/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await eventually_async(serving, "the gateway to serve", within_s=30)
        page = browser.page
        await page.goto(link)
        await page.wait_for_url(f"{base}/admin")
        assert await page.locator("h1").first.inner_text() == "Overview"
        await browser.shot("00-first-run-overview")
        # The link is spent: a second visit is refused, and says what to do instead.
        await page.goto(link)
        assert "already used or has expired" in await page.content()
    finally:
        proc.terminate()
        await proc.wait()
