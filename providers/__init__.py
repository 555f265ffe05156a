"""Upstream adapters, one per file, each implementing `router.Provider`.

An HTTP kind is a config Struct (`_adapter.HTTPConfig` with its tag), an adapter
(`_adapter.HTTPAdapter` whose ``translate`` builds the request) and a `_stream.Reader`
of its events; it joins `ProviderConfig` and `build_provider` below, and its kit in
``tests/providers/_kits.py`` runs the whole adapter contract over its fake upstream.
"""

from __future__ import annotations

from collections.abc import Mapping

from providers._client import Transport, Upstream, make_client
from providers.anthropic import AnthropicConfig, AnthropicProvider
from providers.config import GatewayConfig, ProviderConfig, decode_config, load_config
from providers.gemini import GeminiConfig, GeminiProvider
from providers.mock import MockConfig, MockProvider
from providers.openai import OpenAIConfig, OpenAIProvider
from providers.pricing import PriceBook
from router.policy import Pool
from router.provider import Provider
from router.table import RoutingTable

__all__ = [
    "GatewayConfig",
    "ProviderConfig",
    "Transport",
    "Upstream",
    "build_provider",
    "build_table",
    "decode_config",
    "load_config",
    "make_client",
]


def build_provider(
    name: str, config: ProviderConfig, client: Upstream, env: Mapping[str, str]
) -> Provider:
    match config:
        case OpenAIConfig():
            return OpenAIProvider(name, config, client, env)
        case AnthropicConfig():
            return AnthropicProvider(name, config, client, env)
        case GeminiConfig():
            return GeminiProvider(name, config, client, env)
        case MockConfig():
            return MockProvider(name, config)


def build_table(
    config: GatewayConfig, client: Upstream, env: Mapping[str, str], revision: int = 0
) -> RoutingTable:
    """Compile a configuration into an immutable routing table."""
    providers = {
        name: build_provider(name, pc, client, env) for name, pc in config.providers.items()
    }
    return RoutingTable(
        providers,
        config.routes,
        default_policy=config.defaults,
        revision=revision,
        costs=_costs(config),
        limits={name: pc.limits for name, pc in config.providers.items()},
    )


def _costs(config: GatewayConfig) -> dict[str, float]:
    """Input and output price per million tokens of every priced pool member, the
    order of a ``lowest_cost`` pool."""
    book = PriceBook({name: pc.prices for name, pc in config.providers.items()})
    costs = {}
    for route in config.routes.values():
        for entry in route.targets:
            for target in entry.pool if isinstance(entry, Pool) else ():
                price = book.price(target)
                if price is not None:
                    costs[target] = price.input_per_mtok + price.output_per_mtok
    return costs
