"""The audit page's reads: one page of the log's events matching the filters, newest first.

Pages are keyset pages on ``id`` (the order events were written): a page costs the same at the
start and a million events deep, and needs no count. Filtering by actor or action walks the
indexes (actor, id) and (action, id).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, exists, select
from sqlalchemy.orm import Session

from app.audit.models import AuditEvent
from app.errors import Invalid
from app.users import User

PER_PAGE = 50
ACTOR_ID = re.compile(r"(user|client):[0-9]{1,18}|system:[^\s]{1,70}")


@dataclass(frozen=True)
class AuditFilters:
    case_id: int | None = None
    actor: str = ""  # as stored: user:12, client:3, system:sla
    action: str = ""
    since: date | None = None  # from this day (UTC) …
    until: date | None = None  # … to the end of this one
    before: int | None = None  # the page of the events older than this id
    after: int | None = None  # the page of the events newer than this id

    @property
    def is_filtered(self) -> bool:
        return any((self.case_id, self.actor, self.action, self.since, self.until))


@dataclass(frozen=True)
class EventPage:
    events: list[AuditEvent]
    filters: AuditFilters
    newer: int | None  # the id to page back from (``after``), when newer events match
    older: int | None  # the id to page on from (``before``), when older events match


def actor_of(session: Session, text: str) -> str:
    """The stored actor for what was typed: a user's email, or an actor as stored (user:12,
    client:3, system:sla). Raises Invalid naming the ``actor`` field otherwise."""
    text = text.strip()
    if "@" in text:
        user_id = session.scalar(select(User.id).where(User.email == text.lower()))  # stored lower-case
        if user_id is None:
            raise Invalid(f"no user has the email {text}", {"actor": "No user has this email."})
        return f"user:{user_id}"
    if text and not ACTOR_ID.fullmatch(text):
        raise Invalid(f"{text!r} is not an actor",
                      {"actor": "Give a user's email, or user:ID, client:ID or system:NAME."})
    return text


def search(session: Session, filters: AuditFilters, *, per_page: int = PER_PAGE) -> EventPage:
    conditions = _conditions(filters)
    if filters.after is not None:
        rows = _fetch(session, [*conditions, AuditEvent.id > filters.after], per_page, newest_first=False)
        events = rows[:per_page][::-1]
        has_newer = len(rows) > per_page
        has_older = _any(session, [*conditions, AuditEvent.id <= filters.after])
    else:
        paged = [*conditions, AuditEvent.id < filters.before] if filters.before is not None else conditions
        rows = _fetch(session, paged, per_page, newest_first=True)
        events = rows[:per_page]
        has_older = len(rows) > per_page
        has_newer = filters.before is not None and _any(session, [*conditions, AuditEvent.id >= filters.before])
    # An empty page (asked for past either end) links back to where it was asked from.
    newer = (events[0].id if events else filters.before - 1) if has_newer else None
    older = (events[-1].id if events else filters.after + 1) if has_older else None
    return EventPage(events, filters, newer=newer, older=older)


def _conditions(filters: AuditFilters) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if filters.case_id is not None:
        conditions.append(AuditEvent.case_id == filters.case_id)
    if filters.actor:
        conditions.append(AuditEvent.actor == filters.actor)
    if filters.action:
        conditions.append(AuditEvent.action == filters.action)
    if filters.since is not None:
        conditions.append(AuditEvent.time >= _midnight(filters.since))
    if filters.until is not None and filters.until < date.max:
        conditions.append(AuditEvent.time < _midnight(filters.until + timedelta(days=1)))
    return conditions


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _fetch(session: Session, conditions: list[ColumnElement[bool]], per_page: int, *,
           newest_first: bool) -> list[AuditEvent]:
    order = AuditEvent.id.desc() if newest_first else AuditEvent.id.asc()
    query: Select[Any] = select(AuditEvent).where(*conditions).order_by(order).limit(per_page + 1)
    return list(session.scalars(query))


def _any(session: Session, conditions: list[ColumnElement[bool]]) -> bool:
    return bool(session.scalar(select(exists().where(*conditions))))
