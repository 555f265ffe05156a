"""Reading OpenAI-shaped chat requests, for adapters that translate them.

The engine and its clients speak OpenAI's chat format; adapters for other wire formats
take messages and parameters apart with these. A request that cannot be expressed for
an upstream is that upstream's `InvalidRequest`: another target may still take it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import msgspec

from router.errors import InvalidRequest

__all__ = [
    "Image",
    "content_parts",
    "data_url",
    "parts",
    "stop_sequences",
    "text_of",
    "tool_arguments",
]

Part = dict[str, Any]


def parts(content: Any) -> list[dict[str, Any]]:
    """A message's ``content`` as a list of parts (a string is one text part)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        return [p if isinstance(p, dict) else {"type": "text", "text": str(p)} for p in content]
    return [{"type": "text", "text": str(content)}]


def text_of(content: Any) -> str:
    """The text of a message whose parts can only be text (system and tool messages)."""
    if isinstance(content, str):
        return content
    return "".join(str(p.get("text", "")) for p in parts(content) if p.get("type") == "text")


def data_url(url: str) -> tuple[str, str] | None:
    """``(media type, base64 data)`` of a ``data:`` URL, or None for any other URL."""
    if not url.startswith("data:"):
        return None
    header, sep, data = url[5:].partition(",")
    media_type, _, encoding = header.partition(";")
    if not sep or encoding != "base64":
        return None
    return media_type or "application/octet-stream", data


class Image(NamedTuple):
    """An ``image_url`` part: its URL and, for a ``data:`` URL, its content inline."""

    url: str
    inline: tuple[str, str] | None
    """``(media type, base64 data)``, or None for a URL the upstream fetches itself."""


def content_parts(
    content: Any,
    provider: str,
    api: str,
    *,
    text: Callable[[Part], Part | None],
    image: Callable[[Image], Part],
) -> list[Part]:
    """User or assistant content in an upstream's shape: each text part through ``text``
    (None drops it), each image part through ``image``. A part of any other type is the
    upstream's `InvalidRequest`, raised before anything is sent."""
    out: list[Part] = []
    for part in parts(content):
        kind = part.get("type")
        if kind == "text":
            translated = text(part)
            if translated is not None:
                out.append(translated)
        elif kind == "image_url":
            value = part.get("image_url")
            url = str(value.get("url", "") if isinstance(value, dict) else value or "")
            out.append(image(Image(url, data_url(url))))
        else:
            raise InvalidRequest(
                f"{provider}: content parts of type {kind!r} cannot be sent to {api}",
                provider=provider,
            )
    return out


def tool_arguments(raw: Any, provider: str) -> Any:
    """An assistant tool call's ``arguments`` (a JSON string) as a value."""
    if not isinstance(raw, str):
        return raw if raw is not None else {}
    if not raw.strip():
        return {}
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        raise InvalidRequest(
            f"{provider}: tool call arguments are not valid JSON: {raw[:200]!r}",
            provider=provider,
        ) from None


def stop_sequences(stop: Any) -> list[str]:
    """OpenAI's ``stop`` (a string or a list) as a list."""
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    return [str(s) for s in stop]
