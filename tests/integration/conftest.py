"""A real gateway on 127.0.0.1 (uvicorn in a thread) in front of a fake upstream."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import openai
import pytest

from providers import decode_config
from server.app import create_app
from tests.fakes.anthropic_upstream import AnthropicUpstream
from tests.fakes.openai_upstream import FakeUpstream
from tests.harness import ServedApp

# Short timeouts and backoffs so failure tests finish in milliseconds.
FAST_POLICY: dict[str, Any] = {
    "max_retries": 2,
    "backoff_base_s": 0.001,
    "backoff_max_s": 0.005,
    "max_retry_after_s": 1.0,
    "connect_timeout_s": 1.0,
    "first_token_timeout_s": 0.5,
    "stall_timeout_s": 0.3,
    "request_timeout_s": 5.0,
}
KEY = "sk-test-master"
Client = Callable[..., anthropic.Anthropic]
"""``client(gw, **options)``: the anthropic SDK for a gateway (the ``client`` fixture)."""


class RunningGateway:
    """A gateway app served on loopback (`tests.harness.ServedApp`), with SDK clients
    for it that are closed when it stops."""

    def __init__(self, config: dict[str, Any], env: dict[str, str]) -> None:
        self.app = create_app(decode_config(config, "test-config"), env=env)
        self._served = ServedApp(self.app)
        self.port = self._served.port
        self.base_url = f"{self._served.url}/v1"
        self._clients: list[openai.OpenAI | anthropic.Anthropic] = []

    def client(self, **kwargs: Any) -> openai.OpenAI:
        """The openai SDK, without its own retries unless ``max_retries`` says otherwise."""
        kwargs.setdefault("max_retries", 0)
        sdk = openai.OpenAI(base_url=self.base_url, api_key=KEY, **kwargs)
        self._clients.append(sdk)
        return sdk

    def anthropic(self, **kwargs: Any) -> anthropic.Anthropic:
        """The anthropic SDK (which appends ``/v1/messages`` to its base URL), without its
        own retries unless ``max_retries`` says otherwise."""
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("api_key", KEY)
        base_url = self.base_url.removesuffix("/v1")
        sdk = anthropic.Anthropic(base_url=base_url, **kwargs)
        self._clients.append(sdk)
        return sdk

    def stop(self) -> None:
        for sdk in self._clients:
            sdk.close()
        self._served.stop()


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def make_gateway(upstream: FakeUpstream) -> Iterator[Any]:
    """``make_gateway(routes={...}, providers={...}, **sections)`` starts a gateway whose
    provider ``up`` is the fake upstream (prefill-capable) and ``noprefill`` the same
    upstream without prefill support."""
    started: list[RunningGateway] = []

    def make(
        routes: dict[str, Any] | None = None,
        providers: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        **sections: Any,
    ) -> RunningGateway:
        config = {
            "defaults": dict(FAST_POLICY),
            "providers": {
                "up": {
                    "kind": "openai",
                    "base_url": upstream.base_url,
                    "supports_prefill": True,
                    "api_key_env": "UP_KEY",
                },
                "noprefill": {"kind": "openai", "base_url": upstream.base_url},
                **(providers or {}),
            },
            "routes": {name: {**FAST_POLICY, **route} for name, route in (routes or {}).items()},
            **sections,
        }
        gw = RunningGateway(
            config, env if env is not None else {"LLMGATE_MASTER_KEY": KEY, "UP_KEY": "sk-upstream"}
        )
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.stop()


@pytest.fixture
def client() -> Iterator[Client]:  # the Messages endpoint's tests
    """``client(gw, **options)``: an SDK client for a gateway, closed after the test."""
    made: list[anthropic.Anthropic] = []

    def make(gw: Any, **kwargs: Any) -> anthropic.Anthropic:
        options = {"api_key": KEY, **kwargs}
        # The SDK appends "/v1/messages" to its base URL.
        sdk = anthropic.Anthropic(
            base_url=gw.base_url.removesuffix("/v1"), max_retries=0, **options
        )
        made.append(sdk)
        return sdk

    yield make
    for sdk in made:
        sdk.close()


@pytest.fixture
def claude_upstream() -> Iterator[AnthropicUpstream]:
    with AnthropicUpstream() as fake:
        yield fake
