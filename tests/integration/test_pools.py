"""Pools through the real endpoint: the openai SDK, a gateway on loopback, and a fake
upstream whose models stand for a pool's deployments."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx

from tests.eventually import eventually
from tests.fakes.openai_upstream import Status, Stream
from tests.integration.conftest import KEY
from tests.integration.test_chat_e2e import MESSAGES, outcomes, record_of, stream_text

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


def _served(chunks: list[Any]) -> str:
    return str(record_of(chunks)["attempts"][-1]["target"])


def test_session_affinity_keeps_a_session_on_one_member_in_two_gateways_and_spreads_sessions(
    make_gateway: Any, upstream: Any
) -> None:
    members = ["a", "b", "c"]
    for model in members:
        upstream.script(model, Stream([f"from {model}"]))
    route = {"targets": [{"pool": [f"up/{m}" for m in members]}], "affinity": "session"}
    gateways = [make_gateway(routes={"chat": route}) for _ in range(2)]
    clients = [gw.client() for gw in gateways]

    session = {"x-llmgate-session": "conversation-1"}
    served = {
        _served(stream_text(clients[i % 2], "chat", extra_headers=session)[1]) for i in range(20)
    }
    assert len(served) == 1  # twenty requests, both gateways, one member

    homes = Counter(
        _served(stream_text(clients[0], "chat", user=f"user-{i}")[1]) for i in range(20)
    )
    assert len(homes) >= 2  # twenty sessions (OpenAI's `user`) spread over the members
    # a session named by a coding agent's header is kept too
    agent = {"x-claude-code-session-id": "0f1e2d3c"}
    assert len({_served(stream_text(c, "chat", extra_headers=agent)[1]) for c in clients}) == 1


def test_a_session_whose_member_fails_moves_and_the_others_stay(
    make_gateway: Any, upstream: Any
) -> None:
    members = ["a", "b", "c"]
    for model in members:
        upstream.script(model, Stream([f"from {model}"]))
    route = {
        "targets": [{"pool": [f"up/{m}" for m in members]}],
        "affinity": "session",
        "breaker": {"failure_threshold": 1, "cooldown_s": 60},
    }
    gw = make_gateway(routes={"chat": route})
    client = gw.client()
    users = [f"user-{i}" for i in range(12)]
    home = {u: _served(stream_text(client, "chat", user=u)[1]) for u in users}
    lost = home[users[0]]
    upstream.script(lost.partition("/")[2], Status(503))
    after = {u: _served(stream_text(client, "chat", user=u)[1]) for u in users}
    assert {u for u in users if after[u] != home[u]} == {u for u in users if home[u] == lost}
    # the member's breaker is open now: its sessions go straight to their next member
    record = record_of(stream_text(client, "chat", user=users[0])[1])
    assert record["pools"][0]["affinity"] == "moved" and record["skipped"] == [lost]
    assert [a["target"] for a in record["attempts"]] == [after[users[0]]]


def test_anthropic_metadata_user_id_names_the_session(make_gateway: Any, upstream: Any) -> None:
    members = ["a", "b", "c"]
    for model in members:
        upstream.script(model, Stream([f"from {model}"]))
    route = {"targets": [{"pool": [f"up/{m}" for m in members]}], "affinity": "session"}
    client = make_gateway(routes={"chat": route}).anthropic()
    for _ in range(6):
        client.messages.create(
            model="chat",
            max_tokens=16,
            messages=[{"role": "user", "content": "hi"}],
            metadata={"user_id": "user-42"},
        )
    used = [m for m in members if upstream.requests_for(m)]
    assert len(used) == 1 and len(upstream.requests_for(used[0])) == 6


def test_a_member_at_its_rpm_is_skipped_and_the_rest_serve_without_errors(
    make_gateway: Any, upstream: Any
) -> None:
    for model in ("east", "west"):
        upstream.script(model, Stream([f"from {model}"]))
    providers = {
        "capped": {
            "kind": "openai",
            "base_url": upstream.base_url,
            "limits": {"east": {"rpm": 2}},
        }
    }
    pool = {"pool": ["capped/east", "capped/west"], "balance": "round_robin"}
    gw = make_gateway(providers=providers, routes={"chat": {"targets": [pool]}})
    client = gw.client()
    answers = [stream_text(client, "chat")[0] for _ in range(8)]
    assert answers.count("from east") == 2 and answers.count("from west") == 6
    assert len(upstream.requests_for("east")) == 2  # never sent past its limit


def test_every_member_at_its_limit_is_a_429_with_the_earliest_retry_after(
    make_gateway: Any, upstream: Any
) -> None:
    upstream.script("east", Stream(["from east"]))
    providers = {
        "capped": {"kind": "openai", "base_url": upstream.base_url, "limits": {"*": {"rpm": 1}}}
    }
    gw = make_gateway(providers=providers, routes={"chat": {"targets": ["capped/east"]}})
    client = gw.client()
    assert stream_text(client, "chat")[0] == "from east"
    response = httpx.post(
        f"{gw.base_url}/chat/completions",
        headers={"authorization": f"Bearer {KEY}"},
        json={"model": "chat", "messages": MESSAGES},
    )
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert 50 <= int(response.headers["retry-after"]) <= 60
    assert response.headers["x-should-retry"] == "false"
    assert len(upstream.requests_for("east")) == 1


def test_a_member_that_says_its_quota_is_spent_gets_the_next_requests_last(
    make_gateway: Any, upstream: Any
) -> None:
    spent = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "30s"}
    upstream.script("east", Stream(["from east"], headers=spent))
    upstream.script("west", Stream(["from west"]))
    pool = {"pool": ["up/east", "up/west"], "balance": "round_robin"}
    gw = make_gateway(routes={"chat": {"targets": [pool]}})
    client = gw.client()
    answers = [stream_text(client, "chat")[0] for _ in range(5)]
    # east answered once, said it was spent, and then came after west every time
    assert answers == ["from east"] + ["from west"] * 4


def test_a_late_first_token_is_hedged_and_the_client_gets_one_stream(
    make_gateway: Any, upstream: Any
) -> None:
    upstream.script("slow", Stream(["Late ", "answer."], first_delay_s=30))
    upstream.script("fast", Stream(["Fast ", "answer."]))
    gw = make_gateway(routes={"chat": {"targets": ["up/slow", "up/fast"], "hedge_after_s": 0.2}})
    text, chunks = stream_text(gw.client(), "chat")
    assert text == "Fast answer."
    assert chunks[0].choices[0].delta.role == "assistant"
    assert {c.model for c in chunks} == {"fast"}  # one stream, the winner's
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    record = record_of(chunks)
    assert outcomes(record) == [("up/slow", "cancelled", None), ("up/fast", "ok", None)]
    assert record["attempts"][0]["error"] == "up/fast sent content first"
    assert record["hedges"] == [
        {"attempt": 1, "hedge": 2, "target": "up/fast", "after_s": 0.2, "won": True}
    ]
    # the loser's upstream saw its connection closed while it was still thinking
    eventually(lambda: upstream.left == ["slow"], "the slow upstream to see the client leave")


def test_a_hedged_route_answers_from_the_first_target_when_it_is_quick(
    make_gateway: Any, upstream: Any
) -> None:
    upstream.script("quick", Stream(["On ", "time."]))
    upstream.script("spare", Stream(["never"]))
    gw = make_gateway(routes={"chat": {"targets": ["up/quick", "up/spare"], "hedge_after_s": 5.0}})
    text, chunks = stream_text(gw.client(), "chat")
    assert text == "On time."
    assert record_of(chunks).get("hedges", []) == []
    assert upstream.requests_for("spare") == []
