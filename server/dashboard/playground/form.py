"""The playground's form: what was typed, what is wrong with it, and the page around it.

`RunForm` keeps the form as typed, so that it is shown back with its errors;
`RunForm.validate` makes a `RunSpec` of it. `Playground` and `RunPanel` are what the
templates show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from router.table import RoutingTable
from server.dashboard.playground.simulate import SIMULATIONS, RouteInfo, Simulate, route_info
from server.dashboard.playground.tokens import RunSpec

__all__ = ["MAX_PROMPT_CHARS", "MAX_WORDS", "Playground", "RunForm", "RunPanel"]

MAX_PROMPT_CHARS = 20_000
MAX_WORDS = 100_000


class RunForm(msgspec.Struct):
    """The form as typed, shown back with the errors."""

    route: str = ""
    prompt: str = ""
    max_tokens: str = ""
    simulate: str = "none"
    n: str = "5"

    @classmethod
    def posted(cls, data: Any) -> RunForm:
        """The form of a POST (``data``: its form dict); a field left out is empty."""
        typed = {f: str(data.get(f) or "") for f in cls.__struct_fields__}
        return cls(**{**typed, "simulate": typed["simulate"] or "none"})

    def validate(self, table: RoutingTable) -> tuple[RunSpec | None, dict[str, str]]:
        """The run to start, or the message of each field in error."""
        errors: dict[str, str] = {}
        info = route_info(table, self.route)
        if info is None:
            errors["route"] = (
                "Pick a route."
                if not self.route
                else f"There is no route {self.route!r} (any more)."
            )
        if not self.prompt.strip():
            errors["prompt"] = "Type a prompt."
        elif len(self.prompt) > MAX_PROMPT_CHARS:
            errors["prompt"] = f"At most {MAX_PROMPT_CHARS} characters."
        max_tokens: int | None = None
        if self.max_tokens.strip():
            max_tokens = _whole(self.max_tokens, 1)
            if max_tokens is None:
                errors["max_tokens"] = f"A whole number from 1 to {MAX_WORDS}, or empty."
        simulate: Simulate = "none"
        chosen = [key for key, _ in SIMULATIONS if key == self.simulate]
        if not chosen:
            errors["simulate"] = "Pick one of the listed failures."
        else:
            simulate = chosen[0]
            if simulate != "none" and info is not None and info.mock_target is None:
                errors["simulate"] = "This route has no mock target to fail."
        n: int | None = 0
        if simulate in ("cut", "stall", "slow"):
            n = _whole(self.n, 0)
            if n is None:
                unit = "milliseconds" if simulate == "slow" else "words"
                errors["n"] = f"A whole number of {unit} from 0 to {MAX_WORDS}."
        if errors or n is None:
            return None, errors
        return RunSpec(self.route, self.prompt, max_tokens, simulate, n), {}


def _whole(text: str, least: int) -> int | None:
    """``text`` as a whole number from ``least`` to `MAX_WORDS`, or None."""
    try:
        value = int(text)
    except ValueError:
        return None
    return value if least <= value <= MAX_WORDS else None


@dataclass(frozen=True, slots=True)
class RunPanel:
    """A run the form started: the panel that connects to its stream."""

    stream_url: str
    spec: RunSpec
    mock_target: str | None

    @property
    def simulated(self) -> bool:
        return self.spec.simulated

    @property
    def description(self) -> str:
        """What a simulated run does to the route ("" for a real one)."""
        spec, target = self.spec, self.mock_target
        if spec.simulate == "fail":
            return f"{target} fails before its first token (HTTP 503)"
        if spec.simulate == "cut":
            return f"{target} cuts the stream after {spec.n} words"
        if spec.simulate == "stall":
            return f"{target} stalls after {spec.n} words"
        if spec.simulate == "slow":
            return f"{target} sends its first token after {spec.n} ms"
        return ""


@dataclass(frozen=True, slots=True)
class Playground:
    """The page's panel: the form with its errors, the chosen route, the run if any."""

    routes: list[str]
    form: RunForm
    errors: dict[str, str] = field(default_factory=dict)
    run: RunPanel | None = None
    simulations: tuple[tuple[Simulate, str], ...] = SIMULATIONS
    info: RouteInfo | None = None

    @classmethod
    def of(cls, table: RoutingTable, form: RunForm, **rest: Any) -> Playground:
        return cls(list(table.routes), form, info=route_info(table, form.route), **rest)

    @property
    def mock_target(self) -> str | None:
        return None if self.info is None else self.info.mock_target

    @property
    def can_simulate(self) -> bool:
        """Whether the chosen route has a mock target (failures are simulated on mocks)."""
        return self.mock_target is not None

    @property
    def simulate_invalid(self) -> bool:
        return "simulate" in self.errors or "n" in self.errors
