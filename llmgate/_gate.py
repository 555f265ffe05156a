"""`LLMGate`: the library's entry point, a thin facade over the engine and adapters."""

from __future__ import annotations

import asyncio
import atexit
import os
import random
import time
import typing
import weakref
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import msgspec

from llmgate import _structured
from llmgate._bridge import LoopThread
from llmgate.errors import AllProvidersFailedError, LLMGateError, RequestError
from llmgate.middleware import Middleware
from llmgate.types import Call, CompletionResponse, EmbeddingResponse, EmbedInput, StreamChunk
from providers import Upstream, build_provider, make_client
from providers.config import GatewayConfig, ProviderConfig, convert, decode_config, load_config
from providers.presets import PRESETS
from router.collect import fold
from router.embedding import embed_inputs
from router.engine import Engine
from router.errors import ProviderError
from router.events import (
    AttemptFailed,
    AttemptStarted,
    Done,
    Event,
    Failed,
    ReasoningDelta,
    RefusalDelta,
    Reset,
    StreamSwitch,
    TextDelta,
    ToolCallDelta,
)
from router.policy import Reason, RoutePolicy
from router.provider import EmbedRequest, ProviderRequest
from router.table import RoutingTable, bare_provider

__all__ = ["LLMGate"]

_POLICY_KEYS = frozenset(f.name for f in msgspec.structs.fields(RoutePolicy)) - {"targets"}
_REASONS = frozenset(typing.get_args(Reason))


def _subclasses(cls: type[ProviderError]) -> list[type[ProviderError]]:
    out = [cls]
    sub: type[ProviderError]
    for sub in cls.__subclasses__():
        out += _subclasses(sub)
    return out


def _reasons(fallback_on: Any) -> list[str] | None:
    """``fallback_on`` as reason names: error classes (with their subclasses) or names."""
    if fallback_on is None:
        return None
    reasons: set[str] = set()
    for item in fallback_on:
        if isinstance(item, str):
            reasons.add(item)
        elif isinstance(item, type) and issubclass(item, ProviderError):
            reasons |= {c.reason for c in _subclasses(item)} & _REASONS
        else:
            raise RequestError(
                f"fallback_on takes error classes or reason names; got {item!r}",
                param="fallback_on",
            )
    return sorted(reasons)


class _Plan(msgspec.Struct):
    route: str
    policy: RoutePolicy
    providers: dict[str, ProviderConfig]
    env: dict[str, str]


class LLMGate:
    """Routes calls in-process with the same engine and adapters as the service.

    Providers and routes come from a TOML file (``config="llmgate.toml"``, the
    service's format) and/or dicts with the same keys as its tables
    (``providers={"local": {"kind": "openai", "base_url": "..."}}``). Other keyword
    arguments are defaults: route policy keys (``max_retries``, ``stall_timeout_s``,
    ...) or request parameters (``temperature``, ``max_tokens``, ...).
    Well-known providers (openai, groq, together, mistral, ...) need no configuration.
    """

    def __init__(
        self,
        middleware: list[Middleware] | None = None,
        *,
        providers: dict[str, Any] | None = None,
        routes: dict[str, Any] | None = None,
        config: str | Path | None = None,
        **defaults: Any,
    ) -> None:
        base = load_config(config) if config is not None else GatewayConfig()
        if providers or routes:
            data = msgspec.to_builtins(base)
            data["providers"] = {**data.get("providers", {}), **(providers or {})}
            data["routes"] = {**data.get("routes", {}), **(routes or {})}
            base = decode_config(data, "LLMGate")
        self._config = base
        overrides = {k: v for k, v in defaults.items() if k in _POLICY_KEYS}
        self._params = {k: v for k, v in defaults.items() if k not in _POLICY_KEYS}
        self._policy: RoutePolicy = convert(
            {**msgspec.to_builtins(base.defaults), **overrides}, RoutePolicy, "LLMGate", "defaults"
        )
        self._middleware = list(middleware or [])
        self._engine = Engine(clock=time.monotonic, rng=random.random)
        self._loop: LoopThread | None = None
        # One HTTP client per event loop the gate is used from (a client belongs to its
        # loop): its connections are kept alive across calls.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Upstream] = (
            weakref.WeakKeyDictionary()
        )
        atexit.register(_close_at_exit, weakref.ref(self))

    # --- public API ---------------------------------------------------------------

    async def acompletion(
        self,
        model: str | list[str],
        messages: list[dict[str, Any]],
        *,
        stream: bool = False,
        **options: Any,
    ) -> CompletionResponse | AsyncIterator[StreamChunk]:
        """Await an answer; with ``stream=True``, an async iterator of `StreamChunk`."""
        call = self._call(model, messages, stream, options)
        if stream:
            return self._stream_chain(0, call)
        return await self._completion_chain(0, call)

    def completion(
        self,
        model: str | list[str],
        messages: list[dict[str, Any]],
        *,
        stream: bool = False,
        **options: Any,
    ) -> CompletionResponse | Iterator[StreamChunk]:
        """The synchronous `acompletion`; with ``stream=True``, an iterator of chunks."""
        call = self._call(model, messages, stream, options)
        loop = self._loop_thread()
        if stream:
            return loop.iterate(self._stream_chain(0, call))
        return loop.run(self._completion_chain(0, call))

    def stream(
        self, model: str | list[str], messages: list[dict[str, Any]], **options: Any
    ) -> Iterator[StreamChunk]:
        call = self._call(model, messages, True, options)
        return self._loop_thread().iterate(self._stream_chain(0, call))

    def astream(
        self, model: str | list[str], messages: list[dict[str, Any]], **options: Any
    ) -> AsyncIterator[StreamChunk]:
        return self._stream_chain(0, self._call(model, messages, True, options))

    async def aembed(
        self,
        model: str | list[str],
        input: EmbedInput,
        *,
        dimensions: int | None = None,
        user: str | None = None,
        **options: Any,
    ) -> EmbeddingResponse:
        """The vectors of ``input`` (a text, texts, a token array or token arrays) from
        ``model``, a target, a route or a list of targets tried in order. Options:
        ``fallback_on``, ``api_key``, ``api_base``. Middleware does not apply."""
        call = self._embed_call(model, options)
        if dimensions is not None and (isinstance(dimensions, bool) or dimensions < 1):
            raise RequestError("dimensions must be a positive integer", param="dimensions")
        request = EmbedRequest(embed_inputs(input), dimensions, user)
        plan = self._plan(call)
        table = self._table(plan, self._client())
        request_id = "lib-" + os.urandom(8).hex()
        events = self._engine.embed(table, plan.route, request, request_id=request_id)
        outcome = fold([batch async for batch in events])
        if isinstance(outcome, Failed):
            raise _error(outcome, plan.policy)
        done = outcome.done
        provider, _, answered = done.model.partition("/")
        return EmbeddingResponse(
            embeddings=outcome.vectors or [],
            model=answered,
            provider=provider,
            usage=done.usage,
            fallback_attempts=[a.target for a in done.record.attempts if a.outcome == "failed"],
            record=done.record,
        )

    def embed(
        self,
        model: str | list[str],
        input: EmbedInput,
        *,
        dimensions: int | None = None,
        user: str | None = None,
        **options: Any,
    ) -> EmbeddingResponse:
        """The synchronous `aembed`."""
        self._embed_call(model, dict(options))  # configuration errors before the loop
        call = self.aembed(model, input, dimensions=dimensions, user=user, **options)
        return self._loop_thread().run(call)

    async def abatch(
        self,
        model: str | list[str],
        requests: Sequence[list[dict[str, Any]] | dict[str, Any]],
        *,
        concurrency: int = 8,
        **options: Any,
    ) -> list[CompletionResponse | LLMGateError]:
        """Many completions at once, at most ``concurrency`` in flight, each with its own
        retries and fallbacks: one result per request, in the requests' order, each the
        `CompletionResponse` or the error that request ended with (nothing else in the
        batch stops for it). A request is a message list, or a dict of ``messages`` and
        its own options (``{"messages": [...], "max_tokens": 20}``); ``options`` apply to
        every request. Middleware applies to each, as to `acompletion`."""
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise RequestError("concurrency must be a positive integer", param="concurrency")
        slots = asyncio.Semaphore(concurrency)

        async def one(request: list[dict[str, Any]] | dict[str, Any]) -> Any:
            own = dict(request) if isinstance(request, dict) else {"messages": request}
            messages = own.pop("messages", None)
            async with slots:
                try:
                    call = self._call(model, messages, False, {**options, **own})
                    return await self._completion_chain(0, call)
                except LLMGateError as exc:
                    return exc

        return list(await asyncio.gather(*(one(r) for r in requests)))

    def batch(
        self,
        model: str | list[str],
        requests: Sequence[list[dict[str, Any]] | dict[str, Any]],
        *,
        concurrency: int = 8,
        **options: Any,
    ) -> list[CompletionResponse | LLMGateError]:
        """The synchronous `abatch`."""
        call = self.abatch(model, requests, concurrency=concurrency, **options)
        return self._loop_thread().run(call)

    def close(self) -> None:
        """Close the HTTP connections of synchronous calls and stop their private event
        loop (async calls' connections: `aclose`). A gate not closed is closed at exit."""
        if self._loop is not None:
            client = self._clients.pop(self._loop.loop, None)
            if client is not None:
                self._loop.run(client.aclose())
            self._loop.close()
            self._loop = None

    async def aclose(self) -> None:
        """Close the HTTP connections the gate keeps for the running event loop."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    async def __aenter__(self) -> LLMGate:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _client(self) -> Upstream:
        """The running loop's HTTP client, kept across calls."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = make_client()
        return client

    def __enter__(self) -> LLMGate:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- calls -------------------------------------------------------------------

    def _call(self, model: Any, messages: Any, stream: bool, options: dict[str, Any]) -> Call:
        own = {k: options.pop(k) for k in list(options) if k in Call.__struct_fields__}
        call = Call(model=model, messages=messages, stream=stream, params=options, **own)
        if stream and call.response_format is not None:
            raise RequestError(
                "stream=True cannot be combined with response_format=: structured output "
                "needs the complete answer to validate it.",
                param="response_format",
            )
        if not isinstance(messages, list) or not messages:
            raise RequestError("messages must be a non-empty list", param="messages")
        self._plan(call)  # every configuration error surfaces now, before any network call
        return call

    def _embed_call(self, model: Any, options: dict[str, Any]) -> Call:
        own = {"fallback_on", "api_key", "api_base"}
        unknown = sorted(set(options) - own)
        if unknown:
            raise RequestError(
                f"embed() takes no option {', '.join(map(repr, unknown))}; it takes "
                "dimensions, user, fallback_on, api_key and api_base",
                param=unknown[0],
            )
        call = Call(model=model, messages=[], **options)
        self._plan(call)  # every configuration error surfaces now, before any network call
        return call

    def _loop_thread(self) -> LoopThread:
        if self._loop is None:
            self._loop = LoopThread()
        return self._loop

    def _stream_chain(self, index: int, call: Call) -> AsyncIterator[StreamChunk]:
        if index == len(self._middleware):
            return self._stream(call)
        return self._middleware[index].astream(call, lambda c: self._stream_chain(index + 1, c))

    async def _completion_chain(self, index: int, call: Call) -> CompletionResponse:
        if index == len(self._middleware):
            return await self._complete(call)
        return await self._middleware[index].acompletion(
            call, lambda c: self._completion_chain(index + 1, c)
        )

    # --- planning ------------------------------------------------------------------

    def _plan(self, call: Call) -> _Plan:
        models = [call.model] if isinstance(call.model, str) else list(call.model)
        if not models or not all(isinstance(m, str) and m for m in models):
            raise RequestError(
                "model must be a model name or a non-empty list of them", param="model"
            )
        overrides: dict[str, Any] = {
            k: v
            for k, v in (
                ("stream_fallback_mode", call.stream_fallback_mode),
                ("stream_resume_prompt", call.stream_resume_prompt),
                ("fallback_on", _reasons(call.fallback_on)),
            )
            if v is not None
        }
        route = self._config.routes.get(models[0]) if len(models) == 1 else None
        if route is not None:
            name, base = models[0], msgspec.to_builtins(route)
        else:
            name = models[0] if len(models) == 1 else "fallback"
            base = {
                **msgspec.to_builtins(self._policy),
                "targets": [self._target(m) for m in models],
            }
        policy: RoutePolicy = convert({**base, **overrides}, RoutePolicy, "call", "options")
        env = dict(os.environ)
        providers = {}
        for target in policy.members():
            provider = target.partition("/")[0]
            providers[provider] = self._provider(provider, call, env)
        return _Plan(name, policy, providers, env)

    def _target(self, model: str) -> str:
        provider, sep, _ = model.partition("/")
        if sep and (provider in self._config.providers or provider in PRESETS):
            return model
        bare = bare_provider(model)
        if bare is None:
            raise RequestError(
                f"cannot tell which provider serves {model!r}: name it as provider/model "
                f"(configured: {', '.join(sorted(self._config.providers)) or 'none'}; "
                f"built in: {', '.join(sorted(PRESETS))})",
                param="model",
            )
        return f"{bare}/{model}"

    def _provider(self, name: str, call: Call, env: dict[str, str]) -> ProviderConfig:
        config = self._config.providers.get(name)
        if config is None:
            if name not in PRESETS:
                raise RequestError(f"unknown provider {name!r}", param="model")
            config = convert(PRESETS[name], ProviderConfig, "presets", name)
            # Like the official SDKs' OPENAI_BASE_URL: point a preset elsewhere.
            url = env.get(f"{name.upper()}_BASE_URL")
            if url and hasattr(config, "base_url"):
                config = msgspec.structs.replace(config, base_url=url)
        if call.api_base is not None and hasattr(config, "base_url"):
            config = msgspec.structs.replace(config, base_url=call.api_base)
        if call.api_key is not None and hasattr(config, "api_key_env"):
            key_env = getattr(config, "api_key_env", None) or "LLMGATE_CALL_API_KEY"
            config = msgspec.structs.replace(config, api_key_env=key_env)
            env[key_env] = call.api_key
        return config

    # --- running -------------------------------------------------------------------

    async def _events(self, call: Call, plan: _Plan) -> AsyncIterator[list[Event]]:
        params = {**self._params, **call.params}
        if call.response_format is not None:
            params["response_format"] = _structured.wire_format(call.response_format)
        table = self._table(plan, self._client())
        request = ProviderRequest(call.messages, params)
        request_id = "lib-" + os.urandom(8).hex()
        # `StreamChunk.reset` tells library users to discard what they showed.
        events = self._engine.stream(
            table, plan.route, request, request_id=request_id, accept_reset=True
        )
        async for batch in events:
            yield batch

    @staticmethod
    def _table(plan: _Plan, client: Upstream) -> RoutingTable:
        providers = {n: build_provider(n, c, client, plan.env) for n, c in plan.providers.items()}
        return RoutingTable(providers, {plan.route: plan.policy})

    async def _stream(self, call: Call) -> AsyncIterator[StreamChunk]:
        plan = self._plan(call)
        failed: list[str] = []
        resumed = reset = False
        target = ""
        async for batch in self._events(call, plan):
            for event in batch:
                kind = type(event)
                if kind is TextDelta or kind is ToolCallDelta:
                    provider, _, model = target.partition("/")
                    is_text = kind is TextDelta
                    yield StreamChunk(
                        delta=event.text if is_text else "",  # type: ignore[union-attr]
                        tool_calls=[] if is_text else [event],  # type: ignore[list-item]
                        model=model,
                        provider=provider,
                        fallback_attempts=failed,
                        resumed_from_partial=resumed,
                        reset=reset,
                    )
                    failed, resumed, reset = [], False, False
                elif kind is ReasoningDelta or kind is RefusalDelta:
                    provider, _, model = target.partition("/")
                    text = event.text  # type: ignore[union-attr]
                    yield StreamChunk(
                        reasoning=text if kind is ReasoningDelta else "",
                        refusal=text if kind is RefusalDelta else "",
                        model=model,
                        provider=provider,
                        fallback_attempts=failed,
                    )
                    failed = []
                elif kind is AttemptStarted:
                    target = event.target  # type: ignore[union-attr]
                elif kind is AttemptFailed:
                    failed = [*failed, event.target]  # type: ignore[union-attr]
                elif kind is StreamSwitch:
                    resumed = True
                elif kind is Reset:
                    reset = True
                elif kind is Done:
                    done: Done = event  # type: ignore[assignment]
                    provider, _, model = done.model.partition("/")
                    yield StreamChunk(
                        model=model,
                        provider=provider,
                        usage=done.usage,
                        finish_reason=done.finish_reason,
                        fallback_attempts=failed,
                    )
                elif kind is Failed:
                    raise _error(event, plan.policy)  # type: ignore[arg-type]

    async def _complete(self, call: Call) -> CompletionResponse:
        plan = self._plan(call)
        outcome = fold([batch async for batch in self._events(call, plan)])
        if isinstance(outcome, Failed):
            raise _error(outcome, plan.policy)
        done = outcome.done
        provider, _, model = done.model.partition("/")
        response = CompletionResponse(
            text=outcome.text,
            model=model,
            provider=provider,
            finish_reason=done.finish_reason,
            usage=done.usage,
            tool_calls=outcome.tool_calls,
            record=done.record,
            fallback_attempts=[a.target for a in done.record.attempts if a.outcome == "failed"],
            reasoning=outcome.reasoning,
            refusal=outcome.refusal,
        )
        if call.response_format is not None and not outcome.refusal:
            response.parsed = _structured.parse(call.response_format, outcome.text)
        return response


def _close_at_exit(gate: weakref.ref[LLMGate]) -> None:
    alive = gate()
    if alive is not None:
        alive.close()


def _error(failed: Failed, policy: RoutePolicy) -> LLMGateError:
    """A failure that ended the request by itself (content policy, outside
    ``fallback_on``, the total timeout) is raised as itself; otherwise every target
    failed."""
    error = failed.error
    if isinstance(error, ProviderError) and (
        not error.fallback
        or (policy.fallback_on is not None and error.reason not in policy.fallback_on)
    ):
        return error
    if not failed.errors and isinstance(error, LLMGateError):
        return error  # nothing was tried: every target's breaker was open
    return AllProvidersFailedError(list(failed.errors), partial=failed.partial)
