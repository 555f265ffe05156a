"""POST a streaming request and turn its server-sent events into chunk batches."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping

import httpx

from providers._client import Upstream
from providers._http import Classifier, error_for_status, transport_errors
from providers._sse import SSEParser
from router.errors import ProviderError, StreamInterrupted
from router.events import Chunk
from router.provider import AttemptOptions

__all__ = ["Feed", "sse_chunks"]

Feed = Callable[[bytes | None, bytes, list[Chunk]], None]
"""Translates one ``(event, data)`` pair, appending chunks; raises `ProviderError`."""


async def sse_chunks(
    client: Upstream,
    provider: str,
    url: httpx.URL,
    *,
    headers: Mapping[str, str],
    body: bytes,
    options: AttemptOptions,
    classify: Classifier,
    feed: Feed,
    complete: Callable[[], None],
    retry_hint: Callable[[bytes], float | None] | None = None,
) -> AsyncGenerator[list[Chunk], None]:
    """One batch per network read that produced any chunk.

    A non-2xx status raises its `error_for_status` error; transport failures raise
    `ConnectFailed`, `UpstreamTimeout` or (once headers arrived) `StreamInterrupted`, as
    does a body that ends in the middle of an event. ``complete`` runs when the body
    ended cleanly and raises `StreamInterrupted` unless the events made a complete
    answer (each provider has its own end marker). Close the generator
    (``aclosing``) to release the connection early. ``retry_hint`` reads a retry delay
    from an error body, for upstreams that send no ``Retry-After`` header.
    """
    timeout = httpx.Timeout(options.connect_timeout_s, read=None)
    headers_seen = [False]
    with transport_errors(provider, headers_seen):
        async with client.stream(
            "POST", url, content=body, headers=headers, timeout=timeout
        ) as response:
            if response.status_code >= 400:
                error_body = await response.aread()
                failure = error_for_status(
                    provider, response.status_code, response.headers, error_body, classify
                )
                if failure.retry_after is None and retry_hint is not None:
                    failure.retry_after = retry_hint(error_body)
                raise failure
            headers_seen[0] = True
            parser = SSEParser()
            async for data in response.aiter_raw():
                batch: list[Chunk] = []
                error: ProviderError | None = None
                try:
                    for event, payload in parser.feed(data):
                        feed(event, payload, batch)
                except ProviderError as exc:
                    # Content that arrived in the same read as a bad event was still
                    # delivered by the upstream: pass it on before failing.
                    error = exc
                if batch:
                    yield batch
                if error is not None:
                    raise error
            if parser.pending:
                raise StreamInterrupted(
                    f"{provider} stream ended in the middle of an event", provider=provider
                )
            complete()
