"""A queue's business hours: the model that validates them, and how they are stored and shown.

The SLA engine (`app.escalation.sla`) counts due times in them; the queue service
(`app.cases.queues`) validates them when a queue is created or changed.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_DAYS = 3660  # business time is looked for at most ten years ahead
DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class BusinessHours(BaseModel):
    """``{"timezone": "Europe/London", "days": [0, 1, 2, 3, 4], "start": "09:00", "end": "17:30",
    "holidays": ["2026-12-25"]}``: days are 0 (Monday) to 6 (Sunday), times local."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str
    days: Annotated[frozenset[Annotated[int, Field(ge=0, le=6)]], Field(min_length=1)]
    start: time
    end: time
    holidays: frozenset[date] = frozenset()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as 'Europe/London')") from None
        return value

    @model_validator(mode="after")
    def _day_shape(self) -> BusinessHours:
        if self.end <= self.start:
            raise ValueError("end must be after start (shifts over midnight are not supported)")
        return self

    def open_intervals(self, since: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The open hours from ``since`` on, in UTC, day by day (daylight saving included)."""
        for opens, closes in self._days(since, timedelta(days=1)):
            if closes > since:
                yield max(opens, since), closes

    def open_intervals_before(self, until: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The open hours before ``until``, latest first."""
        for opens, closes in self._days(until, timedelta(days=-1)):
            if opens < until:
                yield opens, min(closes, until)

    def _days(self, moment: datetime, step: timedelta) -> Iterator[tuple[datetime, datetime]]:
        zone = ZoneInfo(self.timezone)
        day = moment.astimezone(zone).date()
        for _ in range(MAX_DAYS):
            if day.weekday() in self.days and day not in self.holidays:
                yield (datetime.combine(day, self.start, zone).astimezone(UTC),
                       datetime.combine(day, self.end, zone).astimezone(UTC))
            day += step

    def stored(self) -> dict[str, Any]:
        """The JSON kept in ``Queue.business_hours``: sorted days and holidays, ``HH:MM`` times."""
        return {"timezone": self.timezone, "days": sorted(self.days), "start": _clock(self.start),
                "end": _clock(self.end), "holidays": [day.isoformat() for day in sorted(self.holidays)]}

    def summary(self) -> str:
        """``Mon-Fri 09:00-17:30 Europe/London, 2 holidays``."""
        holidays = len(self.holidays)
        extra = f", {holidays} holiday{'s' if holidays != 1 else ''}" if holidays else ""
        return f"{_day_ranges(sorted(self.days))} {_clock(self.start)}-{_clock(self.end)} {self.timezone}{extra}"


def _clock(moment: time) -> str:
    return moment.isoformat(timespec="minutes" if not moment.second and not moment.microsecond else "auto")


def _day_ranges(days: list[int]) -> str:
    """[0, 1, 2, 3, 4, 6] -> ``Mon-Fri,Sun``."""
    runs: list[list[int]] = []
    for day in days:
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ",".join(DAY_NAMES[run[0]] if len(run) == 1 else f"{DAY_NAMES[run[0]]}-{DAY_NAMES[run[-1]]}"
                    for run in runs)
