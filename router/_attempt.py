"""One upstream attempt: its reads under the timeouts, and what of them reaches the client.

- Text streams as it arrives, except where a continuation is being joined onto text the
  client already has (`router.splice`).
- Reasoning and refusals pass through as they arrive; they never join a splice.
- Tool calls are all-or-nothing: their pieces are held until the attempt ends cleanly
  (the upstream's finish, or the end of its stream), then passed on whole, one delta per
  call. A cut in the middle of a call leaves the client nothing to undo, and no client
  ever merges two attempts' calls.
- Embeddings (the vectors of an embeddings request) arrive whole and pass through like
  reasoning: their arrival is the attempt's first token.
- A failure after the upstream said it finished (a cut before its final ``[DONE]``, a
  stall after the finish) loses nothing: the attempt counts as complete.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable

from router.breaker import CircuitBreaker
from router.errors import (
    AnswerDiverged,
    ProviderError,
    RequestTimeout,
    StreamInterrupted,
    UpstreamTimeout,
)
from router.events import (
    AttemptRecord,
    AttemptStarted,
    Embeddings,
    Event,
    Finish,
    Quota,
    ReasoningDelta,
    RefusalDelta,
    RequestRecord,
    Reset,
    Shape,
    StreamSwitch,
    SwitchRecord,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from router.limits import Meter
from router.policy import RoutePolicy, Target
from router.provider import AttemptOptions, EmbedRequest, Provider, ProviderRequest
from router.splice import OverlapTrimmer, RestartMatcher
from router.watchdog import Watchdog

__all__ = ["Run", "Splice", "Try", "run_attempt"]

Splice = OverlapTrimmer | RestartMatcher
_PASS = (ReasoningDelta, RefusalDelta, Embeddings)
_CLAIMS = frozenset((TextDelta, ToolCallDelta, ReasoningDelta, RefusalDelta, Embeddings, Finish))
"""What a hedged attempt may show only once it won its race: content, or its end."""


class Run:
    """Mutable state of one request, shared by its attempts."""

    __slots__ = (
        "accept_reset",
        "clock",
        "current",
        "deadline",
        "delivered",
        "delivered_len",
        "errors",
        "record",
        "switch_reason",
        "t0",
        "usage",
    )

    def __init__(
        self,
        record: RequestRecord,
        clock: Callable[[], float],
        deadline: float,
        accept_reset: bool,
    ) -> None:
        self.record = record
        self.clock = clock
        self.t0 = clock()
        self.deadline = deadline
        self.accept_reset = accept_reset
        self.delivered: list[str] = []
        self.delivered_len = 0
        self.usage = Usage()
        self.errors: list[tuple[str, ProviderError]] = []
        self.current: str | None = None
        self.switch_reason = ""

    @property
    def mid_stream(self) -> bool:
        """The client already shows answer text."""
        return self.delivered_len > 0


class Try:
    """One attempt: what it asks, and how it ended."""

    __slots__ = ("cancelled", "error", "finish", "produced", "rec", "shape", "target")

    def __init__(self, attempt: int, target: Target, shape: Shape) -> None:
        self.target = target
        self.shape = shape
        self.rec = AttemptRecord(attempt=attempt, target=target.name, shape=shape)
        self.error: ProviderError | None = None
        """Why it failed; None when it succeeded (or was abandoned)."""
        self.finish: str | None = None
        self.produced = False
        """It had started answering (text)."""
        self.cancelled: str | None = None
        """Why it was cancelled (a hedge that lost its race), if it was."""


class _Calls:
    """One attempt's tool-call pieces, by the upstream's index, in order of appearance."""

    __slots__ = ("_calls",)

    def __init__(self) -> None:
        self._calls: dict[int, tuple[list[str | None], list[str]]] = {}

    def add(self, delta: ToolCallDelta) -> None:
        call = self._calls.get(delta.index)
        if call is None:
            self._calls[delta.index] = ([delta.id, delta.name], [delta.arguments])
            return
        head, arguments = call
        head[0] = head[0] or delta.id
        if delta.name:  # a name streamed in pieces is joined, as OpenAI's clients do
            head[1] = (head[1] or "") + delta.name
        arguments.append(delta.arguments)

    def flush(self) -> list[Event]:
        """Every call, whole, numbered from 0 in the order they began."""
        out: list[Event] = [
            ToolCallDelta(i, head[0], head[1], "".join(arguments))
            for i, (head, arguments) in enumerate(self._calls.values())
        ]
        self._calls.clear()
        return out


async def run_attempt(
    st: Run,
    tr: Try,
    provider: Provider,
    req: ProviderRequest | EmbedRequest,
    splice: Splice | None,
    policy: RoutePolicy,
    breaker: CircuitBreaker,
    meter: Meter,
    count: Callable[[], Callable[[], None]] | None = None,
    gate: Callable[[], Awaitable[None]] | None = None,
    held: bool = False,
) -> AsyncGenerator[list[Event], None]:
    """The events of one attempt. Sets ``tr.error`` when it fails (None: it succeeded).
    What the upstream says of its rate limits goes to the target's ``meter``.

    ``count`` is called as the attempt calls its upstream, and what it returns once the
    attempt has ended (however it ends): the engine's count of attempts in flight.

    ``gate``, for a hedged attempt (`router.hedge`), is awaited before the attempt's
    first content is taken in: it returns when this attempt won its race, and never
    when it lost (the attempt is then cancelled). A ``held`` attempt (the hedge itself)
    announces its `AttemptStarted` only once it has won."""
    target, shape, rec = tr.target, tr.shape, tr.rec
    started_event = AttemptStarted(rec.attempt, target.name, shape)
    clock, deadline = st.clock, st.deadline
    alive = False  # the upstream sent a token of any kind
    finished = False  # the upstream said its answer is complete
    calls = _Calls()
    options = AttemptOptions(connect_timeout_s=policy.connect_timeout_s)
    if isinstance(req, EmbedRequest):
        chunks = provider.embed(target.model, req, options)
    else:
        chunks = provider.stream(target.model, req, options)
    watch = Watchdog(asyncio.get_running_loop(), clock)
    started = clock()
    ended = count() if count is not None else None
    try:
        if not held:  # a held attempt is in the record from its announcement on
            st.record.attempts.append(rec)
            yield [started_event]
            started = clock()
        rec.start_ms = (started - st.t0) * 1000
        when = min(started + policy.first_token_timeout_s, deadline)
        while True:
            watch.wait(when)
            try:
                batch = await anext(chunks)
            except StopAsyncIteration:
                break
            except asyncio.CancelledError:
                if watch.expired():
                    raise TimeoutError from None
                raise
            finally:
                watch.waiting = False
            out: list[Event] = []
            if gate is not None and any(type(c) in _CLAIMS for c in batch):
                await gate()
                gate = None
                if held:
                    out.append(started_event)
            for chunk in batch:
                kind = type(chunk)
                if kind is TextDelta:
                    if not alive:
                        alive = True
                        rec.ttft_ms = (clock() - started) * 1000
                    tr.produced = True
                    text: str = chunk.text  # type: ignore[union-attr]
                    rec.chars += len(text)
                    if splice is not None:
                        emit = splice.feed(text)
                        if emit is None:
                            continue  # still deciding how the continuation joins
                        out += _join(st, splice, emit, target, shape)
                        splice = None
                        continue
                    st.current = target.name
                    st.delivered.append(text)
                    st.delivered_len += len(text)
                    out.append(chunk)  # type: ignore[arg-type]
                elif kind is ToolCallDelta:
                    alive = _first_token(alive, rec, clock, started)
                    calls.add(chunk)  # type: ignore[arg-type]
                elif kind in _PASS:
                    alive = _first_token(alive, rec, clock, started)
                    out.append(chunk)  # type: ignore[arg-type]
                elif kind is Usage:
                    rec.usage = chunk  # type: ignore[assignment]
                elif kind is Quota:
                    meter.heard(clock(), chunk)  # type: ignore[arg-type]
                elif kind is Finish:
                    finished = True
                    tr.finish = chunk.reason  # type: ignore[union-attr]
                    if splice is not None:
                        out += _join(st, splice, splice.finish(), target, shape)
                        splice = None
                    out += calls.flush()
            if out:
                yield out
            if alive:
                when = min(clock() + policy.stall_timeout_s, deadline)
        if not finished:  # the stream ended cleanly without a finish of its own
            end: list[Event] = []
            if splice is not None:
                end += _join(st, splice, splice.finish(), target, shape)
            end += calls.flush()
            if end:
                yield end
        rec.outcome = "ok"
    except TimeoutError:
        if finished:
            rec.outcome = "ok"
        else:
            tr.error = _timeout(target, alive, when >= deadline)
    except StreamInterrupted as exc:
        if finished:
            rec.outcome = "ok"
        else:
            tr.error = exc
    except ProviderError as exc:
        tr.error = exc
    finally:
        watch.close()
        await chunks.aclose()
        _settle(st, tr, breaker, clock() - started)
        if ended is not None:
            ended()


def _first_token(alive: bool, rec: AttemptRecord, clock: Callable[[], float], t: float) -> bool:
    if not alive:
        rec.ttft_ms = (clock() - t) * 1000
    return True


def _timeout(target: Target, alive: bool, total: bool) -> UpstreamTimeout:
    if total:
        return RequestTimeout(
            f"the request's total time ran out while waiting for {target.name}",
            provider=target.provider,
        )
    phase = "stall" if alive else "first_token"
    return UpstreamTimeout(
        f"no {'data' if alive else 'first token'} from {target.name} within the {phase} timeout",
        phase=phase,
        provider=target.provider,
    )


def _settle(st: Run, tr: Try, breaker: CircuitBreaker, seconds: float) -> None:
    """Record how the attempt ended, in its record and in the target's breaker."""
    rec = tr.rec
    rec.duration_ms = seconds * 1000
    if rec.usage is not None:
        st.usage = st.usage + rec.usage
    error = tr.error
    if error is not None:
        rec.outcome = "failed"
        rec.error_type = error.reason
        rec.error = str(error)
        rec.status = error.upstream_status
        if error.target_fault:
            breaker.record_failure(st.clock())
        else:
            breaker.release()
    elif rec.outcome == "ok":
        breaker.record_success()
    else:  # abandoned by the consumer: says nothing about the target's health
        breaker.release()


def _join(st: Run, splice: Splice, emit: str, target: Target, shape: Shape) -> list[Event]:
    """The events that join a continuation (``emit``, its first text) onto what the client
    has. A ``restart`` that diverged resets a client that accepts resets; for any other
    client the attempt is abandoned (`AnswerDiverged`) and the answer continues as
    ``user_turn``."""
    if splice.reset and not st.accept_reset:
        raise AnswerDiverged(
            f"the new answer from {target.name} does not repeat the text already shown",
            provider=target.provider,
        )
    switch = SwitchRecord(
        from_target=st.current or target.name,
        to_target=target.name,
        mode="restart" if isinstance(splice, RestartMatcher) else shape,  # type: ignore[arg-type]
        reason=st.switch_reason,
        chars_delivered=st.delivered_len,
        trimmed_chars=splice.trimmed,
        reset=splice.reset,
    )
    st.record.switches.append(switch)
    out: list[Event]
    if splice.reset:
        st.delivered.clear()
        st.delivered_len = 0
        out = [Reset(switch)]
    else:
        out = [StreamSwitch(switch)]
    if emit:
        st.current = target.name
        st.delivered.append(emit)
        st.delivered_len += len(emit)
        out.append(TextDelta(emit))
    return out
