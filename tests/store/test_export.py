"""`to_toml`: what ``config export`` writes reads back as the same configuration."""

from __future__ import annotations

import msgspec
import pytest

from providers import decode_config
from providers.anthropic import AnthropicConfig
from providers.config import GatewayConfig
from router.errors import ConfigError
from server.store import to_toml

EVERYTHING = {
    "defaults": {"max_retries": 0, "breaker": {"failure_threshold": 2}},
    "providers": {
        "a": {"kind": "anthropic", "no_prefill_models": ["claude-x"], "default_max_tokens": 9},
        "g": {"kind": "gemini", "api_version": "v1"},
        "o": {"kind": "openai", "base_url": "http://h/v1", "headers": {"X-A b": "c"}},
        "m": {"kind": "mock", "text": "hi there", "fail_status": 503, "fail_times": 1},
    },
    "routes": {
        "r": {
            "targets": ["o/gpt", "a/claude-x"],
            "stream_fallback_mode": "user_turn",
            "fallback_on": ["timeout", "rate_limited"],
            "breaker": {"cooldown_s": 1.5},
            "request_timeout_s": 12.5,
        },
        "plain": {"targets": ["m/x"]},
    },
}


def reread(text: str) -> GatewayConfig:
    return decode_config(msgspec.toml.decode(text.encode()), "export")


def test_export_reads_back_as_the_same_configuration() -> None:
    config = decode_config(EVERYTHING, "test")
    assert reread(to_toml(config, revision=7)) == config


def test_export_writes_only_what_differs_from_the_defaults() -> None:
    text = to_toml(decode_config(EVERYTHING, "test"))
    assert "[routes.plain]\ntargets = [\n" in text
    assert '[providers.m]\nkind = "mock"\ntext = "hi there"\n' in text
    assert "stream_resume_prompt" not in text
    assert "[defaults.breaker]\nfailure_threshold = 2\n" in text


def test_export_of_an_empty_configuration_is_an_empty_file_that_applies() -> None:
    assert reread(to_toml(GatewayConfig())) == GatewayConfig()


def test_export_refuses_a_value_toml_cannot_write() -> None:
    config = GatewayConfig(providers={"a": AnthropicConfig(api_key_env=None)})
    with pytest.raises(ConfigError, match=r"providers\.a\.api_key_env: cannot be written as TOML"):
        to_toml(config)


def test_a_route_with_pools_exports_and_reads_back_the_same() -> None:
    config = decode_config(
        {
            "providers": {"m": {"kind": "mock"}, "n": {"kind": "mock"}},
            "routes": {
                "r": {
                    "targets": [
                        {"pool": ["m/x", "n/x"], "balance": "weighted", "weights": [3, 1]},
                        {"pool": ["m/y", "n/y"], "balance": "least_latency"},
                        "m/z",
                    ]
                }
            },
        },
        "test",
    )
    text = to_toml(config)
    assert 'balance = "least_latency"' in text
    assert reread(text) == config
