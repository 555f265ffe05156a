"""Errors of the Anthropic-compatible endpoint, in Anthropic's shape, through the
official ``anthropic`` SDK."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import pytest

from tests.fakes.openai_upstream import Status, Stream
from tests.integration._messages import KEY, MESSAGES, Client, post


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", None),
        (b'{"model": "up/x", "messages": [{"role": "user", "content": "hi"}]}', "max_tokens"),
        (b'{"model": "up/x", "max_tokens": 8, "messages": []}', "messages"),
        (
            b'{"model": "up/x", "max_tokens": 8, "messages": [{"role": "robot", "content": "hi"}]}',
            "messages[0].role",
        ),
        (
            b'{"model": "up/x", "max_tokens": 8, "messages": '
            b'[{"role": "user", "content": [{"type": "document"}]}]}',
            "messages[0].content[0].type",
        ),
        (
            b'{"model": "up/x", "max_tokens": 8, "messages": '
            b'[{"role": "user", "content": [{"type": "tool_use", "id": "c", "name": "n", '
            b'"input": {}}]}]}',
            "messages[0].content[0].type",
        ),
        (
            b'{"model": "up/x", "max_tokens": 8, "mcp_servers": [], '
            b'"messages": [{"role": "user", "content": "hi"}]}',
            "mcp_servers",
        ),
    ],
    ids=[
        "not-json",
        "no-max-tokens",
        "no-messages",
        "bad-role",
        "document",
        "misplaced",
        "unknown",
    ],
)
def test_bad_requests_get_invalid_request_errors_naming_the_field(
    make_gateway: Any, body: bytes, field: str | None
) -> None:
    gw = make_gateway()
    response = post(gw, body)
    assert response.status_code == 400
    payload = response.json()
    assert payload["type"] == "error" and payload["error"]["type"] == "invalid_request_error"
    if field is not None:
        assert payload["error"]["message"].startswith(f"{field}: ")


def test_sdk_raises_bad_request_error_for_a_bad_field(client: Client, make_gateway: Any) -> None:
    gw = make_gateway()
    with pytest.raises(anthropic.BadRequestError) as info:
        client(gw).messages.create(model="up/x", max_tokens=0, messages=MESSAGES)
    assert info.value.body["error"]["message"].startswith("max_tokens: ")  # type: ignore[index]


def test_wrong_key_raises_authentication_error(client: Client, make_gateway: Any) -> None:
    gw = make_gateway()
    with pytest.raises(anthropic.AuthenticationError) as info:
        client(gw, api_key="wrong").messages.create(model="up/x", max_tokens=8, messages=MESSAGES)
    assert info.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    response = httpx.post(
        f"{gw.base_url}/messages", json={"model": "up/x", "max_tokens": 8, "messages": MESSAGES}
    )
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_a_bearer_token_is_accepted_too(client: Client, make_gateway: Any, upstream: Any) -> None:
    upstream.script("m-bearer", Stream(["ok"]))
    gw = make_gateway()
    message = client(gw, api_key=None, auth_token=KEY).messages.create(
        model="up/m-bearer", max_tokens=8, messages=MESSAGES
    )
    assert message.content[0].text == "ok"  # type: ignore[union-attr]
    body = {"model": "up/m-bearer", "max_tokens": 8, "messages": MESSAGES}
    headers = {"authorization": f"Bearer {KEY}"}
    response = httpx.post(f"{gw.base_url}/messages", json=body, headers=headers)
    assert response.status_code == 200 and response.json()["content"][0]["text"] == "ok"


def test_unknown_model_raises_not_found_error(client: Client, make_gateway: Any) -> None:
    gw = make_gateway()
    with pytest.raises(anthropic.NotFoundError) as info:
        client(gw).messages.create(model="nope", max_tokens=8, messages=MESSAGES)
    assert info.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


@pytest.mark.parametrize("stream", [False, True], ids=["message", "stream"])
def test_rate_limited_everywhere_raises_rate_limit_error(
    client: Client, make_gateway: Any, upstream: Any, stream: bool
) -> None:
    upstream.script("m-429a", Status(429, headers={"retry-after": "60"}))
    upstream.script("m-429b", Status(429, headers={"retry-after": "60"}))
    gw = make_gateway(routes={"chat": {"targets": ["up/m-429a", "up/m-429b"]}})
    with pytest.raises(anthropic.RateLimitError) as info:
        client(gw).messages.create(model="chat", max_tokens=8, messages=MESSAGES, stream=stream)
    body: Any = info.value.body
    assert body["error"]["type"] == "rate_limit_error"
    assert [a["target"] for a in body["llmgate"]["attempts"]] == ["up/m-429a", "up/m-429b"]


def test_every_target_down_raises_an_api_error(
    client: Client, make_gateway: Any, upstream: Any
) -> None:
    upstream.script("m-down", Status(503))
    gw = make_gateway(routes={"chat": {"targets": ["up/m-down"], "max_retries": 0}})
    with pytest.raises(anthropic.InternalServerError) as info:
        client(gw).messages.create(model="chat", max_tokens=8, messages=MESSAGES)
    assert info.value.status_code == 502
    assert info.value.body["error"]["type"] == "api_error"  # type: ignore[index]


def test_every_target_overloaded_raises_overloaded_error(
    client: Client, make_gateway: Any, upstream: Any
) -> None:
    upstream.script("m-busy", Status(529))
    gw = make_gateway(routes={"chat": {"targets": ["up/m-busy"], "max_retries": 0}})
    with pytest.raises(anthropic.OverloadedError) as info:
        client(gw).messages.create(model="chat", max_tokens=8, messages=MESSAGES)
    assert info.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]


def test_errors_litestar_raises_on_this_path_are_anthropic_shaped(
    client: Client, make_gateway: Any
) -> None:
    gw = make_gateway()
    too_large = post(gw, b"x" * (11 * 1024 * 1024))
    wrong_method = httpx.get(f"{gw.base_url}/messages", headers={"x-api-key": KEY})
    assert (too_large.status_code, wrong_method.status_code) == (413, 405)
    assert too_large.json()["error"]["type"] == "request_too_large"
    assert wrong_method.json() == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "Method Not Allowed"},
    }
    with pytest.raises(anthropic.NotFoundError) as info:  # no such endpoint
        client(gw).post("/v1/messages/batches", body={}, cast_to=object)
    assert info.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    # The OpenAI endpoints keep OpenAI's shape.
    assert "type" not in httpx.get(f"{gw.base_url}/chat/completions").json()
