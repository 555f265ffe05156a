"""A built-in upstream for demos and tests: deterministic text, latency, and failures.

It needs no network and no key. Its answer is a fixed function of the conversation, so
a continuation after a failure can be checked to the character: asked to continue (an
assistant prefill, or a user turn after a partial assistant message) it picks up where
the partial text ends, and in the user-turn shape it first repeats the last few words,
as real models often do, which llmgate trims.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncGenerator
from typing import Annotated, Any, ClassVar

import httpx
import msgspec
from msgspec import Meta

from providers._http import error_for_status
from providers.pricing import Price
from router.errors import StreamInterrupted
from router.events import Chunk, Finish, TextDelta, Usage
from router.policy import Limit
from router.provider import AttemptOptions, ProviderRequest

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


class MockProvider:
    kind: ClassVar[str] = "mock"

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

    async def stream(
        self, model: str, request: ProviderRequest, options: AttemptOptions
    ) -> AsyncGenerator[list[Chunk], None]:
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
