"""The OpenAI-compatible endpoint end to end: the official SDK, a real gateway on
loopback, and a fake upstream that speaks OpenAI's SSE byte for byte."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.fakes.openai_upstream import Hang, Reset, Status, Stream

MESSAGES: list[Any] = [{"role": "user", "content": "Tell me something."}]


def stream_text(client: openai.OpenAI, model: str, **kwargs: Any) -> tuple[str, list[Any]]:
    """Consume a stream as a UI would: append deltas, clear on a reset marker."""
    chunks = list(
        client.chat.completions.create(model=model, messages=MESSAGES, stream=True, **kwargs)
    )
    text = ""
    for chunk in chunks:
        extra = getattr(chunk, "llmgate", None) or {}
        if extra.get("reset"):
            text = ""
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
    return text, chunks


def record_of(chunks: list[Any]) -> dict[str, Any]:
    record: dict[str, Any] = chunks[-1].llmgate
    return record


def outcomes(record: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    return [(a["target"], a["outcome"], a["error_type"]) for a in record["attempts"]]


# --- the happy paths -----------------------------------------------------------------


def test_streams_an_answer_through_a_route(make_gateway: Any, upstream: Any) -> None:
    upstream.script("m-ok", Stream(["Hello", ", ", "world"]))
    gw = make_gateway(routes={"chat": {"targets": ["up/m-ok"]}})
    text, chunks = stream_text(gw.client(), "chat")
    assert text == "Hello, world"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert {c.model for c in chunks} == {"up/m-ok"}
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert outcomes(record_of(chunks)) == [("up/m-ok", "ok", None)]
    sent = upstream.requests_for("m-ok")[0]
    assert sent["messages"] == MESSAGES and sent["stream"] is True


def test_upstream_receives_the_provider_key_not_the_client_key(
    make_gateway: Any, upstream: Any
) -> None:
    upstream.script("m-key", Stream(["ok"]))
    gw = make_gateway()
    stream_text(gw.client(), "up/m-key")
    assert upstream.headers_for("m-key")[0]["authorization"] == "Bearer sk-upstream"


def test_non_streamed_answer_carries_record_in_body_and_headers(
    make_gateway: Any, upstream: Any
) -> None:
    upstream.script("m-json", Stream(["Hi", " there"]))
    gw = make_gateway(routes={"chat": {"targets": ["up/m-json"]}})
    raw = gw.client().chat.completions.with_raw_response.create(model="chat", messages=MESSAGES)
    completion = raw.parse()
    assert completion.choices[0].message.content == "Hi there"
    assert completion.model == "up/m-json"
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    assert raw.headers["x-llmgate-request-id"] == completion.id
    assert raw.headers["x-llmgate-attempts"] == "up/m-json:ok"
    assert completion.llmgate["route"] == "chat"  # type: ignore[attr-defined]


def test_include_usage_sends_a_final_usage_chunk(make_gateway: Any, upstream: Any) -> None:
    upstream.script("m-usage", Stream(["a", "b"]))
    gw = make_gateway()
    _, chunks = stream_text(gw.client(), "up/m-usage", stream_options={"include_usage": True})
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_tool_calls_pass_through_and_stream(make_gateway: Any, upstream: Any) -> None:
    upstream.script(
        "m-tools", Stream([], tool_calls=[("call_1", "get_weather", '{"city": "Paris"}')])
    )
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    gw = make_gateway()
    chunks = list(
        gw.client().chat.completions.create(
            model="up/m-tools", messages=MESSAGES, tools=tools, stream=True
        )
    )  # type: ignore[arg-type]
    calls = [
        tc
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
        for tc in c.choices[0].delta.tool_calls
    ]
    assert calls[0].id == "call_1" and calls[0].function.name == "get_weather"
    assert "".join(tc.function.arguments or "" for tc in calls) == '{"city": "Paris"}'
    assert upstream.requests_for("m-tools")[0]["tools"] == tools
    completion = gw.client().chat.completions.create(
        model="up/m-tools", messages=MESSAGES, tools=tools
    )  # type: ignore[arg-type]
    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert (call.id, call.function.name, call.function.arguments) == (  # type: ignore[union-attr]
        "call_1",
        "get_weather",
        '{"city": "Paris"}',
    )
    assert completion.choices[0].finish_reason == "tool_calls"


def test_tool_results_are_forwarded(make_gateway: Any, upstream: Any) -> None:
    upstream.script("m-toolres", Stream(["It is sunny."]))
    messages: list[Any] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ]
    gw = make_gateway()
    out = gw.client().chat.completions.create(model="up/m-toolres", messages=messages)
    assert out.choices[0].message.content == "It is sunny."
    assert upstream.requests_for("m-toolres")[0]["messages"] == messages


def test_models_lists_routes_then_targets(make_gateway: Any) -> None:
    gw = make_gateway(routes={"chat": {"targets": ["up/a", "noprefill/b"]}})
    assert [m.id for m in gw.client().models.list()] == ["chat", "up/a", "noprefill/b"]


# --- failures before the first token ----------------------------------------------


@pytest.mark.parametrize(
    ("first", "error_type"),
    [
        (Status(429, headers={"retry-after": "0.05"}), "rate_limited"),
        (Status(429), "rate_limited"),
        (Status(500), "upstream_unavailable"),
        (Reset(), "connect_failed"),
        (Hang(), "timeout"),
        (Stream(["late"], first_delay_s=2.0), "timeout"),
    ],
    ids=[
        "429-retry-after",
        "429",
        "500-once",
        "reset-before-headers",
        "no-response",
        "slow-first-token",
    ],
)
def test_retries_the_same_target_after_a_transient_failure(
    make_gateway: Any, upstream: Any, first: Any, error_type: str
) -> None:
    model = f"m-retry-{error_type}-{id(first)}"
    upstream.script(model, first, Stream(["recovered"]))
    # A silent target is retried only when no other target is left (see the next test).
    targets = [f"up/{model}"] if error_type == "timeout" else [f"up/{model}", "up/never"]
    gw = make_gateway(routes={"chat": {"targets": targets}})
    text, chunks = stream_text(gw.client(), "chat")
    assert text == "recovered"
    assert outcomes(record_of(chunks)) == [
        (f"up/{model}", "failed", error_type),
        (f"up/{model}", "ok", None),
    ]
    assert upstream.requests_for("never") == []


@pytest.mark.parametrize(
    "silent",
    [Hang(), Stream(["too late"], first_delay_s=3.0)],
    ids=["no-response", "slow-first-token"],
)
def test_a_silent_target_is_tried_once_and_the_fallback_answers_in_its_own_time(
    make_gateway: Any, upstream: Any, silent: Any
) -> None:
    upstream.script("m-silent", silent)
    upstream.script("m-quick", Stream(["from the fallback"]))
    # The route, scaled down tenfold: 1 s for a first token, 3 s in all, 2 retries.
    policy = {"first_token_timeout_s": 1.0, "request_timeout_s": 3.0, "max_retries": 2}
    gw = make_gateway(routes={"chat": {"targets": ["up/m-silent", "up/m-quick"], **policy}})

    text, chunks = stream_text(gw.client(), "chat")

    assert text == "from the fallback"
    assert len(upstream.requests_for("m-silent")) == 1
    silent_attempt, answer = record_of(chunks)["attempts"]
    assert (silent_attempt["outcome"], silent_attempt["error_type"]) == ("failed", "timeout")
    # the fallback started right when the first token was overdue: no retry, no backoff
    assert 1000 <= answer["start_ms"] < 1000 + 500


def test_honours_retry_after_before_retrying(make_gateway: Any, upstream: Any) -> None:
    upstream.script("m-ra", Status(429, headers={"retry-after": "0.3"}), Stream(["ok"]))
    gw = make_gateway()
    _, chunks = stream_text(gw.client(), "up/m-ra")
    first, second = record_of(chunks)["attempts"]
    assert second["start_ms"] - first["start_ms"] >= 300


def test_persistent_503_exhausts_retries_then_falls_back(make_gateway: Any, upstream: Any) -> None:
    upstream.script("m-503", Status(503))
    upstream.script("m-backup", Stream(["from backup"]))
    gw = make_gateway(routes={"chat": {"targets": ["up/m-503", "up/m-backup"], "max_retries": 2}})
    text, chunks = stream_text(gw.client(), "chat")
    assert text == "from backup"
    assert len(upstream.requests_for("m-503")) == 3
    assert {c.model for c in chunks} == {"up/m-backup"}


@pytest.mark.parametrize(
    ("failure", "error_type"),
    [
        (
            Status(
                400,
                body={
                    "error": {
                        "message": "This model's maximum context length is 8192 tokens",
                        "type": "invalid_request_error",
                        "code": "context_length_exceeded",
                    }
                },
            ),
            "context_length_exceeded",
        ),
        (Status(401), "upstream_auth_failed"),
        (Status(404), "model_not_found"),
    ],
    ids=["context-length", "auth", "not-found"],
)
def test_non_retryable_failure_moves_on_without_retrying(
    make_gateway: Any, upstream: Any, failure: Any, error_type: str
) -> None:
    model = f"m-noretry-{error_type}"
    upstream.script(model, failure)
    upstream.script("m-big", Stream(["fits"]))
    gw = make_gateway(routes={"chat": {"targets": [f"up/{model}", "up/m-big"]}})
    text, chunks = stream_text(gw.client(), "chat")
    assert text == "fits"
    assert len(upstream.requests_for(model)) == 1
    assert outcomes(record_of(chunks))[0] == (f"up/{model}", "failed", error_type)


def test_content_policy_refusal_is_returned_with_the_providers_reason(
    make_gateway: Any, upstream: Any
) -> None:
    upstream.script(
        "m-policy",
        Status(
            400,
            body={
                "error": {
                    "message": "Your request was rejected by the safety system.",
                    "type": "invalid_request_error",
                    "code": "content_policy_violation",
                }
            },
        ),
    )
    gw = make_gateway(routes={"chat": {"targets": ["up/m-policy", "up/m-other"]}})
    with pytest.raises(openai.BadRequestError) as info:
        stream_text(gw.client(), "chat")
    assert info.value.code == "content_filter"
    assert "safety system" in info.value.message
    assert upstream.requests_for("m-other") == []


def test_all_targets_failing_before_content_is_a_real_http_error(
    make_gateway: Any, upstream: Any
) -> None:
    upstream.script("m-down1", Status(503))
    upstream.script("m-down2", Status(502))
    gw = make_gateway(routes={"chat": {"targets": ["up/m-down1", "up/m-down2"], "max_retries": 0}})
    with pytest.raises(openai.APIStatusError) as info:
        stream_text(gw.client(), "chat")
    assert info.value.status_code == 502
    assert "up/m-down1" in info.value.message and "up/m-down2" in info.value.message


def test_rate_limited_everywhere_surfaces_as_429(make_gateway: Any, upstream: Any) -> None:
    upstream.script("m-429", Status(429, headers={"retry-after": "60"}))
    gw = make_gateway(routes={"chat": {"targets": ["up/m-429"]}})
    with pytest.raises(openai.RateLimitError):
        gw.client().chat.completions.create(model="chat", messages=MESSAGES)
    assert len(upstream.requests_for("m-429")) == 1  # Retry-After above max_retry_after_s


# --- failures after the first token -------------------------------------------------


@pytest.mark.parametrize(
    ("end", "reason"),
    [
        ("cut", "stream_interrupted"),
        ("stall", "timeout"),
        ("malformed", "malformed_response"),
        ("no_done", "stream_interrupted"),
        ("error_event", "stream_error_event"),
    ],
)
def test_mid_stream_failure_continues_on_the_next_target_with_prefill(
    make_gateway: Any, upstream: Any, end: str, reason: str
) -> None:
    primary, backup = f"m-mid-{end}", f"m-cont-{end}"
    upstream.script(primary, Stream(["The quick ", "brown fox ", "jumps"], end=end, after=2))
    upstream.script(backup, Stream(["jumps over ", "the lazy dog."]))
    gw = make_gateway(
        routes={
            "chat": {
                "targets": [f"up/{primary}", f"up/{backup}"],
                "stream_fallback_mode": "prefill",
            }
        }
    )
    text, chunks = stream_text(gw.client(), "chat")
    assert text == "The quick brown fox jumps over the lazy dog."
    sent = upstream.requests_for(backup)[0]["messages"]
    assert sent[-1] == {"role": "assistant", "content": "The quick brown fox "}
    switched = [
        c.llmgate["switch"] for c in chunks if getattr(c, "llmgate", None) and "switch" in c.llmgate
    ]
    assert switched and switched[0]["from_target"] == f"up/{primary}"
    assert switched[0]["reason"] == reason and switched[0]["chars_delivered"] == len(
        "The quick brown fox "
    )
    assert chunks[-1].model == f"up/{backup}"


def test_prefill_falls_back_to_user_turn_for_a_target_without_prefill(
    make_gateway: Any, upstream: Any
) -> None:
    upstream.script("m-p1", Stream(["One two ", "three"], end="cut", after=1))
    upstream.script("m-p2", Stream(["One two three four."]))
    gw = make_gateway(
        routes={
            "chat": {
                "targets": ["up/m-p1", "noprefill/m-p2"],
                "stream_fallback_mode": "prefill",
                "stream_resume_prompt": "Go on.",
            }
        }
    )
    text, chunks = stream_text(gw.client(), "chat")
    sent = upstream.requests_for("m-p2")[0]["messages"]
    assert sent[-2:] == [
        {"role": "assistant", "content": "One two "},
        {"role": "user", "content": "Go on."},
    ]
    # The continuation repeated "One two "; the overlap is trimmed, never duplicated.
    assert text == "One two three four."
    assert record_of(chunks)["switches"][0]["trimmed_chars"] == len("One two ")


def test_prefill_rejected_by_the_fallback_is_retried_as_user_turn(
    make_gateway: Any, upstream: Any
) -> None:
    upstream.script("m-r1", Stream(["Alpha ", "beta"], end="cut", after=1))
    upstream.script(
        "m-r2",
        Status(
            400,
            body={
                "error": {
                    "message": "assistant prefill not supported",
                    "type": "invalid_request_error",
                }
            },
        ),
        Stream(["beta gamma."]),
    )
    gw = make_gateway(
        routes={"chat": {"targets": ["up/m-r1", "up/m-r2"], "stream_fallback_mode": "prefill"}}
    )
    text, chunks = stream_text(gw.client(), "chat")
    assert text == "Alpha beta gamma."
    first, second = upstream.requests_for("m-r2")
    assert first["messages"][-1]["role"] == "assistant"
    assert second["messages"][-1]["role"] == "user"
    assert [a["shape"] for a in record_of(chunks)["attempts"]] == [
        "original",
        "prefill",
        "user_turn",
    ]


def test_prefill_rejection_never_masks_the_original_failure(
    make_gateway: Any, upstream: Any
) -> None:
    upstream.script("m-o1", Stream(["Alpha ", "beta"], end="cut", after=1))
    upstream.script("m-o2", Status(400, body={"error": {"message": "prefill not supported"}}))
    gw = make_gateway(
        routes={"chat": {"targets": ["up/m-o1", "up/m-o2"], "stream_fallback_mode": "prefill"}}
    )
    with pytest.raises(openai.APIError) as info:
        stream_text(gw.client(), "chat")
    assert info.value.message.startswith("The answer was cut off")
    assert "connection broke mid-response" in info.value.message.split("(every attempt failed")[0]


def test_user_turn_mode_asks_to_continue(make_gateway: Any, upstream: Any) -> None:
    upstream.script("m-u1", Stream(["Roses are red, ", "violets"], end="cut", after=1))
    upstream.script("m-u2", Stream(["violets are blue."]))
    gw = make_gateway(
        routes={"chat": {"targets": ["up/m-u1", "up/m-u2"], "stream_fallback_mode": "user_turn"}}
    )
    text, _ = stream_text(gw.client(), "chat")
    assert text == "Roses are red, violets are blue."
    assert upstream.requests_for("m-u2")[0]["messages"][-1]["role"] == "user"


def test_restart_whose_new_answer_differs_continues_the_text_shown_instead_of_resetting(
    make_gateway: Any, upstream: Any
) -> None:
    upstream.script("m-s1", Stream(["First ", "draft"], end="cut", after=1))
    upstream.script("m-s2", Stream(["Second ", "answer."]), Stream(["draft, continued."]))
    gw = make_gateway(
        routes={"chat": {"targets": ["up/m-s1", "up/m-s2"], "stream_fallback_mode": "restart"}}
    )
    text, chunks = stream_text(gw.client(), "chat")
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert text == "First draft, continued."
    assert not any(getattr(c, "llmgate", None) and c.llmgate.get("reset") for c in chunks)
    restart, continuation = upstream.requests_for("m-s2")
    assert restart["messages"] == MESSAGES
    assert continuation["messages"][len(MESSAGES)] == {"role": "assistant", "content": "First "}


def test_restart_with_the_same_answer_continues_without_a_reset(
    make_gateway: Any, upstream: Any
) -> None:
    upstream.script(
        "m-same",
        Stream(["Same ", "answer ", "here."], end="cut", after=2),
        Stream(["Same ", "answer ", "here."]),
    )
    gw = make_gateway(
        routes={"chat": {"targets": ["up/m-same"], "stream_fallback_mode": "restart"}}
    )
    text, chunks = stream_text(gw.client(), "chat")
    assert text == "Same answer here."
    assert not any(getattr(c, "llmgate", None) and c.llmgate.get("reset") for c in chunks)


def test_terminate_mode_ends_with_an_error_and_no_done(make_gateway: Any, upstream: Any) -> None:
    upstream.script("m-t1", Stream(["Partial ", "text"], end="cut", after=1))
    gw = make_gateway(
        routes={"chat": {"targets": ["up/m-t1", "up/m-t2"], "stream_fallback_mode": "terminate"}}
    )
    with httpx.stream(
        "POST",
        f"{gw.base_url}/chat/completions",
        headers={"authorization": "Bearer sk-test-master"},
        json={"model": "chat", "messages": MESSAGES, "stream": True},
    ) as response:
        body = response.read().decode()
    assert response.status_code == 200
    assert "Partial " in body and '"error"' in body and "[DONE]" not in body
    with pytest.raises(openai.APIError):
        stream_text(gw.client(), "chat")
    assert upstream.requests_for("m-t2") == []


def test_a_flapping_primary_is_skipped_by_its_circuit_breaker(
    make_gateway: Any, upstream: Any
) -> None:
    upstream.script("m-flap", Status(503))
    upstream.script("m-steady", Stream(["steady"]))
    gw = make_gateway(
        routes={
            "chat": {
                "targets": ["up/m-flap", "up/m-steady"],
                "max_retries": 0,
                "breaker": {"failure_threshold": 2, "cooldown_s": 60},
            }
        }
    )
    client = gw.client()
    for _ in range(2):
        assert stream_text(client, "chat")[0] == "steady"
    _, chunks = stream_text(client, "chat")
    assert len(upstream.requests_for("m-flap")) == 2
    assert record_of(chunks)["skipped"] == ["up/m-flap"]
    health = httpx.get(gw.base_url.removesuffix("/v1") + "/healthz").json()
    assert health["breakers"]["up/m-flap"] == "open"


# --- the door: auth and bad input ----------------------------------------------------


def test_wrong_or_missing_key_is_refused(make_gateway: Any) -> None:
    gw = make_gateway()
    with pytest.raises(openai.AuthenticationError):
        with openai.OpenAI(base_url=gw.base_url, api_key="wrong", max_retries=0) as wrong:
            wrong.models.list()
    response = httpx.post(
        f"{gw.base_url}/chat/completions", json={"model": "x", "messages": MESSAGES}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b'{"messages": []}', "model"),
        (b'{"model": "up/x", "messages": []}', "messages"),
        (
            b'{"model": "up/x", "messages": [{"role": "robot", "content": "hi"}]}',
            "messages[0].role",
        ),
        (
            b'{"model": "up/x", "messages": [{"role": "tool", "content": "hi"}]}',
            "messages[0].tool_call_id",
        ),
        (
            b'{"model": "up/x", "messages": [{"role": "user", "content": "hi"}], "stream": "yes"}',
            "stream",
        ),
    ],
)
def test_bad_requests_get_openai_shaped_400s(
    make_gateway: Any, body: bytes, param: str | None
) -> None:
    gw = make_gateway()
    response = httpx.post(
        f"{gw.base_url}/chat/completions",
        content=body,
        headers={"authorization": "Bearer sk-test-master", "content-type": "application/json"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]
    assert httpx.get(gw.base_url.removesuffix("/v1") + "/healthz").status_code == 200


def test_unknown_model_is_a_404(make_gateway: Any) -> None:
    gw = make_gateway()
    with pytest.raises(openai.NotFoundError) as info:
        gw.client().chat.completions.create(model="nope", messages=MESSAGES)
    assert info.value.code == "model_not_found"
