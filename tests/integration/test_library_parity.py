"""The library and the HTTP service are one engine: same policy, same upstream
behaviour, same answer and the same attempt record."""

from __future__ import annotations

from typing import Any

from llmgate import LLMGate
from tests.fakes.openai_upstream import Status, Stream
from tests.integration.conftest import FAST_POLICY

MESSAGES: list[Any] = [{"role": "user", "content": "Tell me something."}]


def test_library_and_service_give_the_same_answer(make_gateway: Any, upstream: Any) -> None:
    failing = (Status(503), Stream(["The answer ", "is"], end="cut", after=1))
    upstream.script("par-a", *failing, *failing)  # the same behaviour for each path
    upstream.script("par-b", Stream(["is forty-two."]))
    route = {
        "targets": ["up/par-a", "noprefill/par-b"],
        "stream_fallback_mode": "prefill",
        "max_retries": 1,
        # No timeout is exercised here: generous ones, so that a loaded machine (a long
        # GC pause in a process that ran hundreds of tests) cannot add an attempt.
        "first_token_timeout_s": 5.0,
        "stall_timeout_s": 5.0,
        "request_timeout_s": 30.0,
    }

    gw = make_gateway(routes={"chat": route})
    chunks = list(gw.client().chat.completions.create(model="chat", messages=MESSAGES, stream=True))
    service_text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    service_record = chunks[-1].llmgate

    providers = {
        "up": {"kind": "openai", "base_url": upstream.base_url, "supports_prefill": True},
        "noprefill": {"kind": "openai", "base_url": upstream.base_url},
    }
    with LLMGate(providers=providers, routes={"chat": {**FAST_POLICY, **route}}) as gate:
        response = gate.completion("chat", MESSAGES)

    assert service_text == response.text == "The answer is forty-two."
    assert response.record is not None
    library_attempts = [
        (a.target, a.outcome, a.error_type, a.shape) for a in response.record.attempts
    ]
    service_attempts = [
        (a["target"], a["outcome"], a["error_type"], a["shape"]) for a in service_record["attempts"]
    ]
    assert (
        library_attempts
        == service_attempts
        == [
            ("up/par-a", "failed", "upstream_unavailable", "original"),
            ("up/par-a", "failed", "stream_interrupted", "original"),
            ("noprefill/par-b", "ok", None, "user_turn"),
        ]
    )
    assert (
        upstream.requests_for("par-b")[0]["messages"]
        == upstream.requests_for("par-b")[1]["messages"]
    )
