"""What a dashboard shows: a date range and the filters (queue, case type, model, reviewer), checked
against what the user may see, and the SQL conditions they stand for."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from app.cases.models import Case, Recommendation
from app.cases.permissions import SEE_ALL, queue_for, visible_queues
from app.cases.types import REGISTRY
from app.errors import Invalid, NotFound
from app.users import User

DEFAULT_DAYS = 30
MAX_DAYS = 366
# The rubber-stamping signal: an approval this soon after the approver first opened the case, or this
# soon for each KB of the case's data, is implausibly fast. Part of the URL, like the filters.
FAST_SECONDS = 20.0
FAST_SECONDS_PER_KB = 10.0
MAX_THRESHOLD = 86_400.0
MAX_ID = 2**31 - 1  # an id column's largest value: a larger one is no user's


@dataclass(frozen=True)
class Filters:
    """As asked for (the URL's query): ``since`` and ``until`` are whole UTC days, both included."""

    since: date
    until: date
    queue: str = ""
    case_type: str = ""
    model: str = ""
    reviewer: int | None = None
    fast_seconds: float = FAST_SECONDS
    fast_seconds_per_kb: float = FAST_SECONDS_PER_KB

    @classmethod
    def default(cls, today: date) -> Filters:
        return cls(since=today - timedelta(days=DEFAULT_DAYS - 1), until=today)

    def query(self) -> dict[str, str]:
        """The URL query that shows this view again (empty filters left out)."""
        values: dict[str, Any] = {"since": self.since.isoformat(), "until": self.until.isoformat(),
                                  "queue": self.queue, "case_type": self.case_type, "model": self.model,
                                  "reviewer": self.reviewer}
        if self.fast_seconds != FAST_SECONDS:
            values["fast_seconds"] = f"{self.fast_seconds:g}"
        if self.fast_seconds_per_kb != FAST_SECONDS_PER_KB:
            values["fast_seconds_per_kb"] = f"{self.fast_seconds_per_kb:g}"
        return {name: str(value) for name, value in values.items() if value not in ("", None)}


@dataclass(frozen=True)
class Selection:
    """The filters resolved for one user: which queues (None: every case, also those in no queue),
    and the range as a half-open interval of instants."""

    filters: Filters
    queue_ids: frozenset[int] | None
    start: datetime
    end: datetime

    @property
    def days(self) -> list[date]:
        count = (self.filters.until - self.filters.since).days + 1
        return [self.filters.since + timedelta(days=n) for n in range(count)]

    def case_conditions(self) -> list[ColumnElement[bool]]:
        """The queue and case-type filters, and the user's scope, on ``Case``."""
        conditions: list[ColumnElement[bool]] = []
        if self.queue_ids is not None:
            conditions.append(Case.queue_id.in_(sorted(self.queue_ids)))
        if self.filters.case_type:
            conditions.append(Case.case_type == self.filters.case_type)
        return conditions


def select_for(session: Session, user: User, filters: Filters) -> Selection:
    """Check ``filters`` for ``user``: Invalid, naming the field, for a range that is reversed or
    longer than MAX_DAYS, a queue they do not see, an unknown case type or reviewer."""
    errors: dict[str, str] = {}
    if filters.until < filters.since:
        errors["until"] = "The end of the range is before its start."
    elif (filters.until - filters.since).days + 1 > MAX_DAYS:
        errors["until"] = f"A range of at most {MAX_DAYS} days, please."
    queue_ids = None if user.role in SEE_ALL else frozenset(q.id for q in visible_queues(session, user))
    if filters.queue:
        try:
            queue_ids = frozenset({queue_for(session, user, filters.queue).id})
        except NotFound:
            errors["queue"] = f"No queue {filters.queue!r} among your queues."
    if filters.case_type and filters.case_type not in {name for _, name in REGISTRY}:
        errors["case_type"] = f"No case type {filters.case_type!r}."
    if filters.reviewer is not None and session.get(User, filters.reviewer) is None:
        errors["reviewer"] = f"No user with id {filters.reviewer}."
    if filters.model and session.scalar(select(Recommendation.id).where(
            Recommendation.model == filters.model).limit(1)) is None:
        errors["model"] = f"No recommendation came from a model {filters.model!r}."
    if errors:
        raise Invalid("check the filters", errors)
    return Selection(filters, queue_ids, _midnight(filters.since), _midnight(filters.until + timedelta(days=1)))


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def models_in_use(session: Session, selection: Selection) -> list[str]:
    """The models that gave recommendations in the range, for the model filter's choices."""
    return list(session.scalars(select(Recommendation.model).distinct().where(
        Recommendation.created_at >= selection.start, Recommendation.created_at < selection.end,
    ).order_by(Recommendation.model)))


def read(session: Session, user: User, args: Mapping[str, str], today: date) -> Selection:
    """The URL's query as a Selection for ``user``; Invalid naming every field at fault at once."""
    errors: dict[str, str] = {}
    filters = _parse(args, today, errors)
    try:
        selection = select_for(session, user, filters)
    except Invalid as exc:
        checked = exc.by_field
        if {"since", "until"} & errors.keys():
            checked.pop("until", None)  # a range made of a day that could not be read is not at fault
        errors = {**checked, **errors}
    else:
        if not errors:
            return selection
    raise Invalid("check the filters", errors)


def _parse(args: Mapping[str, str], today: date, errors: dict[str, str]) -> Filters:
    """The query as Filters: a value that cannot be read goes into ``errors``, and its default is used."""
    default = Filters.default(today)
    days: dict[str, date] = {}
    for name in ("since", "until"):
        text = (args.get(name) or "").strip()
        try:
            days[name] = date.fromisoformat(text) if text else getattr(default, name)
        except ValueError:
            errors[name] = f"{text!r} is not a day: write it as YYYY-MM-DD."
            days[name] = getattr(default, name)
    reviewer_text = (args.get("reviewer") or "").strip()
    reviewer = None
    if reviewer_text:
        if reviewer_text.isdigit() and int(reviewer_text) <= MAX_ID:
            reviewer = int(reviewer_text)
        else:
            errors["reviewer"] = f"{reviewer_text!r} is not a user id."
    thresholds = {name: _threshold(args, name, getattr(default, name), errors)
                  for name in ("fast_seconds", "fast_seconds_per_kb")}
    return Filters(since=days["since"], until=days["until"], queue=(args.get("queue") or "").strip(),
                   case_type=(args.get("case_type") or "").strip(), model=(args.get("model") or "").strip(),
                   reviewer=reviewer, **thresholds)


def _threshold(args: Mapping[str, str], name: str, default: float, errors: dict[str, str]) -> float:
    text = (args.get(name) or "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_THRESHOLD:  # also refuses nan
        errors[name] = f"A number of seconds above 0 and at most {MAX_THRESHOLD:g}."
        return default
    return value
