"""Pools through the real endpoint: the openai SDK, a gateway on loopback, and a fake
upstream whose models stand for a pool's deployments."""

from __future__ import annotations

from typing import Any

from tests.fakes.openai_upstream import Status, Stream
from tests.integration.test_chat_e2e import outcomes, record_of, stream_text

RATE_LIMITED = Status(
    429,
    {"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit"}},
    {"retry-after": "1"},
)


def test_a_rate_limited_member_hands_the_request_to_another_member_at_once(
    make_gateway: Any, upstream: Any
) -> None:
    upstream.script("east", RATE_LIMITED)
    upstream.script("west", Stream(["Served ", "by west."]))
    upstream.script("backup", Stream(["never"]))
    pool = {"pool": ["up/east", "up/west"], "balance": "round_robin"}
    gw = make_gateway(routes={"chat": {"targets": [pool, "up/backup"]}})
    text, chunks = stream_text(gw.client(), "chat")
    assert text == "Served by west."
    assert outcomes(record_of(chunks)) == [
        ("up/east", "failed", "rate_limited"),
        ("up/west", "ok", None),
    ]
    assert record_of(chunks)["pools"] == [
        {"entry": 0, "balance": "round_robin", "order": ["up/east", "up/west"]}
    ]
    # no retry of the rate-limited deployment, no wait, and the next entry never asked
    sent = [len(upstream.requests_for(m)) for m in ("east", "west", "backup")]
    assert sent == [1, 1, 0]


def test_the_next_entry_answers_once_every_member_failed(make_gateway: Any, upstream: Any) -> None:
    upstream.script("east", Status(503))
    upstream.script("west", Status(503))
    upstream.script("backup", Stream(["From the backup."]))
    pool = {"pool": ["up/east", "up/west"], "balance": "least_busy"}
    gw = make_gateway(routes={"chat": {"targets": [pool, "up/backup"], "max_retries": 0}})
    text, chunks = stream_text(gw.client(), "chat")
    assert text == "From the backup."
    tried = [target for target, _, _ in outcomes(record_of(chunks))]
    assert sorted(tried[:2]) == ["up/east", "up/west"] and tried[2:] == ["up/backup"]


def test_round_robin_spreads_requests_over_the_members(make_gateway: Any, upstream: Any) -> None:
    for model in ("a", "b", "c"):
        upstream.script(model, Stream([f"from {model}"]))
    pool = {"pool": ["up/a", "up/b", "up/c"], "balance": "round_robin"}
    gw = make_gateway(routes={"chat": {"targets": [pool]}})
    client = gw.client()
    answers = [stream_text(client, "chat")[0] for _ in range(6)]
    assert answers == ["from a", "from b", "from c"] * 2


def test_a_cut_member_is_continued_by_another_member_of_its_pool(
    make_gateway: Any, upstream: Any
) -> None:
    upstream.script("east", Stream(["The answer ", "begins here"], after=1, end="cut"))
    upstream.script("west", Stream(["begins here."]))
    pool = {"pool": ["up/east", "up/west"], "balance": "round_robin"}
    gw = make_gateway(routes={"chat": {"targets": [pool, "up/backup"]}})
    text, chunks = stream_text(gw.client(), "chat")
    assert text == "The answer begins here."
    assert [t for t, _, _ in outcomes(record_of(chunks))] == ["up/east", "up/west"]
    continued = upstream.requests_for("west")[0]["messages"]
    assert continued[-1] == {"role": "assistant", "content": "The answer "}
