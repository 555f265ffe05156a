"""MockProvider: deterministic answers, injected failures, exact continuations."""

from __future__ import annotations

from typing import Any

import pytest

from providers.mock import MockConfig, MockProvider
from router.errors import ProviderError, RateLimited, StreamInterrupted, UpstreamUnavailable
from router.events import Chunk, Finish, TextDelta, Usage
from router.provider import AttemptOptions, ProviderRequest

QUESTION = [{"role": "user", "content": "Tell me about routing"}]


async def run(
    provider: MockProvider,
    messages: list[dict[str, Any]] = QUESTION,
    *,
    prefill: bool = False,
    into: list[Chunk] | None = None,
    **params: Any,
) -> list[Chunk]:
    chunks = into if into is not None else []
    request = ProviderRequest(messages, params, prefill=prefill)
    async for batch in provider.stream("m", request, AttemptOptions()):
        chunks.extend(batch)
    return chunks


def text_of(chunks: list[Chunk]) -> str:
    return "".join(c.text for c in chunks if isinstance(c, TextDelta))


async def test_answer_is_a_fixed_function_of_the_question() -> None:
    first = text_of(await run(MockProvider("a", MockConfig(tokens=12))))
    again = text_of(await run(MockProvider("b", MockConfig(tokens=12))))
    other = text_of(
        await run(
            MockProvider("a", MockConfig(tokens=12)),
            [{"role": "user", "content": "Something else entirely"}],
        )
    )
    assert first == again == MockProvider("c", MockConfig(tokens=12)).answer(QUESTION)
    assert len(first.split(" ")) == 12 and first.endswith(".")
    assert other != first


async def test_streams_one_word_per_delta_then_finish_and_usage() -> None:
    chunks = await run(MockProvider("m", MockConfig(tokens=5)))
    deltas = [c for c in chunks if isinstance(c, TextDelta)]
    assert len(deltas) == 5
    assert chunks[-2:] == [Finish("stop"), Usage(4, 5, 9)]


async def test_max_tokens_shortens_the_answer() -> None:
    chunks = await run(MockProvider("m", MockConfig(tokens=40)), max_tokens=3)
    assert len(text_of(chunks).split(" ")) == 3


async def test_fixed_text_replaces_the_generated_answer() -> None:
    assert text_of(await run(MockProvider("m", MockConfig(text="Hi there.")))) == "Hi there."


async def test_cut_after_interrupts_the_stream_after_that_many_words() -> None:
    provider = MockProvider("m", MockConfig(tokens=10, cut_after=3))
    delivered: list[Chunk] = []
    with pytest.raises(StreamInterrupted):
        await run(provider, into=delivered)
    assert len(delivered) == 3
    assert provider.answer(QUESTION).startswith(text_of(delivered))


async def test_fail_status_fails_fail_times_requests_then_recovers() -> None:
    provider = MockProvider("m", MockConfig(fail_status=429, fail_times=2, retry_after_s=1.5))
    for _ in range(2):
        with pytest.raises(RateLimited) as info:
            await run(provider)
        assert info.value.retry_after == 1.5
        assert info.value.upstream_status == 429
    assert text_of(await run(provider)) == provider.answer(QUESTION)


async def test_fail_status_without_fail_times_always_fails() -> None:
    provider = MockProvider("m", MockConfig(fail_status=503))
    for _ in range(3):
        with pytest.raises(ProviderError) as info:
            await run(provider)
        assert type(info.value) is UpstreamUnavailable
        assert info.value.retry_after is None


async def partial_answer(words: int) -> tuple[str, str]:
    """(full answer, the text a stream cut after ``words`` words delivered)."""
    cut = MockProvider("m", MockConfig(tokens=10, cut_after=words))
    delivered: list[Chunk] = []
    with pytest.raises(StreamInterrupted):
        await run(cut, into=delivered)
    return cut.answer(QUESTION), text_of(delivered)


@pytest.mark.parametrize("words", [1, 4, 9])
async def test_prefill_continuation_continues_exactly_where_the_partial_ends(
    words: int,
) -> None:
    full, partial = await partial_answer(words)
    messages = [*QUESTION, {"role": "assistant", "content": partial}]
    rest = text_of(await run(MockProvider("n", MockConfig(tokens=10)), messages, prefill=True))
    assert partial + rest == full


async def test_prefill_continuation_works_from_the_middle_of_a_word() -> None:
    full = MockProvider("m", MockConfig(tokens=10)).answer(QUESTION)
    messages = [*QUESTION, {"role": "assistant", "content": full[:17]}]
    rest = text_of(await run(MockProvider("n", MockConfig(tokens=10)), messages, prefill=True))
    assert full[:17] + rest == full


@pytest.mark.parametrize("overlap_words", [1, 3])
@pytest.mark.parametrize("words", [4, 9])
async def test_user_turn_continuation_repeats_the_last_overlap_words_words(
    words: int, overlap_words: int
) -> None:
    full, partial = await partial_answer(words)
    messages = [
        *QUESTION,
        {"role": "assistant", "content": partial},
        {"role": "user", "content": "Continue."},
    ]
    provider = MockProvider("n", MockConfig(tokens=10, overlap_words=overlap_words))
    continuation = text_of(await run(provider, messages))
    repeated = " ".join(partial.split()[-overlap_words:]) + " "
    assert continuation == repeated + full[len(partial) :]


async def test_user_turn_continuation_without_overlap_continues_exactly() -> None:
    full, partial = await partial_answer(5)
    messages = [
        *QUESTION,
        {"role": "assistant", "content": partial},
        {"role": "user", "content": "Continue."},
    ]
    provider = MockProvider("n", MockConfig(tokens=10, overlap_words=0))
    assert partial + text_of(await run(provider, messages)) == full


async def test_an_unrelated_assistant_message_gets_the_whole_answer() -> None:
    messages = [*QUESTION, {"role": "assistant", "content": "Something I never said"}]
    provider = MockProvider("n", MockConfig(tokens=10))
    assert text_of(await run(provider, messages, prefill=True)) == provider.answer(QUESTION)


@pytest.mark.parametrize("supports_prefill", [True, False])
def test_prefill_ok_is_supports_prefill_for_every_model(supports_prefill: bool) -> None:
    provider = MockProvider("m", MockConfig(supports_prefill=supports_prefill))
    assert provider.prefill_ok("legacy-1") is supports_prefill
    assert provider.prefill_ok("m") is supports_prefill
