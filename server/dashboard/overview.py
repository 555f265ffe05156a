"""Dashboard: the overview page (being built)."""

from __future__ import annotations

from typing import Any

from litestar import get
from litestar.response import Template

from server.dashboard.common import Req, page


@get("/")
async def overview(request: Req) -> Template:
    return page(request, "overview.html", "overview")


HANDLERS: list[Any] = [overview]
