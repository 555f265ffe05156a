"""The request log and /metrics, wired into a gateway that serves from a database."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from server.store import PolicyStore
from server.store.models import RequestLog
from tests.admin.conftest import CONFIG, Serve, ServedGateway


async def test_every_request_is_logged_and_counted(serve: Serve, store: PolicyStore) -> None:
    config = {
        **CONFIG,
        "providers": {**CONFIG["providers"], "cut": {"kind": "mock", "cut_after": 1}},
        "routes": {
            "chat": {"targets": ["old/a"]},
            "broken": {"targets": ["cut/a"], "max_retries": 0},
        },
    }
    gateway = await serve(config=config)
    assert (await gateway.answer("chat"))[0] == 200
    status, _, message = await gateway.answer("broken")
    assert status == 502 and "cut" in message
    ids = {
        r.headers["x-llmgate-request-id"]
        for r in [
            await gateway.http.post(
                "/v1/chat/completions",
                json={"model": "chat", "messages": [{"role": "user", "content": "x"}]},
            )
        ]
    }
    await gateway.aclose()  # graceful shutdown writes what is still queued

    async with store.engine.connect() as conn:
        rows = (
            await conn.execute(sa.select(RequestLog.route, RequestLog.status, RequestLog.id))
        ).all()
    assert sorted((route, status) for route, status, _ in rows) == [
        ("broken", "partial"),
        ("chat", "ok"),
        ("chat", "ok"),
    ]
    assert ids <= {row_id for _, _, row_id in rows}


def _down_first(max_retries: int) -> dict[str, Any]:
    """Route ``chat``: ``down/a``, which always answers 503, then ``old/a``."""
    return {
        **CONFIG,
        "providers": {**CONFIG["providers"], "down": {"kind": "mock", "fail_status": 503}},
        "routes": {"chat": {"targets": ["down/a", "old/a"], "max_retries": max_retries}},
    }


async def test_metrics_count_requests_attempts_and_fallbacks(serve: Serve) -> None:
    gateway = await serve(config=_down_first(max_retries=0))
    assert (await gateway.answer("chat"))[:2] == (200, "old/a")
    response = await gateway.http.get("/metrics")
    assert response.status_code == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    requests = [
        v
        for (name, labels), v in samples.items()
        if name == "llmgate_requests_total"
        and ("route", "chat") in labels
        and ("status", "ok") in labels
    ]
    assert requests == [1.0]
    failed_attempts = [
        v
        for (name, labels), v in samples.items()
        if name == "llmgate_attempts_total" and ("target", "down/a") in labels
    ]
    assert failed_attempts == [1.0]


async def _metrics(gateway: ServedGateway) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample ``GET /metrics`` answers, by name and labels."""
    response = await gateway.http.get("/metrics")
    assert response.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


async def test_metrics_show_the_requests_in_flight_of_each_target_tried(serve: Serve) -> None:
    gateway = await serve()
    assert (await gateway.answer("chat"))[0] == 200

    samples = await _metrics(gateway)
    assert samples[("llmgate_target_in_flight", frozenset({("target", "old/a")}))] == 0


async def test_metrics_count_each_target_selected_by_route(serve: Serve) -> None:
    gateway = await serve(config=_down_first(max_retries=1))
    assert (await gateway.answer("chat"))[:2] == (200, "old/a")

    samples = await _metrics(gateway)
    selected = {
        dict(labels)["target"]: value
        for (name, labels), value in samples.items()
        if name == "llmgate_selections_total" and ("route", "chat") in labels
    }
    assert selected == {"down/a": 2, "old/a": 1}  # a retry is a selection too
