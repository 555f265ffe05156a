"""The one seam where the upstream HTTP client is made.

Adapters speak httpx's API (``httpx.URL``, ``httpx.Request``, ``httpx.Response`` and
its transport interface); the transport underneath is chosen by measurement (see
benchmarks/README.md): aiohttp's parser costs a fraction of httpx's default transport
per streamed chunk.

`Upstream` sends straight to the transport. ``httpx.AsyncClient`` adds, on every
request, URL merging and parsing, a cookie jar, and auth and redirect flows, none of
which an API upstream needs: in the benchmark they were a third of the gateway's CPU
per response.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Literal

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

__all__ = ["Transport", "Upstream", "make_client"]

Transport = Literal["aiohttp", "httpx"]


class _AiohttpTransport(AiohttpTransport):
    """httpx-aiohttp leaves some aiohttp errors unmapped; map them all."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except aiohttp.ClientError as exc:
            raise httpx.ConnectError(repr(exc), request=request) from exc


class Upstream:
    """A shared client for all adapters; its owner (app lifespan or library) closes it."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self._transport = transport

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: httpx.URL,
        *,
        headers: Mapping[str, str],
        content: bytes,
        timeout: httpx.Timeout,  # noqa: ASYNC109 - httpx's per-request timeouts
    ) -> AsyncIterator[httpx.Response]:
        """Send one request; the response body is read from the yielded response."""
        request = httpx.Request(
            method,
            url,
            headers=headers,
            content=content,
            extensions={"timeout": timeout.as_dict()},
        )
        response = await self._transport.handle_async_request(request)
        try:
            yield response
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def __aenter__(self) -> Upstream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def make_client(transport: Transport = "aiohttp", *, max_connections: int = 1000) -> Upstream:
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    if transport == "httpx":
        return Upstream(httpx.AsyncHTTPTransport(limits=limits, trust_env=False))
    return Upstream(_AiohttpTransport(limits=limits, trust_env=False))
