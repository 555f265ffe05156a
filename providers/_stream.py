"""POST a request upstream: a streaming one, whose server-sent events become chunk
batches (`sse_chunks`), or one answered with a whole JSON body (`post_json`, for
embeddings). Both map statuses and transport failures the same way."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any, ClassVar, Generic, TypeVar

import httpx
import msgspec

from providers._client import Upstream
from providers._http import Classifier, error_for_status, transport_errors
from providers._quota import quota_of
from providers._sse import SSEParser
from router.errors import MalformedResponse, ProviderError, StreamInterrupted
from router.events import Chunk, Quota
from router.provider import AttemptOptions

__all__ = ["Reader", "post_json", "sse_chunks"]

W = TypeVar("W")


class Reader(Generic[W]):
    """The state of one streamed answer in one wire format; a subclass per format.

    The loop decodes every event's data with the class's ``decoder`` into the wire
    Struct ``W`` before `feed` sees it: data that does not decode is the upstream's
    `MalformedResponse`, the same for every format. Data equal to ``end_marker`` is no
    event but the stream's end marker (OpenAI's ``[DONE]``) and marks it ``finished``.
    A body that ends cleanly while not ``finished`` (the reader sets it once the events
    made a whole answer) is a `StreamInterrupted` saying it ended without ``ending``.
    """

    decoder: ClassVar[msgspec.json.Decoder[Any]]
    end_marker: ClassVar[bytes | None] = None
    ending: ClassVar[str]
    """What a complete stream ends with, for the error when it does not."""

    __slots__ = ("finished", "provider")

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.finished = False

    def feed(self, event: bytes | None, wire: W, out: list[Chunk]) -> None:
        """Append the chunks one decoded event carries; raise a `ProviderError` for a
        failure it reports."""
        raise NotImplementedError


def _malformed(provider: str, payload: bytes, exc: Exception) -> MalformedResponse:
    return MalformedResponse(
        f"{provider} sent a malformed stream event: {exc}: {payload[:200]!r}", provider=provider
    )


async def sse_chunks(
    client: Upstream,
    provider: str,
    url: httpx.URL,
    *,
    headers: Mapping[str, str],
    body: bytes,
    options: AttemptOptions,
    classify: Classifier,
    reader: Reader[Any],
    retry_hint: Callable[[bytes], float | None] | None = None,
) -> AsyncGenerator[list[Chunk], None]:
    """One batch per network read that produced any chunk.

    A non-2xx status raises its `error_for_status` error; transport failures raise
    `ConnectFailed`, `UpstreamTimeout` or (once headers arrived) `StreamInterrupted`, as
    does a body that ends in the middle of an event or before ``reader`` is finished.
    Close the generator (``aclosing``) to release the connection early. ``retry_hint``
    reads a retry delay from an error body, for upstreams that send no ``Retry-After``
    header.
    """
    timeout = httpx.Timeout(options.connect_timeout_s, read=None)
    headers_seen = [False]
    with transport_errors(provider, headers_seen):
        async with client.stream(
            "POST", url, content=body, headers=headers, timeout=timeout
        ) as response:
            await _raise_for_status(response, provider, classify, retry_hint)
            headers_seen[0] = True
            quota = quota_of(response.headers)
            if quota is not None:
                yield [quota]
            parser = SSEParser()
            # Looked up once per stream, not per read: this loop is the hot path.
            decode, feed, marker = reader.decoder.decode, reader.feed, reader.end_marker
            async for data in response.aiter_raw():
                batch: list[Chunk] = []
                error: ProviderError | None = None
                try:
                    for event, payload in parser.feed(data):
                        if payload == marker:
                            reader.finished = True
                            continue
                        try:
                            wire = decode(payload)
                        except msgspec.DecodeError as exc:  # a ValidationError is one too
                            raise _malformed(provider, payload, exc) from exc
                        feed(event, wire, batch)
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
            if not reader.finished:
                raise StreamInterrupted(
                    f"{provider} stream ended without {reader.ending}", provider=provider
                )


async def post_json(
    client: Upstream,
    provider: str,
    url: httpx.URL,
    *,
    headers: Mapping[str, str],
    body: bytes,
    options: AttemptOptions,
    classify: Classifier,
    retry_hint: Callable[[bytes], float | None] | None = None,
) -> tuple[Quota | None, bytes]:
    """What the upstream says of its rate limits, and its whole answer's body. Errors
    as `sse_chunks`'; the engine's first-token timeout bounds the wait for the answer."""
    timeout = httpx.Timeout(options.connect_timeout_s, read=None)
    headers_seen = [False]
    with transport_errors(provider, headers_seen):
        async with client.stream(
            "POST", url, content=body, headers=headers, timeout=timeout
        ) as response:
            await _raise_for_status(response, provider, classify, retry_hint)
            headers_seen[0] = True
            return quota_of(response.headers), await response.aread()
    raise AssertionError("unreachable")  # transport_errors raises or the body returned


async def _raise_for_status(
    response: httpx.Response,
    provider: str,
    classify: Classifier,
    retry_hint: Callable[[bytes], float | None] | None,
) -> None:
    if response.status_code < 400:
        return
    error_body = await response.aread()
    failure = error_for_status(
        provider, response.status_code, response.headers, error_body, classify
    )
    if failure.retry_after is None and retry_hint is not None:
        failure.retry_after = retry_hint(error_body)
    raise failure
