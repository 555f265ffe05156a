"""The failure reasons a route's ``fallback_on`` may name are exactly those of the error
classes an upstream attempt can fail with and fall back from."""

from __future__ import annotations

import typing

from router.errors import AnswerDiverged, CircuitOpen, ProviderError
from router.policy import Reason

# Not failures of an upstream attempt: llmgate's own decisions, never a route's choice.
NOT_ATTEMPT_FAILURES = {AnswerDiverged, CircuitOpen}


def _classes(cls: type[ProviderError]) -> set[type[ProviderError]]:
    out = {cls}
    for sub in cls.__subclasses__():
        out |= _classes(sub)
    return out


def test_fallback_on_names_every_reason_an_attempt_can_fall_back_from_and_no_other() -> None:
    reasons = {
        cls.reason
        for cls in _classes(ProviderError) - {ProviderError} - NOT_ATTEMPT_FAILURES
        if cls.fallback
    }
    assert reasons == set(typing.get_args(Reason))
