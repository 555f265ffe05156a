"""What every HTTP adapter is, so that a new one is a config Struct, a translator and a
reader.

A kind subclasses `HTTPConfig` (its tag and its defaults, plus its own keys) and
`HTTPAdapter`, whose `translate` turns an OpenAI-shaped request into the upstream's URL,
body and `Reader`. The base does the rest the same way for every kind: the request
headers and key, the POST and the SSE loop (`_stream.sse_chunks`), status and transport
errors, and the `Provider` protocol's capability checks. A kind that can embed sets
``supports_embeddings`` and gives `embed_calls` (the requests for a batch of inputs)
and `embed_answer` (the vectors and usage of one answer); the base POSTs them
(`_stream.post_json`) and yields the vectors as one `Embeddings` chunk.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, Mapping
from typing import Any, ClassVar, Generic, NamedTuple, TypeVar

import httpx
import msgspec

from providers._client import Upstream
from providers._stream import Reader, post_json, sse_chunks
from providers.pricing import Price
from router.errors import InvalidRequest, MalformedResponse, ProviderError
from router.events import Chunk, Embeddings, Finish, Usage
from router.policy import Limit
from router.provider import AttemptOptions, EmbedRequest, ProviderRequest

__all__ = ["Call", "HTTPAdapter", "HTTPConfig", "request_headers"]


class _LastFields(
    msgspec.Struct, tag_field="kind", forbid_unknown_fields=True, frozen=True, kw_only=True
):
    # msgspec puts keyword-only fields after all others, so these stay after each kind's
    # own keys: where the dashboard's forms, `config export` and the stored JSON have
    # always listed them (they follow the Struct's field order).
    headers: dict[str, str] = {}
    """Sent with every request, after the kind's own headers (which they may replace)."""
    prices: dict[str, Price] = {}
    """USD per million tokens per model (``"*"``: any other), see `providers.pricing`."""
    limits: dict[str, Limit] = {}
    """Rate limits per model (``"*"``: any other), see `router.limits`."""


class HTTPConfig(_LastFields, frozen=True):
    """The keys every HTTP kind's ``[providers.NAME]`` table has. A kind subclasses it
    with ``tag="<kind>"``, its own defaults and its own keys."""

    base_url: str
    api_key_env: str | None = None
    """The environment variable holding the key; unset or empty: no key is sent."""
    supports_prefill: bool = False


def request_headers(
    config: HTTPConfig,
    env: Mapping[str, str] | None,
    key_header: str,
    key_prefix: str = "",
    own: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The headers of every request to one provider: JSON in, uncompressed SSE out (the
    parser reads raw bytes), the kind's ``own`` headers, the configured ``headers``, and
    the key from ``env`` (default `os.environ`) as ``key_header``, if it is set."""
    headers = {
        "content-type": "application/json",
        "accept": "text/event-stream",
        "accept-encoding": "identity",
        **(own or {}),
        **config.headers,
    }
    key = (env if env is not None else os.environ).get(config.api_key_env or "", "")
    if key:
        headers[key_header] = key_prefix + key
    return headers


class Call(NamedTuple):
    """One translated request: where it goes, its body, and the reader of its answer."""

    url: httpx.URL
    body: bytes
    reader: Reader[Any]


C = TypeVar("C", bound=HTTPConfig)


class HTTPAdapter(Generic[C]):
    """A `router.provider.Provider` over an upstream that streams server-sent events."""

    kind: ClassVar[str]
    key_header: ClassVar[str]
    """The header that carries the key."""
    key_prefix: ClassVar[str] = ""
    """What precedes the key in that header (``"Bearer "``)."""
    supports_embeddings: ClassVar[bool] = False

    def __init__(
        self, name: str, config: C, client: Upstream, env: Mapping[str, str] | None = None
    ) -> None:
        self.name = name
        self.config = config
        self.supports_prefill = config.supports_prefill
        self._client = client
        self._headers = request_headers(
            config, env, self.key_header, self.key_prefix, self.own_headers()
        )
        self._json_headers = {**self._headers, "accept": "application/json"}

    def own_headers(self) -> Mapping[str, str]:
        """Headers this kind sends with every request (before the configured ones)."""
        return {}

    def translate(self, model: str, request: ProviderRequest) -> Call:
        """The upstream request for ``request`` to ``model``; raises `InvalidRequest` for
        one this upstream cannot express, before anything is sent."""
        raise NotImplementedError

    def classify(self, status: int, err: dict[str, object]) -> type[ProviderError] | None:
        """A more specific type for an error response's error object than its status
        gives (`_http.error_for_status`), or None."""
        return None

    def retry_hint(self, body: bytes) -> float | None:
        """A retry delay read from an error body, for upstreams that send no
        ``Retry-After`` header."""
        return None

    def prefill_ok(self, model: str) -> bool:
        return self.supports_prefill

    def stream(
        self, model: str, request: ProviderRequest, options: AttemptOptions
    ) -> AsyncGenerator[list[Chunk], None]:
        url, body, reader = self.translate(model, request)
        return sse_chunks(
            self._client,
            self.name,
            url,
            headers=self._headers,
            body=body,
            options=options,
            classify=self.classify,
            reader=reader,
            retry_hint=self.retry_hint,
        )

    def embed_calls(self, model: str, request: EmbedRequest) -> list[tuple[httpx.URL, bytes]]:
        """The upstream requests (URL, body) that embed ``request``'s inputs, in order;
        raises `InvalidRequest` for inputs this upstream cannot take."""
        raise InvalidRequest(f"{self.name} ({self.kind}) cannot embed", provider=self.name)

    def embed_answer(self, body: bytes) -> tuple[list[list[float]], Usage | None]:
        """The vectors one answer carries, in its inputs' order, and its usage if it
        says; raises `msgspec.DecodeError` (or `ValueError`) for a body that is not the
        expected shape."""
        raise NotImplementedError

    def embed(
        self, model: str, request: EmbedRequest, options: AttemptOptions
    ) -> AsyncGenerator[list[Chunk], None]:
        return self._embed(model, request, options)

    async def _embed(
        self, model: str, request: EmbedRequest, options: AttemptOptions
    ) -> AsyncGenerator[list[Chunk], None]:
        vectors: list[list[float]] = []
        usage: Usage | None = None
        for url, body in self.embed_calls(model, request):
            quota, answer = await post_json(
                self._client,
                self.name,
                url,
                headers=self._json_headers,
                body=body,
                options=options,
                classify=self.classify,
                retry_hint=self.retry_hint,
            )
            if quota is not None:
                yield [quota]
            try:
                got, used = self.embed_answer(answer)
            except (msgspec.DecodeError, ValueError) as exc:
                raise MalformedResponse(
                    f"{self.name} sent a malformed embeddings answer: {exc}: {answer[:200]!r}",
                    provider=self.name,
                ) from exc
            vectors += got
            if used is not None:
                usage = used if usage is None else usage + used
        if len(vectors) != len(request.inputs):
            raise MalformedResponse(
                f"{self.name} sent {len(vectors)} embeddings for {len(request.inputs)} inputs",
                provider=self.name,
            )
        out: list[Chunk] = [Embeddings(vectors)]
        if usage is not None:
            out.append(usage)
        yield [*out, Finish("stop")]
