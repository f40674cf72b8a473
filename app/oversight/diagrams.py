"""Reliability diagrams in SVG coordinates: drawn by the calibration page and the oversight dashboard."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from app.oversight.models import Calibration

SIZE, PAD = 260, 34  # the diagram's square and the margin for its axes
PLOT = SIZE - 2 * PAD


@dataclass(frozen=True)
class Diagram:
    """A reliability diagram in SVG coordinates: the bins' dots, the fitted curve, the diagonal."""

    size: int
    pad: int
    dots: list[dict[str, Any]]
    curve: str  # the points of an SVG polyline
    ticks: list[tuple[float, str]]  # (position along the axis, label)


def _x(confidence: float) -> float:
    return round(PAD + confidence * PLOT, 1)


def _y(rate: float) -> float:
    return round(SIZE - PAD - rate * PLOT, 1)


def diagram(row: Calibration) -> Diagram:
    """Each non-empty bin a dot at (mean confidence, observed agreement), its area growing with its
    count; the isotonic curve as a line; a well-calibrated model's dots lie on the diagonal."""
    filled = [b for b in row.bins if b["count"]]
    largest = max((b["count"] for b in filled), default=1)
    dots = [{"x": _x(b["mean_confidence"]), "y": _y(b["agreement"]),
             "r": round(2.5 + 5 * math.sqrt(b["count"] / largest), 1),
             "title": f"confidence {b['low']:.1f} to {b['high']:.1f}: {b['agreement']:.0%} agreed, n={b['count']}"}
            for b in filled]
    curve = " ".join(f"{_x(x)},{_y(block['rate'])}" for block in row.curve for x in (block["low"], block["high"]))
    ticks = [(PAD + t * PLOT, f"{t:.0%}") for t in (0, 0.5, 1)]
    return Diagram(SIZE, PAD, dots, curve, ticks)
