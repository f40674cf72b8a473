"""Charts drawn on the server as SVG: horizontal bars, columns per day and a line, each stacked by
series where there are several. No script and no external file: the page works with a strict CSP.

Every chart is an image with a title (``<title>`` and ``aria-label``); the page puts the numbers
beside it in a table, so nothing is only in the picture. Widths are in a 360-unit viewBox scaled to
the page, readable on a 390 px phone. With nothing to draw, a chart says so instead of drawing axes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 360
PALETTE = ("#2f6fb3", "#3f9a5c", "#c98a1b", "#c0392b", "#7d55b5", "#5f6b7a")
FONT = 'font-family="system-ui, sans-serif" font-size="11"'
EMPTY_TEXT = "No data in this range"


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]


def _svg(title: str, height: float, body: list[str]) -> Markup:
    safe = escape(title)
    return Markup(  # noqa: S704 (every text inside is escaped)
        f'<svg class="chart" role="img" aria-label="{safe}" viewBox="0 0 {WIDTH} {height:g}" width="100%" '
        f'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg" {FONT}>'
        f'<title>{safe}</title>{"".join(body)}</svg>')


def _empty(title: str) -> Markup:
    return _svg(title, 40, [f'<text x="{WIDTH / 2:g}" y="24" text-anchor="middle" fill="#5f6b7a">{EMPTY_TEXT}</text>'])


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _legend(series: Sequence[Series]) -> tuple[list[str], float]:
    """Swatches and names on one line each, above the chart (none for a single series)."""
    if len(series) < 2:
        return [], 0
    parts = []
    for n, one in enumerate(series):
        y = 4 + n * 16
        parts.append(f'<rect x="0" y="{y}" width="10" height="10" fill="{PALETTE[n % len(PALETTE)]}"/>'
                     f'<text x="14" y="{y + 9}">{escape(one.name)}</text>')
    return parts, 8 + len(series) * 16


def _nothing(series: Sequence[Series]) -> bool:
    return not any(value for one in series for value in one.values)


def bars(title: str, labels: Sequence[str], series: Sequence[Series]) -> Markup:
    """One horizontal bar per label, its series stacked; the bar's total written after it."""
    if not labels or _nothing(series):
        return _empty(title)
    body, top = _legend(series)
    totals = [sum(one.values[n] for one in series) for n in range(len(labels))]
    scale = (WIDTH - 60) / max(totals)
    for n, label in enumerate(labels):
        y = top + n * 32
        body.append(f'<text x="0" y="{y + 11}">{escape(label)}</text>')
        x = 0.0
        for k, one in enumerate(series):
            width = one.values[n] * scale
            if width:
                body.append(f'<rect x="{x:.1f}" y="{y + 15}" width="{width:.1f}" height="12" '
                            f'fill="{PALETTE[k % len(PALETTE)]}"><title>{escape(one.name)}: '
                            f'{_number(one.values[n])}</title></rect>')
            x += width
        body.append(f'<text x="{x + 4:.1f}" y="{y + 25}">{_number(totals[n])}</text>')
    return _svg(title, top + len(labels) * 32 + 4, body)


def columns(title: str, labels: Sequence[str], series: Sequence[Series]) -> Markup:
    """One column per label (a day), its series stacked; the first and last labels under the axis."""
    if not labels or _nothing(series):
        return _empty(title)
    body, top = _legend(series)
    plot_top, plot_height = top + 14, 120
    totals = [sum(one.values[n] for one in series) for n in range(len(labels))]
    step = WIDTH / len(labels)
    scale = plot_height / max(totals)
    base = plot_top + plot_height
    body.append(f'<text x="0" y="{plot_top - 3}">{_number(max(totals))}</text>')
    for n in range(len(labels)):
        y = float(base)
        for k, one in enumerate(series):
            height = one.values[n] * scale
            if height:
                y -= height
                body.append(f'<rect x="{n * step + step * 0.1:.1f}" y="{y:.1f}" width="{step * 0.8:.1f}" '
                            f'height="{height:.1f}" fill="{PALETTE[k % len(PALETTE)]}"><title>{escape(labels[n])} '
                            f'{escape(one.name)}: {_number(one.values[n])}</title></rect>')
    body.append(_axis(base, labels))
    return _svg(title, base + 18, body)


def line(title: str, labels: Sequence[str], values: Sequence[float | None], *, top_value: float | None = None,
         unit: str = "") -> Markup:
    """A line through the values (a gap where one is None), from 0 to ``top_value`` or the largest."""
    known = [v for v in values if v is not None]
    if not labels or not known:
        return _empty(title)
    plot_top, plot_height = 14, 120
    highest = top_value if top_value is not None else max(known) or 1
    step = WIDTH / len(labels)
    base = plot_top + plot_height
    body = [f'<text x="0" y="{plot_top - 3}">{_number(highest)}{escape(unit)}</text>',
            f'<line x1="0" y1="{base}" x2="{WIDTH}" y2="{base}" stroke="#c7ccd3"/>']
    segment: list[str] = []
    for n, value in enumerate([*values, None]):
        if value is None:
            if segment:
                body.append(f'<polyline fill="none" stroke="{PALETTE[0]}" stroke-width="2" '
                            f'points="{" ".join(segment)}"/>')
            segment = []
            continue
        x, y = n * step + step / 2, base - value / highest * plot_height
        segment.append(f"{x:.1f},{y:.1f}")
        body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{PALETTE[0]}"><title>{escape(labels[n])}: '
                    f'{_number(value)}{escape(unit)}</title></circle>')
    body.append(_axis(base, labels))
    return _svg(title, base + 18, body)


def _axis(base: float, labels: Sequence[str]) -> str:
    first = f'<text x="0" y="{base + 14}">{escape(labels[0])}</text>'
    if len(labels) == 1:
        return first
    return first + f'<text x="{WIDTH}" y="{base + 14}" text-anchor="end">{escape(labels[-1])}</text>'
