"""Clients that retry on the status alone (the Vercel AI SDK) get a final failure
replayed instead of the route run again; every other client is served anew."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from server.core.retry_guard import RetryGuard
from tests.fakes.openai_upstream import Status, Stream
from tests.integration.conftest import KEY

AI_SDK = "ai-sdk/openai-compatible/2.0.92 ai-sdk/provider-utils/4.0.66 runtime/node.js/v20"
BODY = {"model": "chat", "messages": [{"role": "user", "content": "Hi"}], "stream": True}
DEAD_ROUTE = {"targets": ["up/dead-1", "up/dead-2"], "max_retries": 1}


def post(gw: Any, user_agent: str, body: dict[str, Any] = BODY) -> httpx.Response:
    headers = {"authorization": f"Bearer {KEY}", "user-agent": user_agent}
    return httpx.post(f"{gw.base_url}/chat/completions", json=body, headers=headers)


def calls(upstream: Any) -> int:
    return len(upstream.requests_for("dead-1")) + len(upstream.requests_for("dead-2"))


def test_an_ai_sdk_retry_of_a_request_llmgate_gave_up_on_costs_no_upstream_call(
    make_gateway: Any, upstream: Any
) -> None:
    upstream.script("dead-1", Status(503))
    upstream.script("dead-2", Status(503))
    gw = make_gateway(routes={"chat": DEAD_ROUTE})

    first = post(gw, AI_SDK)
    again = post(gw, AI_SDK)

    assert (first.status_code, calls(upstream)) == (502, 4)
    assert (again.status_code, again.json(), calls(upstream)) == (502, first.json(), 4)
    assert again.headers["x-llmgate-retry-guard"] == "replayed"
    assert again.headers["x-should-retry"] == "false"
    assert "x-llmgate-retry-guard" not in first.headers
    # Another request is served anew, even from the same client.
    upstream.script("dead-1", Stream(["back"]))
    changed = post(gw, AI_SDK, {**BODY, "messages": [{"role": "user", "content": "Hello"}]})
    assert changed.status_code == 200


@pytest.mark.parametrize("user_agent", ["OpenAI/Python 3.57.0", "curl/8.5.0"])
def test_other_clients_are_never_replayed_a_failure(
    make_gateway: Any, upstream: Any, user_agent: str
) -> None:
    upstream.script("dead-1", Status(503))
    upstream.script("dead-2", Status(503))
    gw = make_gateway(routes={"chat": DEAD_ROUTE})

    assert post(gw, user_agent).status_code == 502
    upstream.script("dead-1", Stream(["back"]))

    assert post(gw, user_agent).status_code == 200
    assert calls(upstream) == 5


def test_the_guard_can_be_turned_off(make_gateway: Any, upstream: Any) -> None:
    upstream.script("dead-1", Status(503))
    upstream.script("dead-2", Status(503))
    gw = make_gateway(routes={"chat": DEAD_ROUTE}, server={"retry_guard_s": 0})

    post(gw, AI_SDK)
    post(gw, AI_SDK)

    assert calls(upstream) == 8


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_failure_is_replayed_for_the_window_or_until_its_retry_after() -> None:
    clock = Clock()
    guard = RetryGuard(10.0, ["ai-sdk/"], clock=clock)
    plain = guard.fingerprint(AI_SDK, "key_1", "/v1/chat/completions", b"{}")
    limited = guard.fingerprint(AI_SDK, "key_1", "/v1/chat/completions", b"{1}")
    assert plain is not None and limited is not None
    assert guard.fingerprint("curl/8", "key_1", "/v1/chat/completions", b"{}") is None
    assert guard.fingerprint(AI_SDK, "key_2", "/v1/chat/completions", b"{}") != plain
    guard.remember(plain, 502, b"{}", {}, None)
    guard.remember(limited, 429, b"{}", {}, 2.0)

    clock.now += 1.9
    assert guard.recall(plain) is not None and guard.recall(limited) is not None
    clock.now += 0.2  # the client waited the Retry-After it was told: served anew
    assert guard.recall(limited) is None and guard.recall(plain) is not None
    clock.now += 8.0
    assert guard.recall(plain) is None


def test_the_guard_forgets_the_oldest_beyond_its_bound() -> None:
    guard = RetryGuard(10.0, ["ai-sdk/"], clock=Clock(), max_entries=2)
    keys = [guard.fingerprint(AI_SDK, "k", "/p", bytes([i])) for i in range(3)]
    for key in keys:
        assert key is not None
        guard.remember(key, 502, b"{}", {}, None)
    assert [guard.recall(k) is not None for k in keys if k] == [False, True, True]
