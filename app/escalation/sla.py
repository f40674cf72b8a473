"""The SLA engine: due times in business time, the pause, the 50 / 75 / 100 % steps and the sweep.

A case's SLA *window* is a number of business minutes: its queue's ``sla_minutes``, unless a
rule's ``set_sla`` (or a breach escalation) gave it another one. The clock has reached a
fraction ``f`` of the window when at most ``(1 - f) * window`` business minutes remain before
``sla_due_at``, that is when ``sla_due_at <= add_business(now, (1 - f) * window)``; it stands
still while ``sla_paused_at`` is set (the case waits in needs_info).

At 50 % the assignee is told, at 75 % the assignee and the queue's lead; at 100 % the case is
escalated to its queue's escalation target with a raised priority (or, where it cannot move,
its priority is raised and the lead told). ``sla_notified_pct`` records the step handled;
each step is taken with a compare-and-set on (``sla_notified_pct``, ``version``), so two
sweeps racing never notify or escalate twice. Silence never approves anything.

The sweep costs what changed, not what is open: per queue and step, one indexed range query
on ``sla_due_at`` between the line of the previous sweep (its *mark*, less an overlap) and
the line now.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy import ColumnElement, Row, select, tuple_, update
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.orm.attributes import set_committed_value

from app.actors import Actor
from app.audit import chain
from app.audit.models import AuditEvent
from app.cases import lifecycle
from app.cases.business_hours import BusinessHours
from app.cases.models import Case, Priority, Queue, Status
from app.db import canonical_json
from app.escalation.models import EscalationRule
from app.notifications.services import notify

log = logging.getLogger(__name__)

S = Status
STEPS = (50, 75, 100)
CLOCK_STATUSES = tuple(s.value for s in (S.RECEIVED, S.ANALYZING, S.PENDING_REVIEW, S.AI_FAILED, S.IN_REVIEW,
                                         S.AWAITING_SECOND_APPROVAL))
ESCALATABLE = frozenset(s.value for s in lifecycle.TRANSITIONS["escalated"].sources)
SLA_ACTOR = Actor.system("sla")
# Audit events that give a case its own SLA window carry it under this key.
WINDOW_KEY = "sla_window_minutes"
WINDOW_EVENTS = ("rule.fired", "case.sla_breached")
ATTEMPTS = 3  # compare-and-set attempts on one case before the sweep leaves it for the next run


# --- business hours ----------------------------------------------------------------------------


def hours_of(queue: Queue | None) -> BusinessHours | None:
    """The queue's business hours; None for round-the-clock (also when they are misconfigured)."""
    if queue is None or not queue.business_hours:
        return None
    return _parse_hours(canonical_json(queue.business_hours))


@lru_cache(maxsize=128)
def _parse_hours(text: str) -> BusinessHours | None:
    try:
        return BusinessHours.model_validate_json(text)
    except ValidationError as exc:
        log.error("invalid business_hours %s (the SLA runs round the clock): %s", text, exc)
        return None


def business_minutes(start: datetime, end: datetime, hours: BusinessHours | None) -> float:
    """Open minutes between ``start`` and ``end`` (0 when ``end`` is not after ``start``)."""
    if end <= start:
        return 0.0
    if hours is None:
        return (end - start).total_seconds() / 60
    seconds = 0.0
    for opens, closes in hours.open_intervals(start):
        if opens >= end:
            break
        seconds += (min(closes, end) - opens).total_seconds()
    return seconds / 60


def add_business(start: datetime, minutes: float, hours: BusinessHours | None) -> datetime:
    """The moment ``minutes`` open minutes after ``start``."""
    left = timedelta(minutes=minutes)
    if hours is None or left <= timedelta(0):
        return start + max(left, timedelta(0))
    for opens, closes in hours.open_intervals(start):
        if left <= closes - opens:
            return opens + left
        left -= closes - opens
    raise ValueError("no business time in the next ten years: check the working days and holidays")


def remaining(due: datetime, at: datetime, hours: BusinessHours | None) -> float:
    """Business minutes left before ``due`` at ``at``; negative once overdue."""
    return business_minutes(at, due, hours) if due > at else -business_minutes(due, at, hours)


# --- the clock ----------------------------------------------------------------------------------


def past(due: datetime, window: int, fraction: float, hours: BusinessHours | None, now: datetime) -> bool:
    """Whether the clock has used ``fraction`` of a ``window``-minute SLA due at ``due``."""
    return due <= add_business(now, window * (1 - fraction), hours)


def reached(due: datetime, window: int, hours: BusinessHours | None, now: datetime) -> int:
    """The highest step (0, 50, 75 or 100) the clock has reached."""
    return next((step for step in reversed(STEPS) if past(due, window, step / 100, hours, now)), 0)


def running(case: Case) -> bool:
    return (case.queue_id is not None and case.sla_due_at is not None and case.sla_paused_at is None
            and case.status in CLOCK_STATUSES)


def start_clock(case: Case) -> None:
    """Due ``sla_minutes`` business minutes after the case arrived in its queue."""
    if case.queue is not None:
        case.sla_due_at = add_business(case.created_at, case.queue.sla_minutes, hours_of(case.queue))


def resume_sla(case: Case, now: datetime) -> None:
    """Restart a paused clock: the business time left when it stopped is left again from ``now``.
    Called when the information a reviewer asked for arrives."""
    if case.sla_paused_at is None:
        return
    if case.sla_due_at is not None:
        hours = hours_of(case.queue)
        case.sla_due_at = add_business(now, max(remaining(case.sla_due_at, case.sla_paused_at, hours), 0), hours)
    case.sla_paused_at = None


def set_window(case: Case, minutes: int, current: int, now: datetime) -> None:
    """Give the case a ``minutes``-long window, keeping the business time it already used."""
    hours = hours_of(case.queue)
    clock = case.sla_paused_at or now
    left = minutes if case.sla_due_at is None else remaining(case.sla_due_at, clock, hours) + minutes - current
    case.sla_due_at = add_business(clock, max(left, 0), hours)
    case.sla_notified_pct = min(case.sla_notified_pct, reached(case.sla_due_at, minutes, hours, clock))


def windows(session: Session, cases: Iterable[Case]) -> dict[int, int]:
    """The SLA window of each case: the last one an audit event gave it, else its queue's."""
    cases = list(cases)
    given: dict[int, int] = {}
    if cases:
        rows = session.execute(select(AuditEvent.case_id, AuditEvent.data)
                               .where(AuditEvent.case_id.in_([c.id for c in cases]),
                                      AuditEvent.action.in_(WINDOW_EVENTS))
                               .order_by(AuditEvent.seq))
        given = {case_id: int(data[WINDOW_KEY]) for case_id, data in rows if WINDOW_KEY in data}
    return {c.id: given.get(c.id) or (c.queue.sla_minutes if c.queue else 0) for c in cases}


def rule_windows(session: Session) -> frozenset[int]:
    """Every window a rule's set_sla may have given a case."""
    return frozenset(int(action["set_sla"]["minutes"]) for actions in session.scalars(select(EscalationRule.actions))
                     for action in actions if "set_sla" in action)


# --- steps ---------------------------------------------------------------------------------------


class Outcome(enum.StrEnum):
    NONE = "none"
    WARNED = "warned"
    BREACHED = "breached"
    CONTENDED = "contended"  # someone changed the case meanwhile: read it again


def check_case(session: Session, case: Case, now: datetime) -> Outcome:
    """Take the step the case's clock has reached and that was not taken yet."""
    return advance(session, case, windows(session, [case])[case.id], now)


def advance(session: Session, case: Case, window: int, now: datetime) -> Outcome:
    if not running(case):
        return Outcome.NONE
    step = reached(case.sla_due_at, window, hours_of(case.queue), now)
    if step <= case.sla_notified_pct:
        return Outcome.NONE
    if not _claim(session, case, step):
        return Outcome.CONTENDED
    if step == 100:
        _breach(session, case, now)
        return Outcome.BREACHED
    _warn(session, case, step)
    return Outcome.WARNED


def _claim(session: Session, case: Case, step: int) -> bool:
    """Compare-and-set: record ``step`` only if nobody changed the case since it was read."""
    claimed = session.execute(
        update(Case)
        .where(Case.id == case.id, Case.version == case.version, Case.sla_notified_pct == case.sla_notified_pct)
        .values(sla_notified_pct=step, updated_at=Case.updated_at)
        .execution_options(synchronize_session=False)
    ).rowcount == 1
    if claimed:
        set_committed_value(case, "sla_notified_pct", step)
    return claimed


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _warn(session: Session, case: Case, step: int) -> None:
    told = [case.assignee, case.queue.lead if step >= 75 else None]
    rows = notify(session, told, "sla_warning", case, f"Case {case.id} “{case.title}” has used {step}% of its "
                                                      f"SLA in {case.queue.name}: due {_when(case.sla_due_at)}.")
    chain.record(session, "case.sla_warning", SLA_ACTOR, case_id=case.id, data={
        "step": step, "due": case.sla_due_at.isoformat(), "notified_user_ids": sorted(r.user_id for r in rows)})


def _breach(session: Session, case: Case, now: datetime) -> None:
    source, assignee = case.queue, case.assignee
    target = source.escalation_target if case.status in ESCALATABLE else None
    due = case.sla_due_at
    case.priority = min(Priority.URGENT, case.priority + 1)
    data: dict[str, Any] = {"due": due.isoformat(), "from_queue": source.name, "priority": case.priority_label,
                            "to_queue": target.name if target else None}
    if target is not None:
        data[WINDOW_KEY] = target.sla_minutes
        _escalate(session, case, target, now)
    chain.record(session, "case.sla_breached", SLA_ACTOR, case_id=case.id, data=data)
    where = f"escalated to {target.name}" if target else f"it stays in {source.name}"
    message = (f"Case {case.id} “{case.title}” breached its SLA (due {_when(due)}): {where}, "
               f"priority {case.priority_label}.")
    notify(session, [assignee, source.lead], "sla_breach", case, message)
    if target is not None:
        notify(session, [target.lead], "escalation", case, message)


def _escalate(session: Session, case: Case, target: Queue, now: datetime) -> None:
    """Into the target's inbox, unclaimed, with the target's SLA starting now."""
    source = case.queue.name
    case.queue = target
    case.assignee_id = None
    case.claim_expires_at = None
    case.sla_due_at = add_business(now, target.sla_minutes, hours_of(target))
    case.sla_notified_pct = 0
    session.expire(case, ["recommendation"])  # a loaded post_update relationship would bump the version twice
    lifecycle.transition(session, case, "escalated", SLA_ACTOR,
                         data={"reason": "sla_breach", "from_queue": source, "to_queue": target.name})


# --- the sweep ------------------------------------------------------------------------------------


class Marks(Protocol):
    """Where each band's line stood at the last sweep (a dict, or Redis in the jobs)."""

    def get(self, key: str) -> datetime | None: ...

    def __setitem__(self, key: str, value: datetime) -> None: ...


@dataclass(frozen=True)
class Band:
    """The cases of one queue whose due time a line has passed since the last sweep."""

    key: str
    queue_id: int
    step: int
    line: datetime
    window: int | None  # only the cases with this window (the breach line is the same for all)


@dataclass
class SweepReport:
    warned: int = 0
    breached: int = 0
    left_for_next_run: int = 0


def running_in(queue_id: int) -> tuple[ColumnElement[bool], ...]:
    """SQL: the case is in the queue and its clock runs."""
    return Case.queue_id == queue_id, Case.status.in_(CLOCK_STATUSES), Case.sla_paused_at.is_(None)


def pages(session: Session, column: InstrumentedAttribute[datetime | None], low: datetime | None, high: datetime,
          *where: ColumnElement[bool], batch: int) -> Iterator[Sequence[Row[tuple[int, datetime]]]]:
    """(id, column) of the cases with ``low < column <= high`` and ``where``, in keyset pages:
    an indexed range scan whose cost is the number of rows in the range."""
    base = select(Case.id, column).where(column <= high, *where)
    if low is not None:
        base = base.where(column > low)
    cursor: tuple[datetime, int] | None = None
    while True:
        page = base if cursor is None else base.where(tuple_(column, Case.id) > cursor)
        rows = session.execute(page.order_by(column, Case.id).limit(batch)).all()
        if not rows:
            return
        yield rows
        cursor = (rows[-1][1], rows[-1][0])


def bands(queue: Queue, extra_windows: frozenset[int], now: datetime) -> list[Band]:
    hours = hours_of(queue)
    found = [Band(f"sla:{queue.id}:breach", queue.id, 100, now, None)]
    for window in sorted({queue.sla_minutes, *extra_windows}):
        found += [Band(f"sla:{queue.id}:{window}:{step}", queue.id, step,
                       add_business(now, window * (100 - step) / 100, hours), window) for step in (75, 50)]
    return found


def sweep(session: Session, now: datetime, marks: Marks, commit: Callable[[], None], *,
          overlap: timedelta, batch: int = 200) -> SweepReport:
    """Take every SLA step reached since the last sweep; ``commit`` after each case."""
    extra = rule_windows(session)
    todo = [band for queue in session.scalars(select(Queue).order_by(Queue.id)) for band in bands(queue, extra, now)]
    report = SweepReport()
    for band in todo:
        marks[band.key] = _sweep_band(session, band, marks.get(band.key), now, commit, report,
                                      overlap=overlap, batch=batch)
    return report


def _sweep_band(session: Session, band: Band, mark: datetime | None, now: datetime, commit: Callable[[], None],
                report: SweepReport, *, overlap: timedelta, batch: int) -> datetime:
    """Sweep one band; return its new mark (held just below any case left for the next run)."""
    held: datetime | None = None
    low = mark - overlap if mark is not None else None
    for rows in pages(session, Case.sla_due_at, low, band.line, *running_in(band.queue_id),
                      Case.sla_notified_pct < band.step, batch=batch):
        cases = {c.id: c for c in session.scalars(select(Case).where(Case.id.in_([r.id for r in rows])))}
        window_of = windows(session, cases.values())
        for case_id, due in rows:
            if band.window is not None and window_of[case_id] != band.window:
                continue  # another window's band takes it
            if not _settle(session, cases[case_id], now, commit, report):
                held = min(held or due, due)
    return band.line if held is None else held - timedelta(microseconds=1)


def _settle(session: Session, case: Case, now: datetime, commit: Callable[[], None], report: SweepReport) -> bool:
    """Take the case's step, reading it (and its window) afresh: another sweep may have moved it."""
    outcome = check_case(session, case, now)
    for _ in range(ATTEMPTS - 1):
        if outcome is not Outcome.CONTENDED:
            break
        session.rollback()  # someone changed the case meanwhile
        outcome = check_case(session, case, now)
    if outcome is Outcome.CONTENDED:
        report.left_for_next_run += 1
        return False
    commit()
    report.warned += outcome is Outcome.WARNED
    report.breached += outcome is Outcome.BREACHED
    return True
