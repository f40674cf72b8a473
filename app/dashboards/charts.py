"""Charts drawn on the server as SVG: horizontal bars, columns per day and a line, each stacked by
series where there are several. No script and no external file: the page works with a strict CSP.

Every chart is an image with a title (``<title>`` and ``aria-label``); the page puts the numbers
beside it in a table, so nothing is only in the picture. Widths are in a 360-unit viewBox scaled to
the page, readable on a 390 px phone. With nothing to draw, a chart says so instead of drawing axes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup

WIDTH = 360
PALETTE = ("#2f6fb3", "#3f9a5c", "#c98a1b", "#c0392b", "#7d55b5", "#5f6b7a")
EMPTY_TEXT = "No data in this range"


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]
    colour: str | None = None  # None: the palette's, by position


def _svg(title: str, height: float, body: list[Markup]) -> Markup:
    return Markup(
        '<svg class="chart" role="img" aria-label="{title}" viewBox="0 0 {width} {height}" width="100%" '
        'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg" '
        'font-family="system-ui, sans-serif" font-size="11"><title>{title}</title>{body}</svg>',
    ).format(title=title, width=WIDTH, height=f"{height:g}", body=Markup("").join(body))


def _empty(title: str) -> Markup:
    return _svg(title, 40, [Markup('<text x="{x}" y="24" text-anchor="middle" fill="#5f6b7a">{text}</text>').format(
        x=f"{WIDTH / 2:g}", text=EMPTY_TEXT)])


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _legend(series: Sequence[Series]) -> tuple[list[Markup], float]:
    """Swatches and names on one line each, above the chart (none for a single series)."""
    if len(series) < 2:
        return [], 0
    parts = [Markup('<rect x="0" y="{y}" width="10" height="10" fill="{fill}"/><text x="14" y="{text_y}">{name}'
                    '</text>').format(y=4 + n * 16, text_y=13 + n * 16, fill=_colour(n, series), name=one.name)
             for n, one in enumerate(series)]
    return parts, 8 + len(series) * 16


def _colour(n: int, series: Sequence[Series] = ()) -> str:
    chosen = series[n].colour if n < len(series) else None
    return chosen or PALETTE[n % len(PALETTE)]


def _nothing(series: Sequence[Series]) -> bool:
    return not any(value for one in series for value in one.values)


_TEXT = Markup('<text x="{x}" y="{y}"{anchor}>{text}</text>')
_RECT = Markup('<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}" fill="{fill}">'
               '<title>{tip}</title></rect>')


def _text(x: float, y: float, text: str, *, end: bool = False) -> Markup:
    return _TEXT.format(x=f"{x:.1f}", y=f"{y:.1f}", text=text, anchor=Markup(' text-anchor="end"') if end else "")


def bars(title: str, labels: Sequence[str], series: Sequence[Series]) -> Markup:
    """One horizontal bar per label, its series stacked; the bar's total written after it."""
    if not labels or _nothing(series):
        return _empty(title)
    body, top = _legend(series)
    totals = [sum(one.values[n] for one in series) for n in range(len(labels))]
    scale = (WIDTH - 60) / max(totals)
    for n, label in enumerate(labels):
        y = top + n * 32
        body.append(_text(0, y + 11, label))
        x = 0.0
        for k, one in enumerate(series):
            width = one.values[n] * scale
            if width:
                body.append(_RECT.format(x=x, y=y + 15, width=width, height=12, fill=_colour(k, series),
                                         tip=f"{one.name}: {_number(one.values[n])}"))
            x += width
        body.append(_text(x + 4, y + 25, _number(totals[n])))
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
    body.append(_text(0, plot_top - 3, _number(max(totals))))
    for n in range(len(labels)):
        y = float(base)
        for k, one in enumerate(series):
            height = one.values[n] * scale
            if height:
                y -= height
                tip = f"{labels[n]} {one.name}: {_number(one.values[n])}"
                body.append(_RECT.format(x=n * step + step * 0.1, y=y, width=step * 0.8, height=height,
                                         fill=_colour(k, series), tip=tip))
    body += _axis(base, labels)
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
    body = [_text(0, plot_top - 3, f"{_number(highest)}{unit}"),
            Markup('<line x1="0" y1="{y}" x2="{x}" y2="{y}" stroke="#c7ccd3"/>').format(x=WIDTH, y=base)]
    segment: list[str] = []
    for n, value in enumerate([*values, None]):
        if value is None:
            if segment:
                body.append(Markup('<polyline fill="none" stroke="{stroke}" stroke-width="2" points="{points}"/>'
                                   ).format(stroke=_colour(0), points=" ".join(segment)))
            segment = []
            continue
        x, y = n * step + step / 2, base - value / highest * plot_height
        segment.append(f"{x:.1f},{y:.1f}")
        body.append(Markup('<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{fill}"><title>{tip}</title></circle>'
                           ).format(x=x, y=y, fill=_colour(0), tip=f"{labels[n]}: {_number(value)}{unit}"))
    body += _axis(base, labels)
    return _svg(title, base + 18, body)


def _axis(base: float, labels: Sequence[str]) -> list[Markup]:
    """The first and the last label under the plot."""
    first = _text(0, base + 14, labels[0])
    return [first] if len(labels) == 1 else [first, _text(WIDTH, base + 14, labels[-1], end=True)]
