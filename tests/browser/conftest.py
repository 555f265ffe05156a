"""Browser tests: the real dashboard, served on 127.0.0.1, driven by Playwright in the
system's Chromium (Debian's ``chromium`` package; never a downloaded browser).

The browser is ``$LLMGATE_CHROMIUM`` or ``/usr/bin/chromium``. Without one the tests
skip with the reason printed, except under CI (``CI`` set), where a missing browser is
a failure: ``.ci/run`` installs it. Each test gets a fresh context at 1280x800;
`Browser.shot` writes a screenshot of the page to ``screenshots/`` at the top of the
checkout (ignored by git) for anyone to look at.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.dashboard.conftest import (
    ADMIN_KEY,
    CLIENT_KEY,
    ENV,
    Serve,
    ServedGateway,
    database_url,
    engine,
    serve,
    store,
)

__all__ = ["ADMIN_KEY", "CLIENT_KEY", "ENV", "Browser", "database_url", "engine", "serve", "store"]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def chromium_path() -> str | None:
    candidate = os.environ.get("LLMGATE_CHROMIUM") or "/usr/bin/chromium"
    return candidate if Path(candidate).is_file() else shutil.which("chromium")


class Browser:
    """One page of a fresh browser context, at 1280x800."""

    def __init__(self, page: object) -> None:
        from playwright.async_api import Page

        assert isinstance(page, Page)
        self.page: Page = page

    async def sign_in(self, gateway: ServedGateway, secret: str = ADMIN_KEY) -> None:
        page = self.page
        await page.goto(f"{gateway.base}/admin")
        await page.wait_for_url("**/admin/login**")
        await page.fill("#secret", secret)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{gateway.base}/admin")

    async def shot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        await self.page.screenshot(path=str(path))
        return path


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_path()
    if executable is None:
        reason = "no Chromium found (install Debian's chromium, or set LLMGATE_CHROMIUM)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests: {reason}")
        print(f"\nskipping the browser tests: {reason}")
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=executable, args=LAUNCH_ARGS, headless=True
        )
        context = await chromium.new_context(viewport={"width": 1280, "height": 800})
        page = await context.new_page()
        page.set_default_timeout(10_000)
        try:
            yield Browser(page)
        finally:
            await context.close()  # closes the page's live feeds before the server stops
            await chromium.close()


__all__ += ["Serve"]
