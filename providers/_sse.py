"""Incremental server-sent-events parsing over raw byte chunks."""

from __future__ import annotations

__all__ = ["SSEParser"]


class SSEParser:
    """Feed bytes as they arrive; get back complete ``(event, data)`` pairs.

    Implements the parts of the SSE grammar upstream LLM APIs use: ``event:`` and
    (possibly multi-line) ``data:`` fields, comments, LF or CRLF line ends.
    """

    __slots__ = ("_buf", "_cr")

    def __init__(self) -> None:
        self._buf = b""
        self._cr = False  # the last read ended in CR: a leading LF completes its CRLF

    def feed(self, data: bytes) -> list[tuple[bytes | None, bytes]]:
        if self._cr and data[:1] == b"\n":
            data = data[1:]
            self._cr = False
        if data:
            self._cr = data.endswith(b"\r")
        buf = self._buf + data if self._buf else data
        if b"\r" in buf:
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        *blocks, self._buf = buf.split(b"\n\n")
        out: list[tuple[bytes | None, bytes]] = []
        for block in blocks:
            if block.startswith(b"data: ") and b"\n" not in block:  # the common case
                out.append((None, block[6:]))
                continue
            event: bytes | None = None
            lines: list[bytes] = []
            for line in block.split(b"\n"):
                name, _, value = line.partition(b":")
                if value.startswith(b" "):
                    value = value[1:]
                if name == b"data":
                    lines.append(value)
                elif name == b"event":
                    event = value
            if lines:
                out.append((event, b"\n".join(lines)))
        return out

    @property
    def pending(self) -> bool:
        """Bytes of an unfinished event are buffered (a cut mid-event)."""
        return bool(self._buf.strip())
