"""SSEParser: the SSE grammar upstreams use, however the bytes are split into reads."""

from __future__ import annotations

import pytest

from providers._sse import SSEParser

Events = list[tuple[bytes | None, bytes]]


def parse(*reads: bytes) -> Events:
    parser = SSEParser()
    return [event for data in reads for event in parser.feed(data)]


@pytest.mark.parametrize(
    ("wire", "events"),
    [
        pytest.param(b"data: x\n\n", [(None, b"x")], id="one-event"),
        pytest.param(b"data: a\n\ndata: b\n\n", [(None, b"a"), (None, b"b")], id="two-events"),
        pytest.param(b"data: a\r\n\r\n", [(None, b"a")], id="crlf"),
        pytest.param(b"data: a\r\rdata: b\r\r", [(None, b"a"), (None, b"b")], id="cr"),
        pytest.param(b"data: a\ndata: b\n\n", [(None, b"a\nb")], id="multi-line-data"),
        pytest.param(b"data: a\r\ndata: b\r\n\r\n", [(None, b"a\nb")], id="multi-line-crlf"),
        pytest.param(b"data:x\n\n", [(None, b"x")], id="no-space-after-colon"),
        pytest.param(b"data:  x\n\n", [(None, b" x")], id="only-one-space-stripped"),
        pytest.param(b"data\n\n", [(None, b"")], id="field-without-colon"),
        pytest.param(
            b"event: message_start\ndata: {}\n\n", [(b"message_start", b"{}")], id="event-name"
        ),
        pytest.param(
            b"event: ping\ndata: 1\n\ndata: 2\n\n",
            [(b"ping", b"1"), (None, b"2")],
            id="event-name-is-per-event",
        ),
        pytest.param(b": keep-alive\n\n", [], id="comment-only"),
        pytest.param(b": ping\ndata: x\n\n", [(None, b"x")], id="comment-before-data"),
        pytest.param(b"event: ping\n\n", [], id="event-without-data-is-dropped"),
        pytest.param(b"id: 7\nretry: 10\ndata: x\n\n", [(None, b"x")], id="other-fields-ignored"),
        pytest.param(b"\n\n\ndata: x\n\n", [(None, b"x")], id="extra-blank-lines"),
        pytest.param(b"data: [DONE]\n\n", [(None, b"[DONE]")], id="done-marker"),
    ],
)
def test_parses_sse_grammar(wire: bytes, events: Events) -> None:
    assert parse(wire) == events


# One stream exercising every rule, with CRLF line ends where a split can fall
# between CR and LF.
STREAM = (
    b": hello\r\n\r\n"
    b'event: message_start\r\ndata: {"a": 1}\r\n\r\n'
    b"data: line one\r\ndata: line two\r\n\r\n"
    b'data: {"text": "caf\xc3\xa9"}\n\n'
    b"event: ping\ndata:\n\n"
    b"data: [DONE]\r\n\r\n"
)
STREAM_EVENTS: Events = [
    (b"message_start", b'{"a": 1}'),
    (None, b"line one\nline two"),
    (None, b'{"text": "caf\xc3\xa9"}'),
    (b"ping", b""),
    (None, b"[DONE]"),
]


def test_whole_stream_parses_in_one_read() -> None:
    assert parse(STREAM) == STREAM_EVENTS


@pytest.mark.parametrize("split", range(1, len(STREAM)))
def test_any_split_into_two_reads_gives_the_same_events(split: int) -> None:
    assert parse(STREAM[:split], STREAM[split:]) == STREAM_EVENTS


@pytest.mark.parametrize("split", range(1, len(STREAM) - 1, 7))
def test_any_split_into_three_reads_gives_the_same_events(split: int) -> None:
    for second in range(split + 1, len(STREAM)):
        reads = STREAM[:split], STREAM[split:second], STREAM[second:]
        assert parse(*reads) == STREAM_EVENTS, reads


def test_byte_by_byte_reads_give_the_same_events() -> None:
    assert parse(*(STREAM[i : i + 1] for i in range(len(STREAM)))) == STREAM_EVENTS


def test_empty_reads_are_harmless() -> None:
    assert parse(b"", b"data: x", b"", b"\n\n", b"") == [(None, b"x")]


def test_pending_says_an_event_was_cut_in_the_middle() -> None:
    parser = SSEParser()
    assert not parser.pending
    assert parser.feed(b'data: {"partial') == []
    assert parser.pending
    assert parser.feed(b'": 1}\n\n') == [(None, b'{"partial": 1}')]
    assert not parser.pending


def test_trailing_blank_lines_are_not_pending() -> None:
    parser = SSEParser()
    parser.feed(b"data: x\n\n\n")
    assert not parser.pending
