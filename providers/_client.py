"""The one seam where the upstream HTTP client is made.

Adapters speak httpx's API; the transport underneath is chosen by measurement (see
benchmarks/README.md): aiohttp's parser costs a fraction of httpx's default transport
per streamed chunk.
"""

from __future__ import annotations

from typing import Literal

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

__all__ = ["Transport", "make_client"]

Transport = Literal["aiohttp", "httpx"]


class _Transport(AiohttpTransport):
    """httpx-aiohttp leaves some aiohttp errors unmapped; map them all."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except aiohttp.ClientError as exc:
            raise httpx.ConnectError(repr(exc), request=request) from exc


def make_client(
    transport: Transport = "aiohttp", *, max_connections: int = 1000
) -> httpx.AsyncClient:
    """A shared client for all adapters; the owner (app lifespan or library) closes it."""
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    timeout = httpx.Timeout(connect=10.0, read=None, write=30.0, pool=10.0)
    if transport == "httpx":
        return httpx.AsyncClient(limits=limits, timeout=timeout)
    return httpx.AsyncClient(transport=_Transport(limits=limits, trust_env=False), timeout=timeout)
