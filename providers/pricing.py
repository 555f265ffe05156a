"""Prices per target, and the cost of a request from the usage its attempts reported.

A provider's ``prices`` table maps a model name (or ``"*"``, every other model of that
provider) to a `Price` in USD per million tokens::

    [providers.openai.prices."gpt-4o-mini"]
    input_per_mtok = 0.15
    output_per_mtok = 0.60
    cached_input_per_mtok = 0.075   # where the provider discounts cached prompt tokens

Each attempt is charged at its own target's price for the usage it reported, so a
request that fell back pays for both targets. Prompt tokens include the cached ones (as
every adapter reports them); cached tokens are charged at ``cached_input_per_mtok``, or
the input price where there is none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import msgspec
from msgspec import Meta

from router.events import RequestRecord, Usage

__all__ = ["Price", "PriceBook"]

Rate = Annotated[float, Meta(ge=0, le=1_000_000)]


class Price(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    """USD per million tokens."""

    input_per_mtok: Rate
    output_per_mtok: Rate
    cached_input_per_mtok: Rate | None = None

    def cost(self, usage: Usage) -> float:
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        cached_rate = (
            self.input_per_mtok
            if self.cached_input_per_mtok is None
            else self.cached_input_per_mtok
        )
        return (
            (usage.prompt_tokens - cached) * self.input_per_mtok
            + cached * cached_rate
            + usage.completion_tokens * self.output_per_mtok
        ) / 1_000_000


class PriceBook:
    """Every provider's prices, looked up by target (``provider/model``)."""

    def __init__(self, prices: Mapping[str, Mapping[str, Price]]) -> None:
        self._by_provider = {name: dict(table) for name, table in prices.items() if table}

    def __bool__(self) -> bool:
        return bool(self._by_provider)

    def price(self, target: str) -> Price | None:
        provider, _, model = target.partition("/")
        table = self._by_provider.get(provider)
        if table is None:
            return None
        return table.get(model) or table.get("*")

    def cost(self, record: RequestRecord) -> float | None:
        """What the request cost: the sum over its attempts that reported usage, each at
        its target's price. None when one of them has no price: a partial sum would
        pass for the whole."""
        total = 0.0
        for attempt in record.attempts:
            if attempt.usage is None:
                continue
            price = self.price(attempt.target)
            if price is None:
                return None
            total += price.cost(attempt.usage)
        return total
