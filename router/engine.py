"""The engine: runs one request through its route's targets and yields event batches.

Failure semantics (see DESIGN.md): each attempt's failure goes to `router.decide`, which
says whether to retry the same target, move on to the next, ask the same target again
in another shape, or stop; a failure after content was delivered continues on the next
target according to the route's ``stream_fallback_mode``; a request that cannot be
completed ends in `Failed`, never in `Done`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing

from router._attempt import Run, Splice, run_attempt
from router.balance import Load, by_session, order
from router.breaker import CircuitBreaker
from router.decide import AskAgain, Attempt, NextTarget, Retry, Stop, client_error, decide
from router.errors import (
    AnswerDiverged,
    CircuitOpen,
    ProviderError,
    RateLimited,
    UpstreamTimeout,
)
from router.events import (
    AttemptFailed,
    Done,
    Event,
    Failed,
    PoolChoice,
    RequestRecord,
    Shape,
)
from router.limits import Meter, estimate_tokens
from router.policy import RoutePolicy, Target
from router.provider import Provider, ProviderRequest
from router.splice import OverlapTrimmer, RestartMatcher
from router.table import ResolvedRoute, RoutingTable

__all__ = ["Engine"]


class Engine:
    """Executes routes. Holds the only cross-request state: per target, its breaker and
    its `Load` (requests in flight, recent time to first token); per pool, its
    round-robin turn. All of it outlives a table, so a hot reload keeps it.

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
        self._loads: dict[str, Load] = {}
        self._meters: dict[str, Meter] = {}
        self._turns: dict[str, int] = {}

    def breaker(self, target: str, policy: RoutePolicy) -> CircuitBreaker:
        b = self._breakers.get(target)
        if b is None:
            b = self._breakers[target] = CircuitBreaker(policy.breaker)
        else:  # keep the state, but follow the policy of the table being served (hot reload)
            b.policy = policy.breaker
        return b

    def breaker_states(self) -> dict[str, str]:
        return {name: b.state for name, b in self._breakers.items()}

    def loads(self) -> dict[str, Load]:
        """The `Load` of every target tried so far, without creating any: a new dict of
        the live objects, for readers (the dashboard, ``/metrics``) that never change them."""
        return dict(self._loads)

    def load(self, target: str) -> Load:
        found = self._loads.get(target)
        if found is None:
            found = self._loads[target] = Load()
        return found

    def meter(self, target: str) -> Meter:
        found = self._meters.get(target)
        if found is None:
            found = self._meters[target] = Meter()
        return found

    def _order(
        self, table: RoutingTable, route: ResolvedRoute, record: RequestRecord, session: str | None
    ) -> dict[Target, int]:
        """This request's order of the route's targets, each with its entry's number:
        entry by entry, each pool's members as its balance ranks them now, or as the
        session's affinity does (recorded)."""
        if len(route.entries) == len(route.targets):  # no pool: the order as written
            return {t: i for i, t in enumerate(route.targets)}
        ordered: dict[Target, int] = {}
        key = session if route.policy.affinity == "session" else None
        sticky = key is not None
        for i, entry in enumerate(route.entries):
            if key is not None and len(entry.members) > 1:
                ranked = by_session(entry, key)
            else:
                turn = 0
                if entry.balance == "round_robin":
                    turn = self._turns.get(entry.key, 0)
                    self._turns[entry.key] = turn + 1
                ranked = order(entry, self._loads, table.costs, self._rng, turn)
            if len(ranked) > 1:
                names = [t.name for t in ranked]
                record.pools.append(
                    PoolChoice(
                        entry=i,
                        balance="session" if sticky else entry.balance,
                        order=names,
                        affinity="hit" if sticky else None,
                    )
                )
            if len(ranked) > 1:  # a member the upstream says is spent goes last
                now = self._clock()
                ranked.sort(key=lambda t: self.meter(t.name).pressed(now))
            for target in ranked:
                ordered.setdefault(target, i)  # a target in two entries: its first
        return ordered

    def stream(
        self,
        table: RoutingTable,
        model: str,
        request: ProviderRequest,
        *,
        request_id: str,
        record: RequestRecord | None = None,
        accept_reset: bool = False,
        session: str | None = None,
    ) -> AsyncGenerator[list[Event], None]:
        """Resolve ``model`` now (raising `NoSuchModel` at once) and return the event
        stream. Nothing is sent upstream until the stream is iterated.

        ``session`` names the conversation the request belongs to, for a route with
        ``affinity = "session"`` (the caller scopes it to its client).

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
        return self._run(table, route, request, record, accept_reset, session)

    async def _run(
        self,
        table: RoutingTable,
        route: ResolvedRoute,
        request: ProviderRequest,
        record: RequestRecord,
        accept_reset: bool,
        session: str | None,
    ) -> AsyncGenerator[list[Event], None]:
        policy = route.policy
        clock = self._clock
        now = clock()
        st = Run(record, clock, now + policy.request_timeout_s, accept_reset)
        entry_of = self._order(table, route, st.record, session)
        # Only targets with rate limits are metered: the rest cost nothing here.
        limits = {t: limit for t in entry_of if (limit := table.limit(t)) is not None}
        tokens = estimate_tokens(request.messages, request.params) if limits else 0
        full = {
            t: wait
            for t, limit in limits.items()
            if (wait := self.meter(t.name).wait(now, limit, tokens)) > 0
        }
        st.record.at_limit = [t.name for t in full]
        targets = [t for t in entry_of if t not in full and self._usable(t, policy, now)]
        if not targets and full:  # every usable target is at its rate limit
            wait = min(full.values())
            error = RateLimited(
                f"every target of {route.name!r} is at its rate limit; "
                f"one frees up in {wait:.1f} s",
                retry_after=wait,
            )
            yield [Failed(error, False, st.usage, st.record, [], wait)]
            return
        entry_of = {t: e for t, e in entry_of.items() if t not in full}
        ignore_breakers = not targets
        if ignore_breakers:  # every breaker is open: trying beats refusing outright
            targets = list(entry_of)
        for choice in st.record.pools:
            if choice.affinity == "hit" and choice.order[0] not in {t.name for t in targets}:
                choice.affinity = "moved"
        st.record.skipped = [t.name for t in entry_of if t not in targets]
        # Targets asked in the user_turn shape from now on: they refused an assistant
        # prefill, or (restart) their new answer diverged from the text shown.
        user_turn: set[str] = set()
        index = tries = attempt_no = 0
        stop: ProviderError | None = None
        while index < len(targets):
            target = targets[index]
            breaker = self.breaker(target.name, policy)
            if not ignore_breakers and not breaker.allow(clock()):
                st.record.skipped.append(target.name)
                index, tries = index + 1, 0
                continue
            provider = table.providers[target.provider]
            req, shape, splice = self._shape(policy, request, st, provider, target, user_turn)
            attempt_no += 1
            load, meter = self.load(target.name), self.meter(target.name)
            attempt = run_attempt(
                st, target, provider, req, shape, splice, attempt_no, policy, breaker, meter
            )
            metered = meter.start(clock(), tokens) if target in limits else None
            load.in_flight += 1
            try:
                # A consumer that stops early must close the upstream stream now, not
                # whenever the abandoned generator is collected.
                async with aclosing(attempt):
                    async for batch in attempt:
                        yield batch
            finally:
                load.in_flight -= 1
            self._measured(load, st)
            err = st.error
            used = st.record.attempts[-1].usage
            if metered is not None and used is not None:
                meter.settle(metered, used.total_tokens)
            if isinstance(err, RateLimited):
                meter.press(clock(), err.retry_after or 1.0)
            if err is None:
                yield [Done(target.name, st.finish or "stop", st.usage, st.record)]
                return
            st.errors.append((target.name, err))
            if st.attempt_content and not isinstance(err, AnswerDiverged):
                st.switch_reason = err.reason  # what made the answer move on
            now = clock()
            decision = decide(
                policy,
                Attempt(
                    failure=err,
                    shape=shape,
                    produced=st.attempt_content,
                    delivered=st.mid_stream,
                    tries=tries,
                    targets_left=len(targets) - index - 1,
                    pool_left=sum(entry_of[t] == entry_of[target] for t in targets[index + 1 :]),
                    time_left_s=st.deadline - now,
                    breaker_allows=ignore_breakers or breaker.allow_peek(now),
                    jitter=self._rng(),
                ),
            )
            retry_in: float | None = None
            match decision:
                case Retry(delay_s=delay):
                    tries += 1
                    retry_in = delay
                case NextTarget():
                    index, tries = index + 1, 0
                case AskAgain():
                    user_turn.add(target.name)
                case Stop(exhausted=exhausted):
                    stop = None if exhausted else err
            yield [self._failed_event(attempt_no, target, err, st, retry_in)]
            if isinstance(decision, Stop):
                break
            if retry_in:
                await self._sleep(retry_in)
        yield [self._final(st, stop, route, policy)]

    def _final(
        self, st: Run, stop: ProviderError | None, route: ResolvedRoute, policy: RoutePolicy
    ) -> Failed:
        if st.errors:
            error, retry_after = client_error(st.errors, stop)
        else:  # every target was skipped: their breakers are open
            now = self._clock()
            wait = min(self.breaker(t.name, policy).reopens_in(now) for t in route.targets)
            error = CircuitOpen(
                f"every target of {route.name!r} is failing; their circuit breakers are open",
                retry_after=wait,
            )
            retry_after = wait
        errors: list[tuple[str, BaseException]] = list(st.errors)
        return Failed(error, st.mid_stream, st.usage, st.record, errors, retry_after)

    @staticmethod
    def _measured(load: Load, st: Run) -> None:
        """The attempt's time to first token, for ``least_latency`` pools; a timeout
        before the first token counts as the time it waited."""
        rec = st.record.attempts[-1]
        if rec.ttft_ms is not None:
            load.first_token(rec.ttft_ms / 1000)
        elif isinstance(st.error, UpstreamTimeout) and rec.duration_ms is not None:
            load.first_token(rec.duration_ms / 1000)

    def _usable(self, target: Target, policy: RoutePolicy, now: float) -> bool:
        return self.breaker(target.name, policy).allow_peek(now)

    def _shape(
        self,
        policy: RoutePolicy,
        request: ProviderRequest,
        st: Run,
        provider: Provider,
        target: Target,
        user_turn: set[str],
    ) -> tuple[ProviderRequest, Shape, Splice | None]:
        """The request for the next attempt and how its text joins what was sent."""
        if not st.mid_stream:
            return request, "original", None
        delivered = "".join(st.delivered)
        mode = policy.stream_fallback_mode
        if target.name not in user_turn:
            if mode == "restart":
                return request, "original", RestartMatcher(delivered)
            if mode == "prefill" and provider.prefill_ok(target.model):
                partial = {"role": "assistant", "content": delivered}
                req = ProviderRequest([*request.messages, partial], request.params, prefill=True)
                return req, "prefill", OverlapTrimmer(delivered)
        partial = {"role": "assistant", "content": delivered}
        resume = {"role": "user", "content": policy.stream_resume_prompt}
        req = ProviderRequest([*request.messages, partial, resume], request.params)
        return req, "user_turn", OverlapTrimmer(delivered)

    @staticmethod
    def _failed_event(
        attempt_no: int, target: Target, err: ProviderError, st: Run, retry_in: float | None
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
