"""Small server-rendered SVG charts: no JavaScript, no chart library, no build step."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

__all__ = ["Bar", "bar_chart"]

Bar = tuple[str, int, int]
"""One bar: its label (the tooltip), requests, and how many of them were errors."""


def bar_chart(
    bars: Sequence[Bar],
    *,
    width: int = 240,
    height: int = 40,
    axis: tuple[str, str] | None = None,
    title: str = "",
) -> Markup:
    """Requests per time bucket as bars, the error share of each bar in red on top of
    it; every bar has a tooltip. ``axis`` labels the first and last bucket."""
    peak = max((n for _, n, _ in bars), default=0)
    label_h = 14 if axis else 0
    plot_h = height - label_h
    slot = width / max(len(bars), 1)
    gap = min(2.0, slot * 0.2)
    parts = [
        f'<svg class="chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>" if title else "",
        f'<line class="baseline" x1="0" y1="{plot_h - 0.5}" x2="{width}" y2="{plot_h - 0.5}"/>',
    ]
    for i, (label, total, errors) in enumerate(bars):
        x = i * slot + gap / 2
        w = max(slot - gap, 1.0)
        h = 0.0 if not peak else max(plot_h * total / peak, 1.0 if total else 0.0)
        eh = 0.0 if not total else h * errors / total
        tip = f"{label}: {total} request{'s' if total != 1 else ''}"
        if errors:
            tip += f", {errors} error{'s' if errors != 1 else ''}"
        parts.append(f'<g class="bucket" data-requests="{total}" data-errors="{errors}">')
        parts.append(f"<title>{escape(tip)}</title>")
        # A transparent full-height rect, so that a short bar still shows its tooltip.
        parts.append(f'<rect class="hit" x="{x:.1f}" y="0" width="{w:.1f}" height="{plot_h}"/>')
        if h:
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{plot_h - h:.1f}" width="{w:.1f}" '
                f'height="{h:.1f}"/>'
            )
        if eh:
            parts.append(
                f'<rect class="bar-errors" x="{x:.1f}" y="{plot_h - h:.1f}" width="{w:.1f}" '
                f'height="{eh:.1f}"/>'
            )
        parts.append("</g>")
    if axis:
        first, last = (escape(a) for a in axis)
        parts.append(f'<text class="axis" x="0" y="{height - 2}">{first}</text>')
        parts.append(
            f'<text class="axis" x="{width}" y="{height - 2}" text-anchor="end">{last}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
