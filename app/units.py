"""The units every page shows a duration in (an SLA, a time to decision): hours and minutes."""

from __future__ import annotations


def duration(seconds: float | None) -> str:
    """``45 s``, ``12 min``, ``3 h 05 min``, ``4 d 2 h``: hours and minutes below two days."""
    if seconds is None:
        return "—"
    whole = round(seconds)
    whole_minutes, hours = whole // 60, whole // 3600
    if hours >= 48:
        return f"{hours // 24} d {hours % 24} h"
    if hours:
        return f"{hours} h {whole_minutes % 60:02d} min"
    if whole_minutes:
        return f"{whole_minutes} min"
    return f"{whole} s"


def minutes(value: int | None) -> str:
    """A setting kept in minutes (a queue's SLA), in the units of `duration`."""
    return duration(None if value is None else value * 60)
