"""``POST /v1/embeddings`` through a real gateway on loopback, with the official openai
SDK as the client and fake upstreams speaking OpenAI's and Gemini's embeddings wire
formats."""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.gemini_upstream import GeminiUpstream
from tests.fakes.openai_upstream import Embeddings, Status, fake_vector
from tests.integration.conftest import KEY

TEXTS = ["alpha", "beta", "gamma"]


@pytest.fixture
def gemini() -> Iterator[GeminiUpstream]:
    with GeminiUpstream() as fake:
        yield fake


def post(gw: Any, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(
        f"{gw.base_url}/embeddings", json=body, headers={"authorization": f"Bearer {KEY}"}
    )


def test_the_sdk_gets_one_vector_per_input_in_order(make_gateway: Any, upstream: Any) -> None:
    upstream.script("emb", Embeddings(dims=4, prompt_tokens=9))
    gw = make_gateway()

    result = gw.client().embeddings.create(model="up/emb", input=TEXTS)

    assert [item.index for item in result.data] == [0, 1, 2]
    assert [item.embedding for item in result.data] == [fake_vector(t, 4) for t in TEXTS]
    assert result.model == "emb"
    assert (result.usage.prompt_tokens, result.usage.total_tokens) == (9, 9)
    # llmgate asked its upstream for floats, whatever the client asked
    sent = upstream.requests_for("emb")[0]
    assert sent == {"model": "emb", "input": TEXTS, "encoding_format": "float"}


def test_float_and_base64_answers_decode_to_the_same_vectors(
    make_gateway: Any, upstream: Any
) -> None:
    upstream.script("emb", Embeddings(dims=5))
    gw = make_gateway()

    floats = post(gw, {"model": "up/emb", "input": TEXTS, "encoding_format": "float"}).json()
    packed = post(gw, {"model": "up/emb", "input": TEXTS, "encoding_format": "base64"}).json()

    decoded = [
        list(struct.unpack("<5f", base64.b64decode(item["embedding"]))) for item in packed["data"]
    ]
    assert decoded == [item["embedding"] for item in floats["data"]]


def test_dimensions_and_token_arrays_reach_the_upstream(make_gateway: Any, upstream: Any) -> None:
    upstream.script("emb", Embeddings())
    gw = make_gateway()
    client = gw.client()

    one = client.embeddings.create(model="up/emb", input=[5, 6, 7], dimensions=3)
    two = client.embeddings.create(model="up/emb", input=[[1, 2], [3]], dimensions=2)

    assert [d.embedding for d in one.data] == [fake_vector([5, 6, 7], 3)]
    assert [d.embedding for d in two.data] == [fake_vector([1, 2], 2), fake_vector([3], 2)]
    sent = upstream.requests_for("emb")
    assert (sent[0]["input"], sent[0]["dimensions"]) == ([[5, 6, 7]], 3)
    assert (sent[1]["input"], sent[1]["dimensions"]) == ([[1, 2], [3]], 2)


def test_a_failing_target_falls_back_to_gemini(
    make_gateway: Any, upstream: Any, gemini: GeminiUpstream
) -> None:
    upstream.script("emb", Status(503))
    gemini.script("gemini-embedding-001", Embeddings())
    gw = make_gateway(
        routes={
            "embed": {
                "targets": ["up/emb", "g/gemini-embedding-001"],
                "max_retries": 0,
                "embeddings": True,
            }
        },
        providers={"g": {"kind": "gemini", "base_url": gemini.base_url}},
    )

    raw = gw.client().embeddings.with_raw_response.create(model="embed", input=TEXTS, dimensions=6)
    result = raw.parse()

    assert [d.embedding for d in result.data] == [fake_vector(t, 6) for t in TEXTS]
    assert result.model == "gemini-embedding-001"
    assert raw.headers["x-llmgate-attempts"] == (
        "up/emb:failed:upstream_unavailable,g/gemini-embedding-001:ok"
    )
    assert gemini.paths == ["/v1beta/models/gemini-embedding-001:batchEmbedContents"]
    assert gemini.requests[0]["requests"][1] == {
        "model": "models/gemini-embedding-001",
        "content": {"parts": [{"text": "beta"}]},
        "outputDimensionality": 6,
    }


def test_gemini_refuses_token_arrays_with_a_clear_400(
    make_gateway: Any, gemini: GeminiUpstream
) -> None:
    gw = make_gateway(providers={"g": {"kind": "gemini", "base_url": gemini.base_url}})

    response = post(gw, {"model": "g/gemini-embedding-001", "input": [[1, 2, 3]]})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and "token arrays" in error["message"]
    assert gemini.requests == []


def test_when_every_target_fails_the_sdk_gets_an_openai_error_and_does_not_retry(
    make_gateway: Any, upstream: Any
) -> None:
    upstream.script("emb", Status(503))
    gw = make_gateway()

    with pytest.raises(openai.InternalServerError) as raised:
        gw.client(max_retries=2).embeddings.create(model="up/emb", input="text")

    assert raised.value.response.headers["x-should-retry"] == "false"
    assert len(upstream.requests_for("emb")) == 3  # the route's own retries, no more


def test_a_route_whose_targets_cannot_embed_is_refused_with_a_400(
    make_gateway: Any, upstream: Any
) -> None:
    gw = make_gateway(
        routes={"chat": {"targets": ["up/emb", "claude/claude-x"]}},
        providers={"claude": {"kind": "anthropic", "base_url": "http://127.0.0.1:9"}},
    )

    with pytest.raises(openai.BadRequestError) as raised:
        gw.client().embeddings.create(model="chat", input="text")

    error = raised.value.body
    assert isinstance(error, dict)
    assert error["code"] == "model_not_embeddable" and error["param"] == "model"
    assert "claude/claude-x cannot embed" in error["message"]
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"input": "x", "temperature": 1}, "temperature", "unknown_parameter"),
        ({}, "input", "missing_required_parameter"),
        ({"input": []}, "input", "empty_array"),
        ({"input": ["a", 2]}, "input[1]", "invalid_type"),
        ({"input": [[1], [-2]]}, "input[1][0]", "invalid_value"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format", "invalid_value"),
        ({"input": "x", "dimensions": 0}, "dimensions", "invalid_value"),
    ],
)
def test_a_bad_request_is_a_400_naming_the_field(
    make_gateway: Any, upstream: Any, body: dict[str, Any], param: str, code: str
) -> None:
    gw = make_gateway()

    response = post(gw, {"model": "up/emb", **body})

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (
        param,
        code,
        "invalid_request_error",
    )
    assert upstream.requests == []


def test_the_mock_embeds_deterministically_with_no_network(make_gateway: Any) -> None:
    gw = make_gateway(providers={"demo": {"kind": "mock", "embedding_dims": 16}})
    client = gw.client()

    first = client.embeddings.create(model="demo/embed", input=["same", "other"])
    again = client.embeddings.create(model="demo/embed", input="same")
    short = client.embeddings.create(model="demo/embed", input="same", dimensions=4)

    same, other = (d.embedding for d in first.data)
    assert len(same) == 16 and again.data[0].embedding == same and other != same
    assert sum(x * x for x in same) == pytest.approx(1.0)
    assert len(short.data[0].embedding) == 4


def test_metrics_count_embeddings_requests_under_their_route(make_gateway: Any) -> None:
    gw = make_gateway(
        routes={"embed": {"targets": ["demo/embed"], "embeddings": True}},
        providers={"demo": {"kind": "mock"}},
    )
    gw.client().embeddings.create(model="embed", input="counted")

    metrics = httpx.get(f"{gw.base_url.removesuffix('/v1')}/metrics").text

    assert 'llmgate_requests_total{door="embeddings",route="embed",status="ok"} 1.0' in metrics
    assert 'llmgate_tokens_total{kind="prompt",route="embed",target="demo/embed"} 1.0' in metrics
