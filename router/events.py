"""The typed events of one routed request.

The engine turns (routing table, request) into an async stream of *batches* of these
events: everything that one upstream read produced travels together, so consumers can
send it as one write. Providers yield the same content types (`TextDelta`,
`ToolCallDelta`, `Usage`, `Finish`), which the engine forwards without copying.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = [
    "AttemptFailed",
    "AttemptRecord",
    "AttemptStarted",
    "Chunk",
    "Done",
    "Embeddings",
    "Event",
    "Failed",
    "Finish",
    "HedgeRecord",
    "Hedged",
    "ReasoningDelta",
    "RefusalDelta",
    "RequestRecord",
    "Reset",
    "StreamSwitch",
    "TextDelta",
    "ToolCallDelta",
    "Usage",
]

Mode = Literal["restart", "prefill", "user_turn", "terminate"]
Shape = Literal["original", "prefill", "user_turn"]


class TextDelta(msgspec.Struct, tag="text", gc=False):
    text: str


class ReasoningDelta(msgspec.Struct, tag="reasoning", gc=False):
    """A piece of the model's reasoning (DeepSeek's ``reasoning_content``, Anthropic's
    ``thinking``). Shown to the client as reasoning, never as answer text: a fallback
    does not continue it, and a continuation is never spliced onto it.

    ``signature`` is the upstream's proof of a thinking block (Anthropic), when it sent one.
    """

    text: str
    signature: str | None = None


class RefusalDelta(msgspec.Struct, tag="refusal", gc=False):
    """A piece of the model's refusal to answer (OpenAI's ``refusal``)."""

    text: str


class ToolCallDelta(msgspec.Struct, tag="tool_call", gc=False):
    """A piece of a streamed tool call, in OpenAI's incremental form.

    Providers yield the pieces as they arrive; the engine passes a tool call on only
    once the attempt that made it has ended cleanly, as one delta with its ``id``,
    ``name`` and complete ``arguments``, so that a client never holds half a call.
    """

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


class Usage(msgspec.Struct, tag="usage", gc=False):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
            self.cached_tokens + other.cached_tokens,
        )


class Finish(msgspec.Struct, tag="finish", gc=False):
    """The upstream said the answer is complete (OpenAI ``finish_reason``)."""

    reason: str


class Embeddings(msgspec.Struct, tag="embeddings", gc=False):
    """The answer to an embeddings request: one vector per input, in the inputs' order.
    A provider yields it whole; the engine passes it on as the attempt's content."""

    vectors: list[list[float]]


class Quota(msgspec.Struct, tag="quota", gc=False):
    """What the upstream says is left of its rate limits (OpenAI's
    ``x-ratelimit-remaining-*``, Anthropic's ``anthropic-ratelimit-*``): a provider
    yields it first, when the response's headers carry it."""

    requests_left: int | None = None
    tokens_left: int | None = None
    reset_s: float | None = None
    """Seconds until the exhausted one of them (or the later) is replenished."""


Chunk = (
    TextDelta | ReasoningDelta | RefusalDelta | ToolCallDelta | Usage | Finish | Quota | Embeddings
)
"""What a provider yields."""


class AttemptRecord(msgspec.Struct, kw_only=True):
    """One upstream attempt, as it happened."""

    attempt: int
    target: str
    shape: Shape = "original"
    outcome: Literal["ok", "failed", "cancelled", "running"] = "running"
    """``cancelled``: a hedged attempt that lost its race (``error`` says to whom)."""
    error_type: str | None = None
    error: str | None = None
    status: int | None = None
    start_ms: float = 0.0
    """When the attempt started, in ms since the request started."""
    ttft_ms: float | None = None
    duration_ms: float | None = None
    chars: int = 0
    usage: Usage | None = None


class SwitchRecord(msgspec.Struct, kw_only=True):
    from_target: str
    to_target: str
    mode: Mode
    reason: str
    chars_delivered: int
    trimmed_chars: int = 0
    reset: bool = False


class PoolChoice(msgspec.Struct, kw_only=True, omit_defaults=True):
    """How one pool of the route ranked its members for this request: why its targets
    were tried in the order they were."""

    entry: int
    """The pool's place in the route's ``targets``."""
    balance: str
    order: list[str]
    """Its members, first choice first (those whose breaker is open included)."""
    affinity: Literal["hit", "moved"] | None = None
    """With session affinity: ``hit`` when the session's own member was usable,
    ``moved`` when it was not and the session went to its next one, or when the session
    stays on the member it moved to (``affinity_ttl_s``)."""


class HedgeRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A hedge: attempt ``hedge`` (on ``target``) started beside attempt ``attempt``,
    which had sent no content ``after_s`` after it started."""

    attempt: int
    hedge: int
    target: str
    after_s: float
    won: bool | None = None
    """True: the hedge sent content first; False: the first attempt did; None: neither."""


class RequestRecord(msgspec.Struct, kw_only=True):
    """Everything that happened to one request; the final event carries it."""

    request_id: str
    route: str
    attempts: list[AttemptRecord] = msgspec.field(default_factory=list)
    switches: list[SwitchRecord] = msgspec.field(default_factory=list)
    skipped: list[str] = msgspec.field(default_factory=list)
    """Targets passed over because their circuit breaker was open."""
    at_limit: list[str] = msgspec.field(default_factory=list)
    """Targets passed over because they reached their rate limit (``limits``)."""
    pools: list[PoolChoice] = msgspec.field(default_factory=list)
    """The order each pool of more than one member chose (`router.balance`)."""
    hedges: list[HedgeRecord] = msgspec.field(default_factory=list)
    client: str | None = None
    """Who asked, as the caller names it (the gateway: an API key's id); not used here."""
    door: str | None = None
    """The endpoint the request came through (``chat.completions``, ``messages``,
    ``responses``), as the caller names it; None for the library."""


class AttemptStarted(msgspec.Struct, tag="attempt_started", gc=False):
    attempt: int
    target: str
    shape: Shape


class Hedged(msgspec.Struct, tag="hedged", gc=False):
    """Attempt ``attempt`` started on ``target`` beside the running one, which had sent
    no content after ``after_s``. Its `AttemptStarted` follows only if it sends content
    first (it then answers); the loser is cancelled."""

    attempt: int
    target: str
    after_s: float


class AttemptFailed(msgspec.Struct, tag="attempt_failed", gc=False):
    attempt: int
    target: str
    reason: str
    message: str
    status: int | None
    chars_delivered: int
    retry_in_s: float | None


class StreamSwitch(msgspec.Struct, tag="stream_switch", gc=False):
    """The answer continues on another target after content was delivered.

    Emitted just before the continuation's first content, so ``trimmed_chars`` (text the
    continuation repeated and llmgate dropped) is known.
    """

    switch: SwitchRecord


class Reset(msgspec.Struct, tag="reset", gc=False):
    """``restart`` mode after content was sent: the client must discard what it showed.

    Followed by the new answer from its beginning.
    """

    switch: SwitchRecord


class Done(msgspec.Struct, tag="done", gc=False):
    model: str
    finish_reason: str
    usage: Usage
    record: RequestRecord


class Failed(msgspec.Struct, tag="failed", gc=False):
    """The request could not be completed. ``partial`` says content was delivered.

    ``error`` is what the client is told (see `router.decide.client_error`); llmgate
    already made every attempt its policy allows, so a client should not retry.
    ``retry_after`` is the deciding failure's Retry-After, in seconds, if it had one.
    """

    error: BaseException
    partial: bool
    usage: Usage
    record: RequestRecord
    errors: list[tuple[str, BaseException]]
    """Every failure as ``(target, error)``, in the order tried."""
    retry_after: float | None = None


Event = (
    TextDelta
    | ReasoningDelta
    | RefusalDelta
    | ToolCallDelta
    | Embeddings
    | AttemptStarted
    | AttemptFailed
    | Hedged
    | StreamSwitch
    | Reset
    | Done
    | Failed
)
