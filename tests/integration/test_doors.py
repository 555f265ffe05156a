"""What every door promises, written once and run against each: OpenAI chat
completions and Anthropic Messages, through the real app on loopback.

A new door (Responses, embeddings) joins by adding a `Door` below.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import msgspec
import pytest

from tests.eventually import eventually
from tests.fakes.openai_upstream import Status, Stream
from tests.integration.conftest import KEY

MESSAGES: list[Any] = [{"role": "user", "content": "Tell me something."}]


class Door(msgspec.Struct, frozen=True):
    """How a test speaks one door's wire."""

    name: str
    path: str
    end: str
    """The event that ends a complete stream."""
    error: str
    """How an in-band error starts."""
    extra: dict[str, Any] = {}

    def body(self, model: str, stream: bool) -> dict[str, Any]:
        return {"model": model, "messages": MESSAGES, "stream": stream, **self.extra}

    def text(self, raw: str) -> str:
        """The answer text a stream carried."""
        out = []
        for line in raw.splitlines():
            if not line.startswith("data: {"):
                continue
            data = json.loads(line[6:])
            for choice in data.get("choices") or []:
                out.append((choice.get("delta") or {}).get("content") or "")
            out.append((data.get("delta") or {}).get("text") or "")
        return "".join(out)


OPENAI = Door("openai", "/chat/completions", "data: [DONE]", 'data: {"error"')
ANTHROPIC = Door(
    "anthropic", "/messages", "event: message_stop", "event: error", {"max_tokens": 64}
)


@pytest.fixture(params=[OPENAI, ANTHROPIC], ids=lambda d: d.name)
def door(request: pytest.FixtureRequest) -> Door:
    return request.param  # type: ignore[no-any-return]


@contextmanager
def post(gw: Any, door: Door, model: str, stream: bool) -> Iterator[httpx.Response]:
    headers = {"authorization": f"Bearer {KEY}"}
    with httpx.stream(
        "POST", gw.base_url + door.path, json=door.body(model, stream), headers=headers
    ) as response:
        yield response


def send(gw: Any, door: Door, model: str, stream: bool) -> tuple[httpx.Response, str]:
    with post(gw, door, model, stream) as response:
        return response, response.read().decode()


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_every_response_names_its_request(
    make_gateway: Any, upstream: Any, door: Door, stream: bool
) -> None:
    upstream.script("ok", Stream(["Hi."]))
    gw = make_gateway()
    for model in ("up/ok", "nowhere"):
        response, _ = send(gw, door, model, stream)
        rid = response.headers["x-llmgate-request-id"]
        assert rid and response.headers["x-request-id"] == rid, model


def test_a_failure_before_any_content_is_an_http_error_that_says_not_to_retry(
    make_gateway: Any, upstream: Any, door: Door
) -> None:
    upstream.script("busy", Status(429, headers={"retry-after": "6.2"}))
    upstream.script("down", Status(503))
    gw = make_gateway(routes={"chat": {"targets": ["up/busy", "up/down"], "max_retries": 0}})

    response, raw = send(gw, door, "chat", stream=True)

    assert (response.status_code, response.headers["content-type"]) == (429, "application/json")
    assert response.headers["x-should-retry"] == "false"
    assert (response.headers["retry-after"], response.headers["retry-after-ms"]) == ("7", "6200")
    assert response.headers["x-llmgate-attempts"] == (
        "up/busy:failed:rate_limited,up/down:failed:upstream_unavailable"
    )
    assert json.loads(raw)["error"]


def test_a_stream_that_cannot_be_completed_ends_in_band_never_as_a_success(
    make_gateway: Any, upstream: Any, door: Door
) -> None:
    upstream.script("cut", Stream(["Partial ", "text"], end="cut", after=1))
    gw = make_gateway(routes={"chat": {"targets": ["up/cut"], "stream_fallback_mode": "terminate"}})

    response, raw = send(gw, door, "chat", stream=True)

    assert response.status_code == 200
    assert door.text(raw) == "Partial "
    assert door.error in raw and door.end not in raw


def test_a_cut_answer_continues_on_the_next_target_into_one_text(
    make_gateway: Any, upstream: Any, door: Door
) -> None:
    upstream.script("cut", Stream(["One ", "two"], end="cut", after=1))
    upstream.script("spare", Stream(["two three."]))
    gw = make_gateway(routes={"chat": {"targets": ["up/cut", "up/spare"]}})

    response, raw = send(gw, door, "chat", stream=True)

    assert (response.status_code, door.text(raw)) == (200, "One two three.")
    assert door.end in raw and door.error not in raw


def test_a_client_that_goes_away_ends_the_request_and_its_upstream_call(
    make_gateway: Any, upstream: Any, door: Door
) -> None:
    upstream.script("slow", Stream(["Once", " upon"], end="stall"))
    gw = make_gateway()
    with post(gw, door, "up/slow", stream=True) as response:
        for line in response.iter_lines():
            if "Once" in line:
                break  # the client leaves after the first words
    metrics = gw.base_url.removesuffix("/v1") + "/metrics"

    def recorded() -> bool:
        text = httpx.get(metrics).text
        # a provider/model no route names is counted under "other" (bounded labels)
        return 'reason="ClientDisconnected"' in text and 'route="other"' in text

    eventually(recorded, "the abandoned attempt in the metrics")
