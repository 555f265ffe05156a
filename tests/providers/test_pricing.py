"""Prices per target and the cost of a request, attempt by attempt."""

from __future__ import annotations

import pytest

from providers import decode_config
from providers.pricing import Price, PriceBook
from router.errors import ConfigError
from router.events import AttemptRecord, RequestRecord, Usage

BOOK = PriceBook(
    {
        "openai": {
            "gpt-4o-mini": Price(0.15, 0.60, cached_input_per_mtok=0.075),
            "*": Price(1.0, 2.0),
        },
        "groq": {"llama": Price(0.05, 0.08)},
    }
)


def attempt(target: str, usage: Usage | None, n: int = 1) -> AttemptRecord:
    return AttemptRecord(attempt=n, target=target, usage=usage)


def test_cached_prompt_tokens_are_charged_at_the_cached_price() -> None:
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=500_000, cached_tokens=400_000)
    cost = BOOK.price("openai/gpt-4o-mini").cost(usage)  # type: ignore[union-attr]
    assert cost == pytest.approx(600_000 * 0.15e-6 + 400_000 * 0.075e-6 + 500_000 * 0.60e-6)


def test_without_a_cached_price_cached_tokens_cost_the_input_price() -> None:
    usage = Usage(prompt_tokens=1000, completion_tokens=0, cached_tokens=1000)
    assert BOOK.price("groq/llama").cost(usage) == pytest.approx(1000 * 0.05e-6)  # type: ignore[union-attr]


def test_a_star_prices_every_other_model_of_its_provider() -> None:
    assert BOOK.price("openai/gpt-5") == Price(1.0, 2.0)
    assert BOOK.price("groq/other") is None
    assert BOOK.price("nobody/x") is None


def test_each_attempt_is_charged_at_its_own_targets_price() -> None:
    record = RequestRecord(
        request_id="r",
        route="chat",
        attempts=[
            attempt("groq/llama", Usage(100, 20, 120), 1),
            attempt("openai/gpt-4o-mini", None, 2),  # failed before any usage
            attempt("openai/gpt-4o-mini", Usage(130, 50, 180), 3),
        ],
    )
    expected = (100 * 0.05 + 20 * 0.08 + 130 * 0.15 + 50 * 0.60) / 1e6
    assert BOOK.cost(record) == pytest.approx(expected)


def test_an_attempt_without_a_price_leaves_the_cost_unknown_not_understated() -> None:
    record = RequestRecord(
        request_id="r",
        route="chat",
        attempts=[attempt("groq/llama", Usage(1, 1, 2)), attempt("other/m", Usage(1, 1, 2), 2)],
    )
    assert BOOK.cost(record) is None
    assert PriceBook({}).cost(RequestRecord(request_id="r", route="c")) == 0.0


def test_prices_are_validated_with_their_key_path() -> None:
    with pytest.raises(ConfigError) as caught:
        decode_config(
            {
                "providers": {
                    "openai": {
                        "kind": "openai",
                        "prices": {"gpt-4o": {"input_per_mtok": -1, "output_per_mtok": 1}},
                    }
                }
            },
            "test",
        )
    assert "providers.openai.prices[...].input_per_mtok" in str(caught.value)
