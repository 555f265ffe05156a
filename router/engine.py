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

from router._attempt import Run, Splice, Try, run_attempt
from router.balance import Load, Sessions, by_session, order
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
    Hedged,
    HedgeRecord,
    PoolChoice,
    RequestRecord,
    Shape,
)
from router.hedge import Latencies, Launch, Race
from router.limits import Meter, request_tokens
from router.policy import Limit, RoutePolicy, Target
from router.provider import EmbedRequest, Provider, ProviderRequest
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
        self._ttfts: dict[str, Latencies] = {}
        self._sessions = Sessions()

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
            away = False  # the session stays where it went when its own member failed
            if key is not None and len(entry.members) > 1:
                ranked = by_session(entry, key)
                held = self._sessions.member(entry.key, key, self._clock())
                if held is not None and held != ranked[0].name:
                    at = next((j for j, t in enumerate(ranked) if t.name == held), 0)
                    ranked.insert(0, ranked.pop(at))
                    away = True
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
                        affinity=("moved" if away else "hit") if sticky else None,
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
        record = _named(record, request_id, route)
        return self._run(table, route, request, record, accept_reset, session)

    def embed(
        self,
        table: RoutingTable,
        model: str,
        request: EmbedRequest,
        *,
        request_id: str,
        record: RequestRecord | None = None,
        session: str | None = None,
    ) -> AsyncGenerator[list[Event], None]:
        """`stream` for an embeddings request: the same ordering, limits, breakers,
        retries and fallbacks, and the same records. Resolving ``model`` raises at once
        (`NoSuchModel`, or `RequestError` when a target of the route cannot embed). Its
        content is one `Embeddings` event, the vectors of the attempt that answered,
        before `Done`; a failure ends in `Failed` as any request's."""
        route = table.resolve_embeddings(model)
        record = _named(record, request_id, route)
        return self._run(table, route, request, record, False, session)

    async def _run(
        self,
        table: RoutingTable,
        route: ResolvedRoute,
        request: ProviderRequest | EmbedRequest,
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
        tokens = request_tokens(request) if limits else 0
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
        sticky = session if policy.affinity == "session" else None
        spent: set[Target] = set()  # failed as a hedge beside another attempt
        latencies = self._latencies(route) if policy.hedge_after_s == "p95" else None
        run = _Attempts(self, st, table, policy, limits, tokens, latencies)
        index = tries = 0
        stop: ProviderError | None = None
        while index < len(targets):
            target = targets[index]
            breaker = self.breaker(target.name, policy)
            if target in spent:
                index, tries = index + 1, 0
                continue
            if not ignore_breakers and not breaker.allow(clock()):
                st.record.skipped.append(target.name)
                index, tries = index + 1, 0
                continue
            provider = table.providers[target.provider]
            req, shape, splice = self._shape(policy, request, st, provider, target, user_turn)
            tr = Try(len(st.record.attempts) + 1, target, shape)
            after = (
                None
                if st.mid_stream or shape != "original"
                else self._hedge_after(policy, latencies)
            )
            partner = None
            if after is not None:
                partner = self._partner(targets, index, spent, policy, ignore_breakers)
            if partner is None:
                # A consumer that stops early must close the upstream stream now, not
                # whenever the abandoned generator is collected.
                async with aclosing(run.one(tr, provider, req, splice, breaker)) as attempt:
                    async for batch in attempt:
                        yield batch
            else:
                assert after is not None
                race = Race()
                first = run.one(tr, provider, req, splice, breaker, gate=race.gate(tr))
                launch = run.hedge(race, tr, req, targets[partner], after, ignore_breakers)
                stopped = False
                hedge_at = clock() + after
                async with aclosing(race.run(tr, first, hedge_at, clock, launch)) as racing:
                    async for item in racing:
                        if type(item) is list:
                            yield item
                            continue
                        assert isinstance(item, Try)
                        failed = item  # beside another attempt, which goes on
                        err = failed.error
                        assert err is not None
                        st.errors.append((failed.target.name, err))
                        yield [self._failed_event(failed, err, st, None)]
                        if failed is race.partner:
                            spent.add(failed.target)
                        if race.winner is not None:
                            continue  # the answer is streaming: nothing to decide
                        verdict = decide(policy, self._facts(failed, st, 0, 1, 0, True))
                        if isinstance(verdict, Stop):
                            race.abort(f"the request stopped: {failed.target.name} failed")
                            stop = None if verdict.exhausted else err
                            stopped = True
                self._hedged(race, tr, st, latencies)
                if stopped:
                    break
                assert race.result is not None
                tr = race.result
                if tr is race.partner:
                    index, tries = partner, 0
            target = tr.target
            err = tr.error
            if err is None:
                if sticky is not None:
                    self._stick(route, entry_of[target], sticky, target)
                yield [Done(target.name, tr.finish or "stop", st.usage, st.record)]
                return
            st.errors.append((target.name, err))
            if tr.produced and not isinstance(err, AnswerDiverged):
                st.switch_reason = err.reason  # what made the answer move on
            now = clock()
            decision = decide(
                policy,
                self._facts(
                    tr,
                    st,
                    tries,
                    len(targets) - index - 1,
                    sum(entry_of[t] == entry_of[target] for t in targets[index + 1 :]),
                    ignore_breakers or breaker.allow_peek(now),
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
            yield [self._failed_event(tr, err, st, retry_in)]
            if isinstance(decision, Stop):
                break
            if retry_in:
                await self._sleep(retry_in)
        yield [self._final(st, stop, route, policy)]

    def _facts(
        self, tr: Try, st: Run, tries: int, targets_left: int, pool_left: int, allows: bool
    ) -> Attempt:
        err = tr.error
        assert err is not None
        return Attempt(
            failure=err,
            shape=tr.shape,
            produced=tr.produced,
            delivered=st.mid_stream,
            tries=tries,
            targets_left=targets_left,
            pool_left=pool_left,
            time_left_s=st.deadline - self._clock(),
            breaker_allows=allows,
            jitter=self._rng(),
        )

    def _stick(self, route: ResolvedRoute, entry: int, session: str, target: Target) -> None:
        """Keep ``session`` on the member of a pool that answered it, when that is not
        its own."""
        pool = route.entries[entry]
        if len(pool.members) < 2:
            return
        if by_session(pool, session)[0] == target:
            self._sessions.forget(pool.key, session)
        else:
            until = self._clock() + route.policy.affinity_ttl_s
            self._sessions.served(pool.key, session, target.name, until)

    def _latencies(self, route: ResolvedRoute) -> Latencies:
        found = self._ttfts.get(route.name)
        if found is None:
            found = self._ttfts[route.name] = Latencies()
        return found

    @staticmethod
    def _hedge_after(policy: RoutePolicy, latencies: Latencies | None) -> float | None:
        """How long an attempt may go without content before it gets a hedge (None:
        it gets none)."""
        after = policy.hedge_after_s
        if after is None:
            return None
        if after == "p95":
            after = latencies.p95() if latencies is not None else None
            if after is None:
                return None
        after = float(after)
        return after if after < policy.first_token_timeout_s else None

    def _partner(
        self,
        targets: list[Target],
        index: int,
        spent: set[Target],
        policy: RoutePolicy,
        ignore_breakers: bool,
    ) -> int | None:
        """Where the hedge of ``targets[index]`` is: the next candidate that may be tried."""
        now = self._clock()
        for j in range(index + 1, len(targets)):
            t = targets[j]
            if t in spent or t == targets[index]:
                continue
            if ignore_breakers or self.breaker(t.name, policy).allow_peek(now):
                return j
        return None

    def _hedged(self, race: Race, first: Try, st: Run, latencies: Latencies | None) -> None:
        """Record how a race ended. A first attempt that lost waited at least that long
        for a first token: its target's latency hears of it."""
        partner = race.partner
        if partner is None:
            return
        hedge = st.record.hedges[-1]
        if race.winner is not None:
            hedge.won = race.winner is partner
        waited = first.rec.duration_ms
        if race.winner is partner and first.cancelled is not None and waited is not None:
            self.load(first.target.name).first_token(waited / 1000)
            if latencies is not None:
                latencies.add(waited / 1000)

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

    def _usable(self, target: Target, policy: RoutePolicy, now: float) -> bool:
        return self.breaker(target.name, policy).allow_peek(now)

    def _shape(
        self,
        policy: RoutePolicy,
        request: ProviderRequest | EmbedRequest,
        st: Run,
        provider: Provider,
        target: Target,
        user_turn: set[str],
    ) -> tuple[ProviderRequest | EmbedRequest, Shape, Splice | None]:
        """The request for the next attempt and how its text joins what was sent."""
        if not st.mid_stream:
            return request, "original", None
        assert isinstance(request, ProviderRequest)  # only text is ever delivered mid-stream
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
        tr: Try, err: ProviderError, st: Run, retry_in: float | None
    ) -> AttemptFailed:
        return AttemptFailed(
            tr.rec.attempt,
            tr.target.name,
            err.reason,
            str(err),
            err.upstream_status,
            st.delivered_len,
            retry_in,
        )


class _Attempts:
    """Starts the attempts of one request, each counted in its target's `Load` (and
    `Meter`, for a target with rate limits) while it runs."""

    __slots__ = ("engine", "latencies", "limits", "policy", "st", "table", "tokens")

    def __init__(
        self,
        engine: Engine,
        st: Run,
        table: RoutingTable,
        policy: RoutePolicy,
        limits: dict[Target, Limit],
        tokens: int,
        latencies: Latencies | None,
    ) -> None:
        self.engine = engine
        self.st = st
        self.table = table
        self.policy = policy
        self.limits = limits
        self.tokens = tokens
        self.latencies = latencies

    def one(
        self,
        tr: Try,
        provider: Provider,
        req: ProviderRequest | EmbedRequest,
        splice: Splice | None,
        breaker: CircuitBreaker,
        *,
        gate: Callable[[], Awaitable[None]] | None = None,
        held: bool = False,
    ) -> AsyncGenerator[list[Event], None]:
        """The attempt ``tr`` (see `run_attempt`), counted while it runs."""
        engine, name = self.engine, tr.target.name
        load, meter = engine.load(name), engine.meter(name)
        clock = engine._clock

        def count() -> Callable[[], None]:
            metered = meter.start(clock(), self.tokens) if tr.target in self.limits else None
            load.in_flight += 1

            def ended() -> None:
                load.in_flight -= 1
                self._measured(load, tr)
                used = tr.rec.usage
                if metered is not None and used is not None:
                    meter.settle(metered, used.total_tokens)
                if isinstance(tr.error, RateLimited):
                    meter.press(clock(), tr.error.retry_after or 1.0)

            return ended

        return run_attempt(
            self.st, tr, provider, req, splice, self.policy, breaker, meter, count, gate, held
        )

    def hedge(
        self,
        race: Race,
        first: Try,
        req: ProviderRequest | EmbedRequest,
        target: Target,
        after: float,
        ignore_breakers: bool,
    ) -> Launch:
        """What starts ``first``'s hedge on ``target`` (asking it ``req``, as ``first``
        was) when its time comes."""
        st, policy = self.st, self.policy

        def launch() -> tuple[Try, AsyncGenerator[list[Event], None], list[Event]] | None:
            breaker = self.engine.breaker(target.name, policy)
            if not ignore_breakers and not breaker.allow(self.engine._clock()):
                return None
            tr = Try(len(st.record.attempts) + 1, target, "original")
            st.record.attempts.append(tr.rec)
            provider = self.table.providers[target.provider]
            events = self.one(tr, provider, req, None, breaker, gate=race.gate(tr), held=True)
            st.record.hedges.append(
                HedgeRecord(
                    attempt=first.rec.attempt,
                    hedge=tr.rec.attempt,
                    target=target.name,
                    after_s=after,
                )
            )
            return tr, events, [Hedged(tr.rec.attempt, target.name, after)]

        return launch

    def _measured(self, load: Load, tr: Try) -> None:
        """The attempt's time to first token, for ``least_latency`` pools (and the
        route's ``hedge_after_s = "p95"``); a timeout before the first token counts as
        the time it waited."""
        rec = tr.rec
        if rec.ttft_ms is not None:
            load.first_token(rec.ttft_ms / 1000)
            if self.latencies is not None and tr.shape == "original":
                self.latencies.add(rec.ttft_ms / 1000)
        elif isinstance(tr.error, UpstreamTimeout) and rec.duration_ms is not None:
            load.first_token(rec.duration_ms / 1000)


def _named(record: RequestRecord | None, request_id: str, route: ResolvedRoute) -> RequestRecord:
    """The record a run fills in: the caller's (named after the route now), or a new one."""
    if record is None:
        return RequestRecord(request_id=request_id, route=route.name)
    record.route = route.name
    return record
