"""Simulated runs: a route's fallbacks rehearsed on private copies of its mock providers.

A simulated run injects a failure into the route's first mock target and runs on a
private `Engine` over `simulated_table`: it trips no real breaker, is neither logged nor
counted, and says so on the page. The route's other targets are the real ones, so a
route that falls back to a real provider really calls it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import msgspec

from providers.mock import MockConfig, MockProvider
from router.errors import NoSuchModel
from router.events import Chunk
from router.provider import AttemptOptions, EmbedRequest, Provider, ProviderRequest
from router.table import ResolvedRoute, RoutingTable

__all__ = ["SIMULATIONS", "RouteInfo", "Simulate", "route_info", "simulated_table"]

Simulate = Literal["none", "fail", "cut", "stall", "slow"]
SIMULATIONS: tuple[tuple[Simulate, str], ...] = (
    ("none", "none: a real request"),
    ("fail", "fail before the first token (HTTP 503)"),
    ("cut", "cut the stream after N words"),
    ("stall", "stall after N words"),
    ("slow", "send the first token after N ms (rehearses a hedge)"),
)


@dataclass(frozen=True, slots=True)
class RouteInfo:
    """A route as the playground shows it."""

    name: str
    targets: list[str]
    mode: str
    max_retries: int
    request_timeout_s: float
    mock_target: str | None
    """The first target served by a mock provider: where a failure can be simulated."""
    hedge_after_s: float | str | None = None


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
        hedge_after_s=route.policy.hedge_after_s,
    )


def _mock_index(table: RoutingTable, route: ResolvedRoute) -> int | None:
    for i, target in enumerate(route.targets):
        if isinstance(table.providers.get(target.provider), MockProvider):
            return i
    return None


class _OneModelInjected:
    """A mock provider whose one model fails as simulated while its others answer as
    configured: the failure hits the route's first mock target only, even when the
    route's other targets are models of the same provider."""

    supports_embeddings: ClassVar[bool] = MockProvider.supports_embeddings

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
        return self._of(model).stream(model, request, options)

    def embed(
        self, model: str, request: EmbedRequest, options: AttemptOptions
    ) -> AsyncGenerator[list[Chunk], None]:
        return self._of(model).embed(model, request, options)

    def _of(self, model: str) -> MockProvider:
        return self._injected if model == self._model else self._base


def _inject(config: MockConfig, simulate: Simulate, n: int) -> MockConfig:
    """The simulated failure alone: the mock's own configured failures are cleared."""
    clear: dict[str, Any] = {
        "fail_status": None,
        "cut_after": None,
        "stall_after": None,
        "first_token_latency_ms": 0.0,
    }
    if simulate == "fail":
        return msgspec.structs.replace(
            config, **{**clear, "fail_status": 503, "fail_times": None, "retry_after_s": None}
        )
    if simulate == "cut":
        return msgspec.structs.replace(config, **{**clear, "cut_after": n})
    if simulate == "stall":
        return msgspec.structs.replace(config, **{**clear, "stall_after": n})
    if simulate == "slow":
        return msgspec.structs.replace(config, **{**clear, "first_token_latency_ms": float(n)})
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
