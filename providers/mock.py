"""A built-in upstream for demos and tests: deterministic text, latency, and failures.

It needs no network and no key. Its answer is a fixed function of the conversation, so
a continuation after a failure can be checked to the character: asked to continue (an
assistant prefill, or a user turn after a partial assistant message) it picks up where
the partial text ends, and in the user-turn shape it first repeats the last few words,
as real models often do, which llmgate trims.

It embeds too: the vector of an input is a fixed function of it (a unit vector drawn
from its hash), so the same input always gets the same vector, different inputs
different ones, and a shorter vector (``dimensions``) is the longer one's start,
renormalized, as OpenAI's ``text-embedding-3`` models shorten theirs.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import struct
from collections.abc import AsyncGenerator
from typing import Annotated, Any, ClassVar

import httpx
import msgspec
from msgspec import Meta

from providers._http import error_for_status
from providers.pricing import Price
from router.errors import StreamInterrupted
from router.events import Chunk, Embeddings, Finish, TextDelta, Usage
from router.policy import Limit
from router.provider import AttemptOptions, EmbedRequest, ProviderRequest

__all__ = ["MockConfig", "MockProvider"]

_WORDS = (
    "llmgate routes every request through a declarative policy and keeps the answer "
    "flowing when a provider stumbles halfway through a stream the next target picks "
    "up exactly where the last one stopped and the client sees one coherent reply with "
    "every attempt fallback and switch recorded for the dashboard"
).split()

NonNegative = Annotated[int, Meta(ge=0)]


class MockConfig(
    msgspec.Struct, tag_field="kind", tag="mock", forbid_unknown_fields=True, frozen=True
):
    """``[providers.NAME]`` with ``kind = "mock"``. Failure injection is per provider."""

    tokens: Annotated[int, Meta(ge=1, le=100_000)] = 40
    """Words in an answer (``max_tokens`` in the request lowers it)."""
    text: str | None = None
    """A fixed answer instead of the generated one."""
    token_latency_ms: Annotated[float, Meta(ge=0)] = 0.0
    first_token_latency_ms: Annotated[float, Meta(ge=0)] = 0.0
    fail_status: Annotated[int, Meta(ge=400, le=599)] | None = None
    """Fail before the first token with this HTTP status..."""
    fail_times: NonNegative | None = None
    """...for this many requests, then recover (unset: always)."""
    retry_after_s: Annotated[float, Meta(ge=0)] | None = None
    cut_after: NonNegative | None = None
    """Cut the stream after this many words."""
    stall_after: NonNegative | None = None
    """Go silent (until the gateway gives up) after this many words."""
    supports_prefill: bool = True
    overlap_words: Annotated[int, Meta(ge=0, le=20)] = 3
    """Words a user-turn continuation repeats before going on."""
    embedding_dims: Annotated[int, Meta(ge=1, le=65_536)] = 8
    """The length of an embedding (a request's ``dimensions`` overrides it)."""
    prices: dict[str, Price] = {}
    """USD per million tokens per model (``"*"``: any other), see `providers.pricing`."""
    limits: dict[str, Limit] = {}
    """Rate limits per model (``"*"``: any other), see `router.limits`."""


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def vector(value: str | list[int], dims: int) -> list[float]:
    """The mock's embedding of a text or token array: a unit vector of float32 values
    (as real models send), drawn from the input's hash."""
    seed = value.encode() if isinstance(value, str) else msgspec.json.encode(value)
    raw = b"".join(
        hashlib.sha256(seed + i.to_bytes(4, "big")).digest() for i in range((dims + 7) // 8)
    )
    draws = [n / 2**31 - 1.0 for n in struct.unpack(f">{dims}I", raw[: dims * 4])]
    norm = math.sqrt(sum(x * x for x in draws)) or 1.0
    unit = [x / norm for x in draws]
    return list(struct.unpack(f"<{dims}f", struct.pack(f"<{dims}f", *unit)))


class MockProvider:
    kind: ClassVar[str] = "mock"
    supports_embeddings: ClassVar[bool] = True

    def __init__(self, name: str, config: MockConfig) -> None:
        self.name = name
        self.config = config
        self.supports_prefill = config.supports_prefill
        self.requests = 0

    def prefill_ok(self, model: str) -> bool:
        return self.supports_prefill

    def answer(self, messages: list[dict[str, Any]], max_words: int | None = None) -> str:
        """The full answer this mock gives to a conversation's original question."""
        if self.config.text is not None:
            return self.config.text
        prompt = next((_text(m) for m in reversed(messages) if m.get("role") == "user"), "")
        start = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:4], "big") % len(_WORDS)
        n = min(self.config.tokens, max_words or self.config.tokens)
        return " ".join(_WORDS[(start + i) % len(_WORDS)] for i in range(n)) + "."

    def _split(self, request: ProviderRequest) -> tuple[list[dict[str, Any]], str, bool]:
        """(original conversation, partial text to continue from, user-turn shape)."""
        msgs = request.messages
        if request.prefill and msgs and msgs[-1].get("role") == "assistant":
            return msgs[:-1], _text(msgs[-1]), False
        if (
            len(msgs) >= 2
            and msgs[-2].get("role") == "assistant"
            and msgs[-1].get("role") == "user"
        ):
            return msgs[:-2], _text(msgs[-2]), True
        return msgs, "", False

    async def _start(self) -> None:
        """A request arrives: wait its first-token latency, then fail as injected."""
        cfg = self.config
        self.requests += 1
        if cfg.first_token_latency_ms:
            await asyncio.sleep(cfg.first_token_latency_ms / 1000)
        if cfg.fail_status is not None and (
            cfg.fail_times is None or self.requests <= cfg.fail_times
        ):
            headers = (
                {"retry-after": str(cfg.retry_after_s)} if cfg.retry_after_s is not None else {}
            )
            body = msgspec.json.encode({"error": {"message": "injected failure", "type": "mock"}})
            raise error_for_status(self.name, cfg.fail_status, httpx.Headers(headers), body)

    async def embed(
        self, model: str, request: EmbedRequest, options: AttemptOptions
    ) -> AsyncGenerator[list[Chunk], None]:
        await self._start()
        dims = request.dimensions or self.config.embedding_dims
        vectors = [vector(value, dims) for value in request.inputs]
        tokens = sum(
            len(value.split()) if isinstance(value, str) else len(value) for value in request.inputs
        )
        yield [Embeddings(vectors), Usage(tokens, 0, tokens), Finish("stop")]

    async def stream(
        self, model: str, request: ProviderRequest, options: AttemptOptions
    ) -> AsyncGenerator[list[Chunk], None]:
        cfg = self.config
        await self._start()
        original, partial, user_turn = self._split(request)
        max_tokens = request.params.get("max_tokens") or request.params.get("max_completion_tokens")
        full = self.answer(original, max_tokens if isinstance(max_tokens, int) else None)
        text = full
        if partial and full.startswith(partial):
            text = full[len(partial) :]
            if user_turn and cfg.overlap_words:
                # The last words with the spacing that follows them, so a partial
                # ending in a space still repeats ``overlap_words`` whole words.
                head = partial.rstrip(" ")
                repeated = " ".join(head.split(" ")[-cfg.overlap_words :])
                text = repeated + partial[len(head) :] + text
        words = [w + " " for w in text.split(" ")]
        words[-1] = words[-1][:-1]
        delay = cfg.token_latency_ms / 1000
        for i, word in enumerate(words):
            if cfg.cut_after is not None and i >= cfg.cut_after:
                raise StreamInterrupted(
                    f"{self.name}: injected cut after {i} words", provider=self.name
                )
            if cfg.stall_after is not None and i >= cfg.stall_after:
                await asyncio.Event().wait()  # silent until the engine's stall timeout
            if delay:
                await asyncio.sleep(delay)
            yield [TextDelta(word)]
        prompt_tokens = sum(len(_text(m).split()) for m in request.messages)
        yield [Finish("stop"), Usage(prompt_tokens, len(words), prompt_tokens + len(words))]
