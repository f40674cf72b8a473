"""The small pieces every dashboard number is made of: a count that knows the cases behind it,
a rate, and percentiles computed the same way on every database (in Python, by nearest rank)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from app.errors import NotFound


@dataclass(frozen=True)
class Count:
    """A number on a dashboard: ``value`` (rows counted: decisions, recommendations, answers...) and
    the cases behind it, which its link lists. ``key`` names it in that link."""

    key: str
    value: int
    case_ids: frozenset[int]


@dataclass
class Cells:
    """Every Count of one dashboard, by key: the page links each number by its key, and the list of
    cases behind a number finds it here (one computation for both, so they always agree)."""

    by_key: dict[str, Count] = field(default_factory=dict)

    def count(self, key: str, case_ids: Iterable[int], value: int | None = None) -> Count:
        ids = frozenset(case_ids)
        made = Count(key, len(ids) if value is None else value, ids)
        self.by_key[key] = made
        return made

    def get(self, key: str) -> Count:
        if key not in self.by_key:
            raise NotFound(f"no number {key!r} on this dashboard")
        return self.by_key[key]


@dataclass(frozen=True)
class Rate:
    part: Count
    whole: int

    @property
    def percent(self) -> float | None:
        """None when there is nothing to divide by."""
        return None if self.whole == 0 else 100 * self.part.value / self.whole


def percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank percentile: the smallest value with at least ``p`` % of the values at or
    below it (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def day_of(moment: datetime) -> date:
    """The UTC day of an instant."""
    return moment.astimezone(UTC).date()
