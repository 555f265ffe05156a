"""When llmgate gives up, the official SDKs at their default settings (two retries) must
not run the whole route again: one client call costs exactly the upstream attempts the
route's policy allows, counted at the fake upstream."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest

from tests.fakes.openai_upstream import Status

MESSAGES: list[Any] = [{"role": "user", "content": "Tell me something."}]
# Two targets, each tried once and retried once: four upstream attempts in all.
DEAD_ROUTE = {"targets": ["up/dead-1", "up/dead-2"], "max_retries": 1}
POLICY_ATTEMPTS = 4


def upstream_calls(upstream: Any, *models: str) -> int:
    return sum(len(upstream.requests_for(model)) for model in models)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_openai_sdk_call_on_a_dead_route_costs_only_the_policys_attempts(
    make_gateway: Any, upstream: Any, stream: bool
) -> None:
    upstream.script("dead-1", Status(503))
    upstream.script("dead-2", Status(502))
    gw = make_gateway(routes={"chat": DEAD_ROUTE})
    sdk = gw.client(max_retries=2)  # the SDK's default
    with pytest.raises(openai.APIStatusError) as info:
        sdk.chat.completions.create(model="chat", messages=MESSAGES, stream=stream)
    assert upstream_calls(upstream, "dead-1", "dead-2") == POLICY_ATTEMPTS
    assert info.value.status_code == 502
    assert info.value.response.headers["x-should-retry"] == "false"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_anthropic_sdk_call_on_a_dead_route_costs_only_the_policys_attempts(
    make_gateway: Any, upstream: Any, stream: bool
) -> None:
    upstream.script("dead-1", Status(503))
    upstream.script("dead-2", Status(502))
    gw = make_gateway(routes={"chat": DEAD_ROUTE})
    sdk = gw.anthropic(max_retries=2)  # the SDK's default
    with pytest.raises(anthropic.APIStatusError) as info:
        sdk.messages.create(model="chat", max_tokens=64, messages=MESSAGES, stream=stream)
    assert upstream_calls(upstream, "dead-1", "dead-2") == POLICY_ATTEMPTS
    assert info.value.status_code == 502
    assert info.value.response.headers["x-should-retry"] == "false"


def test_every_target_without_the_model_is_a_404_model_not_found(
    make_gateway: Any, upstream: Any
) -> None:
    gw = make_gateway(routes={"chat": {"targets": ["up/gone-1", "up/gone-2"]}})  # unscripted: 404
    with pytest.raises(openai.NotFoundError) as info:
        gw.client(max_retries=2).chat.completions.create(model="chat", messages=MESSAGES)
    assert info.value.code == "model_not_found"
    assert upstream_calls(upstream, "gone-1", "gone-2") == 2
    with pytest.raises(anthropic.NotFoundError):
        gw.anthropic(max_retries=2).messages.create(model="chat", max_tokens=8, messages=MESSAGES)
    assert upstream_calls(upstream, "gone-1", "gone-2") == 4
