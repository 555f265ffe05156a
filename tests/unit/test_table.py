"""`RoutingTable`: compiles routes once and resolves model names."""

from __future__ import annotations

import pytest

from router.errors import ConfigError, NoSuchModel
from router.policy import RoutePolicy, Target
from router.table import RoutingTable
from tests.unit._fakes import FakeProvider

PROVIDERS = {"a": FakeProvider("a"), "b": FakeProvider("b")}


def test_resolves_a_route_by_name_to_its_targets_in_order() -> None:
    policy = RoutePolicy(targets=["b/big", "a/small"], max_retries=0)
    route = RoutingTable(PROVIDERS, {"smart": policy}).resolve("smart")

    assert route.name == "smart"
    assert route.policy is policy
    assert route.targets == (Target("b", "big"), Target("a", "small"))


def test_resolves_a_provider_model_target_with_the_default_policy() -> None:
    default = RoutePolicy(max_retries=5, stream_fallback_mode="prefill")
    route = RoutingTable(PROVIDERS, {}, default_policy=default).resolve("a/org/model-1")

    assert route.name == "a/org/model-1"
    assert route.targets == (Target("a", "org/model-1"),)
    assert route.policy.targets == ["a/org/model-1"]
    assert route.policy.max_retries == 5
    assert route.policy.stream_fallback_mode == "prefill"


def test_a_route_name_wins_over_a_target_of_the_same_name() -> None:
    policy = RoutePolicy(targets=["b/m"])
    route = RoutingTable(PROVIDERS, {"a/m": policy}).resolve("a/m")

    assert route.targets == (Target("b", "m"),)


@pytest.mark.parametrize("model", ["nope", "zz/model", "a/", "/m"])
def test_unknown_model_raises_no_such_model(model: str) -> None:
    table = RoutingTable(PROVIDERS, {"smart": RoutePolicy(targets=["a/m"])})

    with pytest.raises(NoSuchModel) as info:
        table.resolve(model)
    assert info.value.status == 404
    assert info.value.param == "model"


def test_unknown_provider_in_a_route_is_a_config_error_naming_the_target() -> None:
    with pytest.raises(ConfigError) as info:
        RoutingTable(PROVIDERS, {"smart": RoutePolicy(targets=["a/m", "zz/m"])})
    assert info.value.path == "routes.smart.targets[1]"


def test_route_without_targets_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        RoutingTable(PROVIDERS, {"empty": RoutePolicy()})
    assert info.value.path == "routes.empty.targets"


def test_model_ids_lists_routes_then_each_distinct_target() -> None:
    table = RoutingTable(
        PROVIDERS,
        {"smart": RoutePolicy(targets=["a/x", "b/y"]), "cheap": RoutePolicy(targets=["b/y"])},
    )

    assert table.model_ids() == ["smart", "cheap", "a/x", "b/y"]


@pytest.mark.parametrize(
    ("model", "target"),
    [
        ("claude-3-5-haiku-20241022", "anthropic/claude-3-5-haiku-20241022"),
        ("gemini-2.0-flash", "gemini/gemini-2.0-flash"),
        ("gpt-4o-mini", "openai/gpt-4o-mini"),
        ("o3-mini", "openai/o3-mini"),
    ],
)
def test_bare_model_names_resolve_to_their_provider_by_prefix(model: str, target: str) -> None:
    providers = {name: FakeProvider(name) for name in ("anthropic", "gemini", "openai")}
    resolved = RoutingTable(providers, {}).resolve(model)
    assert [t.name for t in resolved.targets] == [target]


def test_bare_model_name_of_an_unconfigured_provider_is_unknown() -> None:
    with pytest.raises(NoSuchModel, match="'claude-3-opus'"):
        RoutingTable({"openai": FakeProvider("openai")}, {}).resolve("claude-3-opus")
