"""Joining a continuation onto delivered text: `OverlapTrimmer` and `RestartMatcher`."""

from __future__ import annotations

import pytest

from router.splice import OverlapTrimmer, RestartMatcher


def play(splice: OverlapTrimmer | RestartMatcher, chunks: list[str]) -> tuple[str, int]:
    """Feed chunks the way the engine does; return (text emitted, chunks held back)."""
    out: list[str] = []
    held = 0
    decided = False
    for chunk in chunks:
        if decided:
            out.append(chunk)
            continue
        emit = splice.feed(chunk)
        if emit is None:
            held += 1
        else:
            decided = True
            out.append(emit)
    if not decided:  # the stream ended while undecided
        out.append(splice.finish())
    return "".join(out), held


@pytest.mark.parametrize(
    ("delivered", "chunks", "options", "emitted", "trimmed", "held"),
    [
        pytest.param("The answer is", [" 42."], {}, " 42.", 0, 0, id="no-overlap"),
        pytest.param(
            "The quick brown fox", ["brown fox jumps"], {}, " jumps", 9, 0, id="partial-overlap"
        ),
        pytest.param("Hello world", ["world"], {}, "", 5, 0, id="full-overlap"),
        pytest.param(
            "The quick brown fox",
            ["bro", "wn f", "ox jumps"],
            {},
            " jumps",
            9,
            2,
            id="overlap-across-chunks",
        ),
        pytest.param(
            "I like it", ["it", " is fine"], {}, "it is fine", 0, 0, id="short-overlap-kept"
        ),
        pytest.param(
            "I like it",
            ["it is fine"],
            {"min_overlap": 2},
            " is fine",
            2,
            0,
            id="min-overlap-is-the-threshold",
        ),
        pytest.param(
            "It was a dark night",
            [" a", " stormy"],
            {},
            " a stormy",
            0,
            1,
            id="coincidental-match-held-then-released",
        ),
        pytest.param(
            "say hello world", ["hello"], {}, "hello", 0, 1, id="undecided-at-end-released"
        ),
        pytest.param(
            "The end.", ["The end. Next"], {"window": 4}, "The end. Next", 0, 0, id="outside-window"
        ),
    ],
)
def test_overlap_trimmer_drops_only_a_repeat_of_the_delivered_tail(
    delivered: str,
    chunks: list[str],
    options: dict[str, int],
    emitted: str,
    trimmed: int,
    held: int,
) -> None:
    trimmer = OverlapTrimmer(delivered, **options)

    assert play(trimmer, chunks) == (emitted, held)
    assert trimmer.trimmed == trimmed
    assert trimmer.reset is False


@pytest.mark.parametrize(
    ("delivered", "chunks", "emitted", "reset", "trimmed", "held"),
    [
        pytest.param("Hello wor", ["Hello", " world!"], "ld!", False, 9, 1, id="identical-prefix"),
        pytest.param("Hello", ["Hello"], "", False, 5, 0, id="identical-whole"),
        pytest.param("Hello world", ["Goodbye"], "Goodbye", True, 0, 0, id="diverges-at-once"),
        pytest.param("Hello world", ["Hel", "p me"], "Help me", True, 0, 1, id="diverges-later"),
        pytest.param("Hello world", ["Hello"], "Hello", True, 0, 1, id="ends-short-of-delivered"),
    ],
)
def test_restart_matcher_is_seamless_on_identical_prefix_and_resets_on_divergence(
    delivered: str,
    chunks: list[str],
    emitted: str,
    reset: bool,
    trimmed: int,
    held: int,
) -> None:
    matcher = RestartMatcher(delivered)

    assert play(matcher, chunks) == (emitted, held)
    assert matcher.reset is reset
    assert matcher.trimmed == trimmed
