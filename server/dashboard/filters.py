"""Jinja filters and globals of the dashboard's templates."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

__all__ = ["FILTERS", "GLOBALS"]


def ms(value: float | None) -> str:
    """A duration in milliseconds, readable: ``840 ms``, ``2.4 s``, ``—`` for none."""
    if value is None:
        return "—"
    if value < 1000:
        return f"{value:.0f} ms"
    if value < 60_000:
        return f"{value / 1000:.1f} s"
    return f"{value / 60_000:.1f} min"


def usd(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 0.01:
        return f"${value:.6f}"
    return f"${value:.4f}"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def when(value: datetime | None) -> str:
    """A UTC timestamp as ``2026-11-23 14:05:09``."""
    if value is None:
        return "—"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def blank(value: Any) -> Any:
    """None as an empty attribute (``data-value=""``), any other value as it is."""
    return "" if value is None else value


FILTERS = {"ms": ms, "usd": usd, "percent": percent, "when": when, "blank": blank}
GLOBALS: dict[str, Any] = {}
"""None: the pages get their URLs from their view models and litestar's ``url_for``."""
