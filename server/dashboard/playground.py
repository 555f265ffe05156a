"""The playground: run a prompt through a route and watch it stream, fallbacks included.

The form (``POST /admin/playground``) validates the run and answers with a panel that
connects to ``GET /admin/playground/stream?token=...`` with htmx's SSE extension. The
stream renders the engine's events as they happen: text into the answer, attempts,
failures, stream switches and resets into the answer (as markers) and into the event
list, and the outcome at the end, followed by an ``end`` event on which the page closes
the connection (``sse-close``), so that the browser never reconnects and runs it again.

The token carries the whole run (route, prompt, options): the POST stores nothing, so
any worker can serve the stream. It is signed with a key derived from the dashboard's
session secret, expires after ``app.state.playground_token_ttl_s`` (60 s), and is
accepted once per process: a reconnecting browser, a replayed URL or another tab gets
a ``refused`` event instead of a second run. A GET cannot be forged cross-site into a
run either: the session cookie is ``SameSite=Strict`` and the token comes from a POST
that passed the CSRF check.

A normal run is a real request (`Gateway.run`): it shows in the live feed, the request
log and the metrics, and counts for the circuit breakers, like any client's. A
*simulated* run injects a failure into the route's first mock target and runs on a
private `Engine` over a private copy of the route's mock providers: a rehearsal of the
route's fallback behaviour that trips no real breaker, is neither logged nor counted,
and says so on the page. Its other targets are the real ones, so a route that falls
back to a real provider really calls it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import random
import time
import zlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Literal

import msgspec
from litestar import get, post
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import ServerSentEvent, ServerSentEventMessage, Template

from providers.mock import MockConfig, MockProvider
from router.engine import Engine
from router.errors import NoSuchModel
from router.events import (
    AttemptFailed,
    AttemptStarted,
    Chunk,
    Done,
    Event,
    Failed,
    Reset,
    StreamSwitch,
    TextDelta,
    ToolCallDelta,
)
from router.provider import AttemptOptions, Provider, ProviderRequest
from router.table import ResolvedRoute, RoutingTable
from server.dashboard.common import Req, fragment, gateway, is_htmx, page

__all__ = ["HANDLERS", "RunSpec", "TokenBook", "simulated_table"]

log = logging.getLogger("llmgate.dashboard")

Simulate = Literal["none", "fail", "cut", "stall"]
SIMULATIONS: tuple[tuple[Simulate, str], ...] = (
    ("none", "none: a real request"),
    ("fail", "fail before the first token (HTTP 503)"),
    ("cut", "cut the stream after N words"),
    ("stall", "stall after N words"),
)
TOKEN_TTL_S = 60.0
MAX_PROMPT_CHARS = 20_000
MAX_TOKEN_CHARS = 8_000
"""The token travels in the stream's URL; servers limit the request line (h11: 16 KiB)."""
MAX_WORDS = 100_000
GRACE_S = 2.0
"""Beyond the route's ``request_timeout_s``, which the engine enforces itself, before
the playground gives up on a run."""


class RunSpec(msgspec.Struct, frozen=True, array_like=True):
    """Everything a run needs, carried by its token."""

    route: str
    prompt: str
    max_tokens: int | None
    simulate: Simulate
    n: int
    nonce: str
    expires: float
    """Wall-clock seconds (the token may be redeemed by another worker)."""


class Refused(Exception):
    """The token cannot start a run; the message says why, for the page."""


class TokenBook:
    """Issues and redeems run tokens: ``base64url(zlib(spec)).base64url(hmac)``.

    Nonces redeemed are remembered until their token expires, so each token starts at
    most one run in this process.
    """

    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, b"llmgate playground token", hashlib.sha256).digest()
        self._used: dict[str, float] = {}

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def issue(self, spec: RunSpec) -> str:
        payload = _b64(zlib.compress(msgspec.json.encode(spec)))
        return f"{payload}.{_b64(self._sign(payload.encode()))}"

    def redeem(self, token: str, now: float) -> RunSpec:
        payload, sep, signature = token.partition(".")
        try:
            given = _unb64(signature)
        except ValueError:
            raise Refused("This run's link is malformed.") from None
        if not sep or not hmac.compare_digest(given, self._sign(payload.encode())):
            raise Refused("This run's link is not valid: it was not issued by this dashboard.")
        try:
            spec = msgspec.json.decode(zlib.decompress(_unb64(payload)), type=RunSpec)
        except (ValueError, zlib.error, msgspec.DecodeError):
            raise Refused("This run's link is malformed.") from None
        for nonce, expires in list(self._used.items()):
            if expires < now:
                del self._used[nonce]
        if spec.expires <= now:
            raise Refused("This run's link has expired: run the prompt again.")
        if spec.nonce in self._used:
            raise Refused("This run has already been streamed: run the prompt again.")
        self._used[spec.nonce] = spec.expires
        return spec


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError(str(exc)) from None


def _tokens(request: Req) -> TokenBook:
    state = request.app.state
    book = state.get("playground_tokens")
    if not isinstance(book, TokenBook):
        book = state.playground_tokens = TokenBook(state.dashboard_auth.session_secret)
    return book


# --- routes and their mock targets -------------------------------------------------------


class RouteInfo(msgspec.Struct, frozen=True):
    name: str
    targets: list[str]
    mode: str
    max_retries: int
    request_timeout_s: float
    mock_target: str | None
    """The first target served by a mock provider: where a failure can be simulated."""


def _mock_index(table: RoutingTable, route: ResolvedRoute) -> int | None:
    for i, target in enumerate(route.targets):
        if isinstance(table.providers.get(target.provider), MockProvider):
            return i
    return None


def route_info(table: RoutingTable, name: str) -> RouteInfo | None:
    route = table.routes.get(name)
    if route is None:
        return None
    index = _mock_index(table, route)
    return RouteInfo(
        name=name,
        targets=[t.name for t in route.targets],
        mode=route.policy.stream_fallback_mode,
        max_retries=route.policy.max_retries,
        request_timeout_s=route.policy.request_timeout_s,
        mock_target=None if index is None else route.targets[index].name,
    )


class _OneModelInjected:
    """A mock provider whose one model fails as simulated while its others answer as
    configured: the failure hits the route's first mock target only, even when the
    route's other targets are models of the same provider."""

    def __init__(self, base: MockProvider, injected: MockProvider, model: str) -> None:
        self.name = base.name
        self.supports_prefill = base.supports_prefill
        self._base = base
        self._injected = injected
        self._model = model

    def prefill_ok(self, model: str) -> bool:
        return self._base.prefill_ok(model)

    def stream(
        self, model: str, request: ProviderRequest, options: AttemptOptions
    ) -> AsyncGenerator[list[Chunk], None]:
        provider = self._injected if model == self._model else self._base
        return provider.stream(model, request, options)


def _inject(config: MockConfig, simulate: Simulate, n: int) -> MockConfig:
    """The simulated failure alone: the mock's own configured failures are cleared."""
    clear: dict[str, Any] = {"fail_status": None, "cut_after": None, "stall_after": None}
    if simulate == "fail":
        return msgspec.structs.replace(
            config, **{**clear, "fail_status": 503, "fail_times": None, "retry_after_s": None}
        )
    if simulate == "cut":
        return msgspec.structs.replace(config, **{**clear, "cut_after": n})
    if simulate == "stall":
        return msgspec.structs.replace(config, **{**clear, "stall_after": n})
    return config


def simulated_table(
    table: RoutingTable, route_name: str, simulate: Simulate, n: int
) -> RoutingTable:
    """A table of just ``route_name``, where the route's mock providers are fresh copies
    (their request counts, which ``fail_times`` reads, start at zero and stay private)
    and its first mock target fails as ``simulate`` says. Raises `NoSuchModel` if the
    route is gone, `ValueError` if it has no mock target."""
    route = table.routes.get(route_name)
    if route is None:
        raise NoSuchModel(f"The route {route_name!r} no longer exists.", param="model")
    index = _mock_index(table, route)
    if index is None:
        raise ValueError(f"the route {route_name!r} has no mock target")
    providers: dict[str, Provider] = dict(table.providers)
    for target in route.targets:
        original = table.providers[target.provider]
        if isinstance(original, MockProvider):
            providers[target.provider] = MockProvider(original.name, original.config)
    chosen = route.targets[index]
    base = providers[chosen.provider]
    assert isinstance(base, MockProvider)
    injected = MockProvider(base.name, _inject(base.config, simulate, n))
    providers[chosen.provider] = _OneModelInjected(base, injected, chosen.model)
    return RoutingTable(
        providers,
        {route_name: route.policy},
        default_policy=table.default_policy,
        revision=table.revision,
    )


# --- the form -----------------------------------------------------------------------------


class RunForm(msgspec.Struct):
    """The form as typed, shown back with the errors."""

    route: str = ""
    prompt: str = ""
    max_tokens: str = ""
    simulate: str = "none"
    n: str = "5"


def _validate(form: RunForm, table: RoutingTable) -> tuple[RunSpec | None, dict[str, str]]:
    errors: dict[str, str] = {}
    info = route_info(table, form.route)
    if info is None:
        errors["route"] = (
            "Pick a route." if not form.route else f"There is no route {form.route!r} (any more)."
        )
    if not form.prompt.strip():
        errors["prompt"] = "Type a prompt."
    elif len(form.prompt) > MAX_PROMPT_CHARS:
        errors["prompt"] = f"At most {MAX_PROMPT_CHARS} characters."
    max_tokens: int | None = None
    if form.max_tokens.strip():
        try:
            max_tokens = int(form.max_tokens)
            if not 1 <= max_tokens <= MAX_WORDS:
                raise ValueError
        except ValueError:
            errors["max_tokens"] = f"A whole number from 1 to {MAX_WORDS}, or empty."
    simulate: Simulate = "none"
    chosen = [key for key, _ in SIMULATIONS if key == form.simulate]
    if not chosen:
        errors["simulate"] = "Pick one of the listed failures."
    else:
        simulate = chosen[0]
        if simulate != "none" and info is not None and info.mock_target is None:
            errors["simulate"] = "This route has no mock target to fail."
    n = 0
    if simulate in ("cut", "stall"):
        try:
            n = int(form.n)
            if not 0 <= n <= MAX_WORDS:
                raise ValueError
        except ValueError:
            errors["n"] = f"A whole number of words from 0 to {MAX_WORDS}."
    if errors:
        return None, errors
    spec = RunSpec(
        route=form.route,
        prompt=form.prompt,
        max_tokens=max_tokens,
        simulate=simulate,
        n=n,
        nonce=os.urandom(12).hex(),
        expires=0.0,
    )
    return spec, {}


def _context(
    request: Req,
    form: RunForm,
    errors: dict[str, str] | None = None,
    run: dict[str, Any] | None = None,
) -> dict[str, Any]:
    table = gateway(request).table
    return {
        "routes": list(table.routes),
        "form": form,
        "info": route_info(table, form.route),
        "errors": errors or {},
        "simulations": SIMULATIONS,
        "run": run,
    }


def _describe(spec: RunSpec, info: RouteInfo | None) -> str:
    target = info.mock_target if info is not None else None
    if spec.simulate == "fail":
        return f"{target} fails before its first token (HTTP 503)"
    if spec.simulate == "cut":
        return f"{target} cuts the stream after {spec.n} words"
    if spec.simulate == "stall":
        return f"{target} stalls after {spec.n} words"
    return ""


@get("/playground", name="playground")
async def playground_page(request: Req) -> Template:
    routes = list(gateway(request).table.routes)
    wanted = request.query_params.get("route", "")
    form = RunForm(route=wanted if wanted in routes else (routes[0] if routes else ""))
    return page(request, "playground.html", "playground", **_context(request, form))


@get("/playground/route")
async def playground_route(request: Req) -> Template:
    """The route's summary and the failure choices, when another route is picked."""
    form = RunForm(route=request.query_params.get("route", ""))
    return fragment("_playground_route.html", **_context(request, form))


@post("/playground", status_code=200)
async def playground_run(request: Req) -> Template:
    data = await request.form()
    form = RunForm(
        **{f: str(data.get(f) or "") for f in ("route", "prompt", "max_tokens", "simulate")},
        n=str(data.get("n") or ""),
    )
    form.simulate = form.simulate or "none"
    table = gateway(request).table
    spec, errors = _validate(form, table)
    run: dict[str, Any] | None = None
    if spec is not None:
        ttl = float(request.app.state.get("playground_token_ttl_s", TOKEN_TTL_S))
        spec = msgspec.structs.replace(spec, expires=time.time() + ttl)
        token = _tokens(request).issue(spec)
        if len(token) > MAX_TOKEN_CHARS:
            errors["prompt"] = "The prompt is too long for the playground: shorten it."
        else:
            run = {
                "stream_url": f"/admin/playground/stream?token={token}",
                "route": spec.route,
                "simulated": spec.simulate != "none",
                "description": _describe(spec, route_info(table, spec.route)),
            }
    context = _context(request, form, errors, run)
    if is_htmx(request):
        return fragment("_playground.html", **context)
    return page(request, "playground.html", "playground", **context)


# --- the stream ---------------------------------------------------------------------------


class _Renderer:
    """Turns event batches into SSE messages of rendered HTML (autoescaped by jinja)."""

    def __init__(self, request: Req, simulated: bool, request_id: str) -> None:
        engine = request.app.template_engine
        assert isinstance(engine, JinjaTemplateEngine)
        self._template = engine.engine.get_template("_playground_event.html")
        self._t0 = asyncio.get_running_loop().time()
        self.simulated = simulated
        self.request_id = request_id

    def piece(self, part: str, ev: Event | None = None, **context: Any) -> str:
        at = (asyncio.get_running_loop().time() - self._t0) * 1000
        html = self._template.render(
            part=part,
            ev=ev,
            kind=type(ev).__name__,
            error_type=type(ev.error).__name__ if isinstance(ev, Failed) else "",
            at=at,
            simulated=self.simulated,
            request_id=self.request_id,
            **context,
        )
        return html.strip()

    def batch(self, batch: list[Event]) -> list[ServerSentEventMessage]:
        answer: list[str] = []
        lines: list[str] = []
        outcome: str | None = None
        text: list[str] = []

        def flush_text() -> None:
            if text:
                answer.append(self.piece("text", text="".join(text)))
                text.clear()

        for event in batch:
            kind = type(event)
            if kind is TextDelta:
                assert isinstance(event, TextDelta)
                text.append(event.text)
                continue
            flush_text()
            if kind is ToolCallDelta:
                answer.append(self.piece("tool", ev=event))
            elif kind is AttemptStarted or kind is AttemptFailed:
                lines.append(self.piece("log", ev=event))
            elif kind is StreamSwitch or kind is Reset:
                answer.append(self.piece("marker", ev=event))
                lines.append(self.piece("log", ev=event))
            elif kind is Done or kind is Failed:
                lines.append(self.piece("log", ev=event))
                outcome = self.piece("outcome", ev=event)
        flush_text()
        out: list[ServerSentEventMessage] = []
        if answer:
            out.append(ServerSentEventMessage(data="".join(answer), event="answer"))
        if lines:
            out.append(ServerSentEventMessage(data="".join(lines), event="log"))
        if outcome is not None:
            out.append(ServerSentEventMessage(data=outcome, event="outcome"))
        return out

    def failure(self, message: str) -> list[ServerSentEventMessage]:
        """A run that ended without the engine's final event."""
        return [
            ServerSentEventMessage(data=self.piece("log_error", message=message), event="log"),
            ServerSentEventMessage(
                data=self.piece("outcome_error", message=message), event="outcome"
            ),
        ]


END = ServerSentEventMessage(data="end", event="end")


def _start(
    request: Req, spec: RunSpec, request_id: str
) -> tuple[AsyncIterator[list[Event]], float]:
    """The run's event stream and the route's request timeout."""
    gw = gateway(request)
    params: dict[str, Any] = {} if spec.max_tokens is None else {"max_tokens": spec.max_tokens}
    req = ProviderRequest([{"role": "user", "content": spec.prompt}], params)
    table = gw.table
    if spec.simulate == "none":
        # The playground shows a restart's reset marker, so it asks for it.
        events = gw.run(spec.route, req, request_id, accept_reset=True)
        timeout = table.resolve(spec.route).policy.request_timeout_s
        return events, timeout
    sim = simulated_table(table, spec.route, spec.simulate, spec.n)
    engine = Engine(clock=time.monotonic, rng=random.random)
    events = engine.stream(sim, spec.route, req, request_id=request_id, accept_reset=True)
    return events, sim.routes[spec.route].policy.request_timeout_s


async def _run(request: Req, spec: RunSpec) -> AsyncIterator[ServerSentEventMessage]:
    simulated = spec.simulate != "none"
    request_id = ("playground-sim-" if simulated else "playground-") + os.urandom(10).hex()
    render = _Renderer(request, simulated, request_id)
    events: AsyncIterator[list[Event]] | None = None
    try:
        try:
            events, timeout = _start(request, spec, request_id)
        except (NoSuchModel, ValueError) as exc:
            for message in render.failure(f"The run cannot start: {exc}"):
                yield message
            yield END
            return
        yield ServerSentEventMessage(
            data=render.piece("begin", spec=spec, timeout=timeout), event="log"
        )
        deadline = asyncio.get_running_loop().time() + timeout + GRACE_S
        while True:
            try:
                async with asyncio.timeout_at(deadline):
                    batch = await anext(events)
            except StopAsyncIteration:
                for message in render.failure("The run ended without an outcome."):
                    yield message
                break
            except TimeoutError:
                for message in render.failure(
                    f"The run exceeded the route's request timeout ({timeout:g} s)."
                ):
                    yield message
                break
            for message in render.batch(batch):
                yield message
            if batch and type(batch[-1]) in (Done, Failed):
                break
        yield END
    except Exception:
        log.exception("playground run %s failed", request_id)
        for message in render.failure("The playground failed; see the gateway's log."):
            yield message
        yield END
    finally:
        # The client went away, the run timed out or ended: release the upstream now.
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()


async def _refused(request: Req, reason: str) -> AsyncIterator[ServerSentEventMessage]:
    render = _Renderer(request, False, "")
    yield ServerSentEventMessage(data=render.piece("refused", message=reason), event="refused")
    yield ServerSentEventMessage(
        data=render.piece("outcome_error", message=reason), event="outcome"
    )
    yield END


@get("/playground/stream")
async def playground_stream(request: Req) -> ServerSentEvent:
    """The run of a token, as SSE. A refused token still answers 200 with a
    ``refused`` event and ``end``: the SSE extension would reconnect after an error
    status, again and again, where ``end`` makes it close."""
    token = request.query_params.get("token", "")
    headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
    try:
        spec = _tokens(request).redeem(token, time.time())
    except Refused as exc:
        return ServerSentEvent(_refused(request, str(exc)), headers=headers)
    return ServerSentEvent(_run(request, spec), headers=headers)


HANDLERS: list[Any] = [playground_page, playground_route, playground_run, playground_stream]
