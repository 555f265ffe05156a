"""load_config: a valid file decodes; every mistake names the file and the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from providers.config import GatewayConfig, ServerSettings, load_config
from providers.mock import MockConfig
from providers.openai import OpenAIConfig
from router.errors import ConfigError
from router.policy import BreakerPolicy, RoutePolicy

EXAMPLE = Path(__file__).parents[2] / "config.example.toml"

VALID = """
[server]
upstream_transport = "httpx"

[defaults]
max_retries = 1

[providers.openai]
kind = "openai"
api_key_env = "OPENAI_API_KEY"

[providers.local]
kind = "openai"
base_url = "http://127.0.0.1:8080/v1"
supports_prefill = true
headers = { x-team = "search" }

[providers.demo]
kind = "mock"
tokens = 8
cut_after = 4

[routes.chat]
targets = ["openai/gpt-4o-mini", "local/llama-3", "demo/any"]
stream_fallback_mode = "prefill"
max_retries = 3
stall_timeout_s = 5.5

[routes.chat.breaker]
failure_threshold = 2
"""

# Providers and a route that the invalid cases below each break in one place.
BASE = """
[providers.demo]
kind = "mock"

[routes.chat]
targets = ["demo/a"]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "llmgate.toml"
    path.write_text(text)
    return path


def test_a_valid_file_decodes_into_typed_policies(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, VALID))
    assert isinstance(config, GatewayConfig)
    assert config.server == ServerSettings(upstream_transport="httpx")
    assert config.defaults == RoutePolicy(max_retries=1)
    assert config.providers == {
        "openai": OpenAIConfig(api_key_env="OPENAI_API_KEY"),
        "local": OpenAIConfig(
            base_url="http://127.0.0.1:8080/v1", supports_prefill=True, headers={"x-team": "search"}
        ),
        "demo": MockConfig(tokens=8, cut_after=4),
    }
    assert config.routes["chat"] == RoutePolicy(
        targets=["openai/gpt-4o-mini", "local/llama-3", "demo/any"],
        stream_fallback_mode="prefill",
        max_retries=3,
        stall_timeout_s=5.5,
        breaker=BreakerPolicy(failure_threshold=2),
    )


def test_an_empty_file_is_all_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")) == GatewayConfig()


def test_the_example_config_is_valid() -> None:
    assert load_config(EXAMPLE).routes


@pytest.mark.parametrize(
    ("extra", "key_path", "detail"),
    [
        pytest.param(
            "max_retrys = 3\n", "routes.chat", "unknown field `max_retrys`", id="unknown-route-key"
        ),
        pytest.param(
            'max_retries = "two"\n',
            "routes.chat.max_retries",
            "Expected `int`, got `str`",
            id="wrong-type",
        ),
        pytest.param("max_retries = 11\n", "routes.chat.max_retries", "<= 10", id="out-of-range"),
        pytest.param(
            'stream_fallback_mode = "retry"\n',
            "routes.chat.stream_fallback_mode",
            "expected one of prefill, restart, terminate, user_turn",
            id="bad-mode",
        ),
        pytest.param(
            "[routes.chat.breaker]\ncooldown_s = 0\n",
            "routes.chat.breaker.cooldown_s",
            "> 0",
            id="nested-key",
        ),
        pytest.param(
            '[routes.other]\ntargets = ["nowhere/a"]\n',
            "routes.other.targets[0]",
            "unknown provider 'nowhere'",
            id="unknown-provider-in-target",
        ),
        pytest.param(
            '[routes.other]\ntargets = ["no-model"]\n',
            "routes.other.targets[0]",
            "",
            id="target-without-model",
        ),
        pytest.param(
            "[routes.empty]\n",
            "routes.empty.targets",
            "at least one target",
            id="route-without-targets",
        ),
        pytest.param(
            '[providers.x]\nkind = "vertex"\n',
            "providers.x.kind",
            "expected one of openai, anthropic, gemini, mock",
            id="unknown-provider-kind",
        ),
        pytest.param(
            '[providers.y]\nkind = "mock"\ntokens = 0\n',
            "providers.y.tokens",
            ">= 1",
            id="provider-constraint",
        ),
        pytest.param(
            '[server]\nupstream_transport = "curl"\n',
            "server.upstream_transport",
            "expected one of aiohttp, httpx",
            id="server-setting",
        ),
        pytest.param(
            "[logging]\nlevel = 1\n", "logging", "unknown section 'logging'", id="unknown-section"
        ),
    ],
)
def test_an_invalid_file_is_rejected_naming_the_file_and_key_path(
    tmp_path: Path, extra: str, key_path: str, detail: str
) -> None:
    path = write(tmp_path, BASE + extra)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {key_path}: "), message
    assert detail in message


def test_invalid_toml_is_rejected_naming_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[providers\n")
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read") as info:
        load_config(tmp_path / "absent.toml")
    assert "absent.toml" in str(info.value)
