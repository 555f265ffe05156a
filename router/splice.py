"""Joining a continuation onto text the client already has, without duplicating it.

A continuation's first characters are held back only until it is known whether they
repeat what the client already saw; in the common case that is decided on the first
chunk.
"""

from __future__ import annotations

__all__ = ["OverlapTrimmer", "RestartMatcher"]


class OverlapTrimmer:
    """For ``prefill``/``user_turn``: drops a continuation's repeat of the delivered tail.

    Models asked to continue often restate the last few words. The longest overlap of
    at least ``min_overlap`` characters between the end of the delivered text and the
    start of the continuation is removed.
    """

    __slots__ = ("_buf", "_min", "_tail", "reset", "trimmed")

    def __init__(self, delivered: str, *, window: int = 512, min_overlap: int = 4) -> None:
        self._tail = delivered[-window:]
        self._buf = ""
        self._min = min_overlap
        self.trimmed = 0
        self.reset = False

    def feed(self, text: str) -> str | None:
        """The text to emit now, or ``None`` while the overlap is still undecided."""
        self._buf += text
        tail, buf = self._tail, self._buf
        # A longer overlap is still possible while the buffer occurs inside the tail
        # somewhere before its very end.
        if len(buf) < len(tail) and tail.find(buf, 0, len(tail) - 1) != -1:
            return None
        return self.finish()

    def finish(self) -> str:
        tail, buf = self._tail, self._buf
        for k in range(min(len(tail), len(buf)), self._min - 1, -1):
            if tail.endswith(buf[:k]):
                self.trimmed = k
                return buf[k:]
        return buf


class RestartMatcher:
    """For ``restart``: the new answer starts from scratch. While it repeats what the
    client already has, it is held back; if it covers all of it, the answer continues
    seamlessly (no reset). If it diverges, the client must discard: ``reset`` is set and
    the whole new answer is emitted."""

    __slots__ = ("_buf", "_delivered", "reset", "trimmed")

    def __init__(self, delivered: str) -> None:
        self._delivered = delivered
        self._buf = ""
        self.reset = False
        self.trimmed = 0

    def feed(self, text: str) -> str | None:
        self._buf += text
        d, buf = self._delivered, self._buf
        if len(buf) < len(d) and d.startswith(buf):
            return None
        if buf.startswith(d):
            self.trimmed = len(d)
            return buf[len(d) :]
        self.reset = True
        return buf

    def finish(self) -> str:
        if self._buf.startswith(self._delivered):
            self.trimmed = len(self._delivered)
            return self._buf[len(self._delivered) :]
        self.reset = True
        return self._buf
