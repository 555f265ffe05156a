"""`Engine`: a provider whose prefill support depends on the model (`prefill_ok`)."""

from __future__ import annotations

import pytest

from router.engine import Engine
from router.events import AttemptStarted
from router.policy import RoutePolicy
from router.table import RoutingTable
from tests.unit._fakes import REQUEST, FakeProvider, Script, answer, cut, of_type


class PerModelPrefill(FakeProvider):
    """Declares prefill support, except for models named ``legacy-*``."""

    def prefill_ok(self, model: str) -> bool:
        return not model.startswith("legacy-")


@pytest.mark.parametrize(("model", "shape"), [("current-1", "prefill"), ("legacy-1", "user_turn")])
async def test_prefill_mode_asks_the_provider_about_the_target_model(
    engine: Engine, model: str, shape: str
) -> None:
    continuation: Script = answer(" a time")
    a = FakeProvider("a", cut("Once", " upon"))
    b = PerModelPrefill("b", continuation, supports_prefill=True)
    policy = RoutePolicy(targets=["a/m", f"b/{model}"], stream_fallback_mode="prefill")
    tbl = RoutingTable({"a": a, "b": b}, {"r": policy})

    events = [e async for batch in engine.stream(tbl, "r", REQUEST, request_id="r") for e in batch]

    assert [e.shape for e in of_type(events, AttemptStarted)] == ["original", shape]
    assert b.calls[0].request.prefill is (shape == "prefill")
