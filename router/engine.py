"""The engine: runs one request through its route's targets and yields event batches.

Failure semantics (see DESIGN.md): retryable failures are retried on the same target
with backoff; other fallback-able failures move on to the next target; a failure
after content was delivered continues on the next target according to the route's
``stream_fallback_mode``; a request that cannot be completed ends in `Failed`, never
in `Done`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing

from router.backoff import retry_delay
from router.breaker import CircuitBreaker
from router.errors import InvalidRequest, ProviderError, UpstreamTimeout
from router.events import (
    AttemptFailed,
    AttemptRecord,
    AttemptStarted,
    Done,
    Event,
    Failed,
    Finish,
    RequestRecord,
    Reset,
    Shape,
    StreamSwitch,
    SwitchRecord,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from router.policy import RoutePolicy, Target
from router.provider import AttemptOptions, Provider, ProviderRequest, prefill_ok
from router.splice import OverlapTrimmer, RestartMatcher
from router.table import ResolvedRoute, RoutingTable
from router.watchdog import Watchdog

__all__ = ["Engine"]

Splice = OverlapTrimmer | RestartMatcher


class _Run:
    """Mutable state of one request, shared by its attempts."""

    __slots__ = (
        "attempt_content",
        "current",
        "delivered",
        "delivered_len",
        "error",
        "errors",
        "finish",
        "record",
        "switch_reason",
        "t0",
        "tools",
        "usage",
    )

    def __init__(self, record: RequestRecord) -> None:
        self.record = record
        self.delivered: list[str] = []
        self.delivered_len = 0
        self.tools = False
        self.usage = Usage()
        self.errors: list[tuple[str, ProviderError]] = []
        self.error: ProviderError | None = None
        self.finish: str | None = None
        self.current: str | None = None
        self.switch_reason = ""
        self.attempt_content = False
        self.t0 = 0.0

    @property
    def mid_stream(self) -> bool:
        return self.delivered_len > 0 or self.tools


class Engine:
    """Executes routes. Holds the only cross-request state: one breaker per target.

    ``clock`` (monotonic seconds), ``rng`` (uniform in [0, 1)) and ``sleep`` come in as
    arguments so that every decision is testable without real time or randomness.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        rng: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._rng = rng
        self._sleep = sleep
        self._breakers: dict[str, CircuitBreaker] = {}

    def breaker(self, target: str, policy: RoutePolicy) -> CircuitBreaker:
        b = self._breakers.get(target)
        if b is None:
            b = self._breakers[target] = CircuitBreaker(policy.breaker)
        else:  # keep the state, but follow the policy of the table being served (hot reload)
            b.policy = policy.breaker
        return b

    def breaker_states(self) -> dict[str, str]:
        return {name: b.state for name, b in self._breakers.items()}

    def stream(
        self,
        table: RoutingTable,
        model: str,
        request: ProviderRequest,
        *,
        request_id: str,
        record: RequestRecord | None = None,
        accept_reset: bool = False,
    ) -> AsyncGenerator[list[Event], None]:
        """Resolve ``model`` now (raising `NoSuchModel` at once) and return the event
        stream. Nothing is sent upstream until the stream is iterated.

        ``record``, if given, is the `RequestRecord` the run fills in (its ``route`` is
        set here): a caller that stops the stream before its final event can still read
        what happened up to then.

        ``accept_reset`` says the consumer discards what it showed on a `Reset` event
        (``restart`` mode). Without it no `Reset` is ever sent: a restart whose new
        answer diverges from the text shown continues in the ``user_turn`` shape."""
        route = table.resolve(model)
        if record is None:
            record = RequestRecord(request_id=request_id, route=route.name)
        else:
            record.route = route.name
        return self._run(table, route, request, record)

    async def _run(
        self,
        table: RoutingTable,
        route: ResolvedRoute,
        request: ProviderRequest,
        record: RequestRecord,
    ) -> AsyncGenerator[list[Event], None]:
        policy = route.policy
        loop = asyncio.get_running_loop()
        deadline = loop.time() + policy.request_timeout_s
        st = _Run(record)
        st.t0 = loop.time()
        now = self._clock()
        targets = [t for t in route.targets if self._usable(t, policy, now)]
        ignore_breakers = not targets
        if ignore_breakers:  # every breaker is open: trying beats refusing outright
            targets = list(route.targets)
        st.record.skipped = [t.name for t in route.targets if t not in targets]
        no_prefill: set[str] = set()
        index = tries = attempt_no = 0
        stop: ProviderError | None = None
        while index < len(targets):
            target = targets[index]
            breaker = self.breaker(target.name, policy)
            if not ignore_breakers and not breaker.allow(self._clock()):
                st.record.skipped.append(target.name)
                index, tries = index + 1, 0
                continue
            provider = table.providers[target.provider]
            req, shape, splice = self._shape(policy, request, st, provider, target, no_prefill)
            attempt_no += 1
            attempt = self._attempt(
                st, target, provider, req, shape, splice, attempt_no, deadline, policy, breaker
            )
            # A consumer that stops early must close the upstream stream now, not whenever
            # the abandoned generator is collected.
            async with aclosing(attempt):
                async for batch in attempt:
                    yield batch
            err = st.error
            if err is None:
                yield [Done(target.name, st.finish or "stop", st.usage, st.record)]
                return
            st.errors.append((target.name, err))
            failed_mid_stream = st.attempt_content
            if failed_mid_stream:  # a later failure before content must not rename the cause
                st.switch_reason = err.reason
            retry_in: float | None = None
            if not err.fallback or (isinstance(err, UpstreamTimeout) and err.phase == "total"):
                stop = err
            elif policy.fallback_on is not None and err.reason not in policy.fallback_on:
                stop = err
            elif st.mid_stream and policy.stream_fallback_mode == "terminate":
                stop = err
            elif shape == "prefill" and isinstance(err, InvalidRequest) and not failed_mid_stream:
                # The target refused the assistant prefill: ask it again in the
                # user_turn shape at once; the original failure stays the one reported.
                no_prefill.add(target.name)
            elif (
                err.retryable
                and tries < policy.max_retries
                and not (failed_mid_stream and index + 1 < len(targets))
                # Do not wait for a retry that this failure's open breaker would refuse.
                and (ignore_breakers or breaker.allow_peek(self._clock()))
            ):
                retry_in = retry_delay(policy, tries, err.retry_after, self._rng)
                if retry_in is not None and loop.time() + retry_in >= deadline:
                    retry_in = None
                if retry_in is None:
                    index, tries = index + 1, 0
                else:
                    tries += 1
            else:
                index, tries = index + 1, 0
            yield [self._failed_event(attempt_no, target, err, st, retry_in)]
            if stop is not None:
                break
            if retry_in:
                await self._sleep(retry_in)
        # The first failure is the route's real cause (a fallback's refusal must not
        # mask it) unless the request stopped on a failure no target can fix.
        primary = st.errors[0][1]
        if stop is not None and (not stop.fallback or isinstance(stop, UpstreamTimeout)):
            primary = stop
        yield [Failed(primary, st.mid_stream, st.usage, st.record, list(st.errors))]

    def _usable(self, target: Target, policy: RoutePolicy, now: float) -> bool:
        return self.breaker(target.name, policy).allow_peek(now)

    def _shape(
        self,
        policy: RoutePolicy,
        request: ProviderRequest,
        st: _Run,
        provider: Provider,
        target: Target,
        no_prefill: set[str],
    ) -> tuple[ProviderRequest, Shape, Splice | None]:
        """The request for the next attempt and how its text joins what was sent."""
        if not st.mid_stream:
            return request, "original", None
        delivered = "".join(st.delivered)
        mode = policy.stream_fallback_mode
        if mode == "restart" or st.tools:
            return request, "original", RestartMatcher(delivered, force_reset=st.tools)
        partial = {"role": "assistant", "content": delivered}
        if (
            mode == "prefill"
            and prefill_ok(provider, target.model)
            and target.name not in no_prefill
        ):
            req = ProviderRequest([*request.messages, partial], request.params, prefill=True)
            return req, "prefill", OverlapTrimmer(delivered)
        resume = {"role": "user", "content": policy.stream_resume_prompt}
        req = ProviderRequest([*request.messages, partial, resume], request.params)
        return req, "user_turn", OverlapTrimmer(delivered)

    async def _attempt(
        self,
        st: _Run,
        target: Target,
        provider: Provider,
        req: ProviderRequest,
        shape: Shape,
        splice: Splice | None,
        attempt_no: int,
        deadline: float,
        policy: RoutePolicy,
        breaker: CircuitBreaker,
    ) -> AsyncGenerator[list[Event], None]:
        rec = AttemptRecord(attempt=attempt_no, target=target.name, shape=shape)
        st.record.attempts.append(rec)
        st.error = None
        st.attempt_content = False
        yield [AttemptStarted(attempt_no, target.name, shape)]
        loop = asyncio.get_running_loop()
        started = loop.time()
        rec.start_ms = (started - st.t0) * 1000
        first_deadline = min(started + policy.first_token_timeout_s, deadline)
        when = first_deadline
        content = False
        chunks = provider.stream(
            target.model, req, AttemptOptions(connect_timeout_s=policy.connect_timeout_s)
        )
        watch = Watchdog(loop)
        try:
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
                for chunk in batch:
                    if type(chunk) is TextDelta:
                        if not content:
                            content = st.attempt_content = True
                            rec.ttft_ms = (loop.time() - started) * 1000
                        rec.chars += len(chunk.text)
                        if splice is not None:
                            emit = splice.feed(chunk.text)
                            if emit is None:
                                continue
                            out.append(self._switch(st, splice, target, policy))
                            splice = None
                            if not emit:
                                continue
                            chunk = TextDelta(emit)
                        st.current = target.name
                        st.delivered.append(chunk.text)
                        st.delivered_len += len(chunk.text)
                        out.append(chunk)
                    elif type(chunk) is ToolCallDelta:
                        if not content:
                            content = st.attempt_content = True
                            rec.ttft_ms = (loop.time() - started) * 1000
                        if splice is not None:
                            out.extend(self._flush(st, splice, target, policy))
                            splice = None
                        st.current = target.name
                        st.tools = True
                        out.append(chunk)
                    elif type(chunk) is Usage:
                        rec.usage = chunk
                    elif type(chunk) is Finish:
                        st.finish = chunk.reason
                if out:
                    yield out
                when = min(loop.time() + policy.stall_timeout_s, deadline) if content else when
            if splice is not None:
                flushed = self._flush(st, splice, target, policy)
                if flushed:
                    yield flushed
            rec.outcome = "ok"
            breaker.record_success()
        except TimeoutError:
            phase = "total" if when >= deadline else ("stall" if content else "first_token")
            st.error = UpstreamTimeout(
                f"no {'data' if content else 'first token'} from {target.name} within "
                f"the {phase} timeout",
                phase=phase,
                provider=target.provider,
            )
        except ProviderError as exc:
            st.error = exc
        finally:
            watch.close()
            await chunks.aclose()
            rec.duration_ms = (loop.time() - started) * 1000
            if rec.usage is not None:
                st.usage = st.usage + rec.usage
            if st.error is not None:
                rec.outcome = "failed"
                rec.error_type = st.error.reason
                rec.error = str(st.error)
                rec.status = st.error.upstream_status
                if st.error.target_fault:
                    breaker.record_failure(self._clock())
                else:
                    breaker.release()
            elif rec.outcome == "running":  # abandoned by the consumer
                breaker.release()

    def _flush(self, st: _Run, splice: Splice, target: Target, policy: RoutePolicy) -> list[Event]:
        emit = splice.finish()
        out: list[Event] = [self._switch(st, splice, target, policy)]
        if emit:
            st.current = target.name
            st.delivered.append(emit)
            st.delivered_len += len(emit)
            out.append(TextDelta(emit))
        return out

    def _switch(self, st: _Run, splice: Splice, target: Target, policy: RoutePolicy) -> Event:
        switch = SwitchRecord(
            from_target=st.current or target.name,
            to_target=target.name,
            mode=policy.stream_fallback_mode,
            reason=st.switch_reason,
            chars_delivered=st.delivered_len,
            trimmed_chars=splice.trimmed,
            reset=splice.reset,
        )
        st.record.switches.append(switch)
        if splice.reset:
            st.delivered.clear()
            st.delivered_len = 0
            return Reset(switch)
        return StreamSwitch(switch)

    @staticmethod
    def _failed_event(
        attempt_no: int, target: Target, err: ProviderError, st: _Run, retry_in: float | None
    ) -> AttemptFailed:
        return AttemptFailed(
            attempt_no,
            target.name,
            err.reason,
            str(err),
            err.upstream_status,
            st.delivered_len,
            retry_in,
        )
