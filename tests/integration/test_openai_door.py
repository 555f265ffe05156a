"""What the OpenAI door promises besides the answer itself: request ids, the reset marker
only on request, models by id, OpenAI's errors for unknown URLs and bad requests."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.fakes.openai_upstream import Stream
from tests.integration.conftest import KEY

MESSAGES: list[Any] = [{"role": "user", "content": "Tell me something."}]
AUTH = {"authorization": f"Bearer {KEY}"}


def post(gw: Any, body: bytes | dict[str, Any], path: str = "/chat/completions") -> httpx.Response:
    headers = {**AUTH, "content-type": "application/json"}
    if isinstance(body, bytes):
        return httpx.post(f"{gw.base_url}{path}", content=body, headers=headers)
    return httpx.post(f"{gw.base_url}{path}", json=body, headers=headers)


# --- request ids -------------------------------------------------------------------


def test_every_response_carries_its_request_id(make_gateway: Any, upstream: Any) -> None:
    upstream.script("m-id", Stream(["Hi"]))
    gw = make_gateway()
    sdk = gw.client()
    completion = sdk.chat.completions.create(model="up/m-id", messages=MESSAGES)
    assert completion._request_id == completion.id  # what the SDK reads: x-request-id
    with sdk.chat.completions.with_streaming_response.create(
        model="up/m-id", messages=MESSAGES, stream=True
    ) as streamed:
        headers = streamed.headers
        assert headers["x-request-id"] == headers["x-llmgate-request-id"]
        assert headers["x-request-id"].startswith("chatcmpl-")
    with pytest.raises(openai.NotFoundError) as info:
        sdk.chat.completions.create(model="nope", messages=MESSAGES)
    assert info.value.request_id and info.value.request_id.startswith("chatcmpl-")
    assert sdk.models.with_raw_response.list().headers["x-request-id"]
    refused = httpx.get(f"{gw.base_url}/models", headers={"authorization": "Bearer wrong"})
    assert refused.status_code == 401 and refused.headers["x-request-id"]
    assert httpx.get(f"{gw.base_url}/nowhere").headers["x-request-id"]


# --- the reset marker, only for a client that asks ------------------------------------


def test_a_client_that_accepts_resets_gets_the_marker(make_gateway: Any, upstream: Any) -> None:
    upstream.script("m-r1", Stream(["First ", "draft"], end="cut", after=1))
    upstream.script("m-r2", Stream(["Second ", "answer."]))
    gw = make_gateway(
        routes={"chat": {"targets": ["up/m-r1", "up/m-r2"], "stream_fallback_mode": "restart"}}
    )
    chunks = list(
        gw.client().chat.completions.create(
            model="chat",
            messages=MESSAGES,
            stream=True,
            extra_headers={"x-llmgate-accept-reset": "1"},
        )
    )
    resets = [c for c in chunks if (getattr(c, "llmgate", None) or {}).get("reset")]
    assert len(resets) == 1  # (without the header: test_chat_e2e's restart tests)


# --- models ------------------------------------------------------------------------


def test_a_model_is_found_by_its_id_even_with_a_slash(make_gateway: Any) -> None:
    gw = make_gateway(routes={"chat": {"targets": ["up/a", "noprefill/b/c"]}})
    sdk = gw.client()
    route = sdk.models.retrieve("chat")
    assert (route.id, route.object, route.owned_by) == ("chat", "model", "llmgate")
    target = sdk.models.retrieve("noprefill/b/c")
    assert (target.id, target.owned_by) == ("noprefill/b/c", "noprefill")
    assert [m.id for m in sdk.models.list()] == ["chat", "up/a", "noprefill/b/c"]


def test_an_unknown_model_id_is_a_404_model_not_found(make_gateway: Any) -> None:
    gw = make_gateway(routes={"chat": {"targets": ["up/a"]}})
    with pytest.raises(openai.NotFoundError) as info:
        gw.client().models.retrieve("nope")
    assert info.value.code == "model_not_found"
    assert info.value.body["type"] == "invalid_request_error"  # type: ignore[index]


# --- unknown URLs ------------------------------------------------------------------


def test_an_unknown_url_is_named_the_way_openai_names_it(make_gateway: Any) -> None:
    gw = make_gateway()
    with pytest.raises(openai.NotFoundError) as info:
        gw.client().post("/embeddings/nowhere", body={}, cast_to=object)
    body: Any = info.value.body
    assert body["message"] == "Invalid URL (POST /v1/embeddings/nowhere)"
    assert (body["type"], body["code"]) == ("invalid_request_error", None)
    wrong_method = httpx.get(f"{gw.base_url}/chat/completions", headers=AUTH)
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == {
        "message": "Invalid URL (GET /v1/chat/completions)",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


# --- bad requests, refused as OpenAI refuses them ---------------------------------------

USER = b'[{"role": "user", "content": "hi"}]'


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        (b'{"messages": ' + USER + b"}", "model", "missing_required_parameter"),
        (b'{"model": "up/x"}', "messages", "missing_required_parameter"),
        (b'{"model": 7, "messages": ' + USER + b"}", "model", "invalid_type"),
        (b'{"model": "up/x", "messages": []}', "messages", "empty_array"),
        (b'{"model": "up/x", "messages": {}}', "messages", "invalid_type"),
        (
            b'{"model": "up/x", "messages": [{"content": "hi"}]}',
            "messages[0].role",
            "missing_required_parameter",
        ),
        (
            b'{"model": "up/x", "messages": [{"role": "robot", "content": "hi"}]}',
            "messages[0].role",
            "invalid_value",
        ),
        (
            b'{"model": "up/x", "messages": [{"role": "user"}]}',
            "messages[0].content",
            "missing_required_parameter",
        ),
        (
            b'{"model": "up/x", "messages": [{"role": "user", "content": 3}]}',
            "messages[0].content",
            "invalid_type",
        ),
        (
            b'{"model": "up/x", "messages": [{"role": "tool", "content": "hi"}]}',
            "messages[0].tool_call_id",
            "missing_required_parameter",
        ),
        (
            b'{"model": "up/x", "stream": "yes", "messages": ' + USER + b"}",
            "stream",
            "invalid_type",
        ),
        (b'{"model": "up/x", "n": 2, "messages": ' + USER + b"}", "n", "unsupported_value"),
        (b"[1, 2]", None, "invalid_type"),
    ],
)
def test_bad_requests_carry_openais_error_codes(
    make_gateway: Any, body: bytes, param: str | None, code: str | None
) -> None:
    response = post(make_gateway(), body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)


@pytest.mark.parametrize(
    ("params", "param"),
    [({"logprobs": True}, "logprobs"), ({"logprobs": True, "top_logprobs": 3}, "logprobs")],
    ids=["logprobs", "top_logprobs"],
)
def test_log_probabilities_are_refused_rather_than_silently_null(
    make_gateway: Any, upstream: Any, params: dict[str, Any], param: str
) -> None:
    gw = make_gateway()
    with pytest.raises(openai.BadRequestError) as info:
        gw.client().chat.completions.create(model="up/m-lp", messages=MESSAGES, **params)
    assert (info.value.param, info.value.code) == (param, "unsupported_parameter")
    assert "log probabilities" in info.value.message
    assert upstream.requests_for("m-lp") == []
    refused = post(gw, {"model": "up/m-lp", "messages": MESSAGES, "top_logprobs": 2})
    assert refused.json()["error"]["param"] == "top_logprobs"


@pytest.mark.parametrize("path", ["/chat/completions", "/messages"])
def test_a_body_nested_absurdly_deep_is_a_400_and_the_gateway_stays_up(
    make_gateway: Any, path: str
) -> None:
    gw = make_gateway()
    depth = 100_000
    nested = b"[" * depth + b"]" * depth
    for body in (
        b'{"model": "up/x", "max_tokens": 8, "messages": ' + nested + b"}",
        b'{"model": "up/x", "max_tokens": 8, "metadata": {"a": ' + nested + b'}, "messages": []}',
        nested,
    ):
        response = post(gw, body, path)
        assert response.status_code == 400, response.text
    assert httpx.get(gw.base_url.removesuffix("/v1") + "/healthz").status_code == 200


def test_each_model_says_which_endpoints_serve_it(make_gateway: Any) -> None:
    gw = make_gateway(
        routes={"chat": {"targets": ["up/a"]}, "mixed": {"targets": ["up/a", "claude/c"]}},
        providers={"claude": {"kind": "anthropic", "api_key_env": "UP_KEY"}},
    )
    doors = {m.id: m.model_extra["llmgate"]["doors"] for m in gw.client().models.list()}
    text = ["chat.completions", "responses", "messages"]
    assert doors["chat"] == doors["up/a"] == [*text, "embeddings"]
    assert doors["mixed"] == doors["claude/c"] == text  # Anthropic has no embeddings


def test_client_chosen_model_names_are_counted_under_one_other_label(
    make_gateway: Any, upstream: Any
) -> None:
    for model in ("m", "free-1", "free-2"):
        upstream.script(model, Stream(["hi"]))
    gw = make_gateway(routes={"chat": {"targets": ["up/m"]}})
    sdk = gw.client()
    for model in ("chat", "up/free-1", "up/free-2"):
        sdk.chat.completions.create(model=model, messages=MESSAGES)
    metrics = httpx.get(gw.base_url.removesuffix("/v1") + "/metrics").text
    assert "free-1" not in metrics and "free-2" not in metrics  # no series per client name
    requests = {
        s.labels["route"]: s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
        if s.name == "llmgate_requests_total"
    }
    assert requests == {"chat": 1.0, "other": 2.0}
