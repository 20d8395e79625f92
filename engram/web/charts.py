"""Small charts drawn on the server as SVG markup: a line (or area) over time and horizontal
bars. No chart library and no script: a chart is part of the page's HTML, so it renders
before any JavaScript, costs a few hundred bytes, and prints.

Every chart is a ``<figure>`` whose ``<svg role="img">`` is named by its ``<title>`` and
described by a ``<desc>`` summing up the values (lowest, highest, latest), followed by the
same numbers in a visually hidden table for screen readers. Colours are presentation
attributes in ``currentColor`` (with opacities): the figure's CSS ``color`` themes the chart,
dark mode included, and the CSP (no ``style=``) is respected. Text is escaped here; the
result is :class:`markupsafe.Markup` for templates.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from html import escape

from markupsafe import Markup

Formatter = Callable[[float], str]

_ids = itertools.count(1)
WIDTH = 600
LABEL_CHARS = 28


def _plain(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _nice_max(value: float) -> float:
    """The top of the axis: ``value`` rounded up to 1, 2 or 5 times a power of ten."""
    if value <= 0:
        return 1.0
    power = 10 ** (len(str(int(value))) - 1) if value >= 1 else 1
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def _short(text: str, limit: int = LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _table(caption: str, head: tuple[str, str], rows: Sequence[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th scope=row>{escape(a)}</th><td>{escape(b)}</td></tr>" for a, b in rows)
    return (
        f'<table class="sr-only"><caption>{escape(caption)}</caption>'
        f"<thead><tr><th scope=col>{escape(head[0])}</th><th scope=col>{escape(head[1])}</th>"
        f"</tr></thead><tbody>{body}</tbody></table>"
    )


def _open(kind: str, title: str, desc: str, height: int) -> tuple[str, str]:
    """The figure and svg opening tags of a new chart, and its id."""
    uid = f"chart{next(_ids)}"
    return (
        f'<figure class="chart chart-{kind}" id="{uid}">'
        f'<svg viewBox="0 0 {WIDTH} {height}" role="img" aria-labelledby="{uid}-t"'
        f' aria-describedby="{uid}-d"'
        ' xmlns="http://www.w3.org/2000/svg" font-size="12" fill="currentColor">'
        f'<title id="{uid}-t">{escape(title)}</title><desc id="{uid}-d">{escape(desc)}</desc>'
    ), uid


def summary(points: Sequence[tuple[str, float]], fmt: Formatter, empty: str) -> str:
    """A sentence of the series' lowest, highest and latest values ("" labels omitted)."""
    if not points:
        return empty
    low = min(points, key=lambda p: p[1])
    high = max(points, key=lambda p: p[1])
    last = points[-1]
    return (
        f"{points[0][0]} – {last[0]}: min {fmt(low[1])} ({low[0]}),"
        f" max {fmt(high[1])} ({high[0]}), latest {fmt(last[1])}."
    )


def line_chart(
    points: Sequence[tuple[str, float]],
    *,
    title: str,
    head: tuple[str, str],
    empty: str,
    fmt: Formatter = _plain,
    area: bool = True,
    height: int = 180,
) -> Markup:
    """``points`` (label, value), in order, as a line over a shaded area, with a y axis from
    0 and the first, middle and last labels under it. ``head`` names the hidden table's
    columns; ``empty`` is the description of a chart without points."""
    desc = summary(points, fmt, empty)
    svg, _ = _open("line", title, desc, height)
    left, right, top, bottom = 56, 12, 10, height - 26
    parts = [svg]
    peak = _nice_max(max((v for _, v in points), default=0))
    for i in range(3):  # grid lines at 0, half and the top, labelled
        value = peak * i / 2
        y = bottom - (bottom - top) * i / 2
        parts.append(
            f'<line x1="{left}" x2="{WIDTH - right}" y1="{y:.1f}" y2="{y:.1f}"'
            ' stroke="currentColor" stroke-opacity="0.2" stroke-width="1"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(fmt(value))}</text>"
        )
    if points:
        span = max(len(points) - 1, 1)
        xy = [
            (
                left + (WIDTH - left - right) * (i / span if len(points) > 1 else 0.5),
                bottom - (bottom - top) * (v / peak),
            )
            for i, (_, v) in enumerate(points)
        ]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
        if area and len(xy) > 1:
            parts.append(
                f'<polygon points="{xy[0][0]:.1f},{bottom} {path} {xy[-1][0]:.1f},{bottom}"'
                ' fill="currentColor" fill-opacity="0.15" stroke="none"/>'
            )
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="currentColor" stroke-width="2"'
            ' stroke-linejoin="round"/>'
        )
        for (x, y), (label, value) in zip(xy, points, strict=True):
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3"><title>{escape(label)}:'
                f" {escape(fmt(value))}</title></circle>"
            )
        picks = sorted({0, len(points) // 2, len(points) - 1})
        for i in picks:
            anchor = "start" if i == 0 else "end" if i == len(points) - 1 else "middle"
            if len(points) == 1:
                anchor = "middle"
            parts.append(
                f'<text x="{xy[i][0]:.1f}" y="{height - 8}" text-anchor="{anchor}"'
                f">{escape(points[i][0])}</text>"
            )
    else:
        parts.append(
            f'<text x="{WIDTH / 2}" y="{(top + bottom) / 2}" text-anchor="middle"'
            f">{escape(empty)}</text>"
        )
    parts.append("</svg>")
    parts.append(_table(title, head, [(label, fmt(v)) for label, v in points]))
    parts.append("</figure>")
    return Markup("".join(parts))


def bar_chart(
    rows: Sequence[tuple[str, float]],
    *,
    title: str,
    head: tuple[str, str],
    empty: str,
    fmt: Formatter = _plain,
) -> Markup:
    """``rows`` (label, value) as horizontal bars, longest first as given, each labelled
    with its name (shortened, the full one in a tooltip) and its value."""
    bar, gap, top = 18, 8, 4
    height = max(top * 2 + len(rows) * (bar + gap), 40)
    desc = "; ".join(f"{label}: {fmt(value)}" for label, value in rows[:10]) if rows else empty
    svg, _ = _open("bars", title, desc, height)
    parts = [svg]
    left, right = 220, 70
    peak = max((v for _, v in rows), default=0) or 1
    for i, (label, value) in enumerate(rows):
        y = top + i * (bar + gap)
        length = max((WIDTH - left - right) * value / peak, 1 if value else 0)
        parts.append(
            f"<g><title>{escape(label)}: {escape(fmt(value))}</title>"
            f'<text x="{left - 8}" y="{y + bar - 5}" text-anchor="end">'
            f"{escape(_short(label))}</text>"
            f'<rect x="{left}" y="{y}" width="{length:.1f}" height="{bar}" rx="3"'
            ' fill="currentColor" fill-opacity="0.7"/>'
            f'<text x="{left + length + 6:.1f}" y="{y + bar - 5}">{escape(fmt(value))}</text></g>'
        )
    if not rows:
        parts.append(
            f'<text x="{WIDTH / 2}" y="{height / 2 + 4}" text-anchor="middle"'
            f">{escape(empty)}</text>"
        )
    parts.append("</svg>")
    parts.append(_table(title, head, [(label, fmt(v)) for label, v in rows]))
    parts.append("</figure>")
    return Markup("".join(parts))
