"""The SLA engine: due times in business time, the pause, the 50 / 75 / 100 % steps and the sweep.

A case's SLA *window* (``sla_window_minutes``) is a number of business minutes: its queue's
``sla_minutes`` at intake, a rule's ``set_sla``, or the escalation target's after a breach. The
clock has reached a fraction ``f`` of the window when at most ``(1 - f) * window`` business
minutes remain before ``sla_due_at``; it stands still while ``sla_paused_at`` is set (the case
waits in needs_info) and runs only in `CLOCK_STATUSES`.

At 50 % the assignee is told, at 75 % the assignee and the queue's lead; at 100 % the case is
escalated to its queue's escalation target with a raised priority (or, where it cannot move,
its priority is raised and the lead told). ``sla_notified_pct`` records the step handled;
each step is taken with a compare-and-set on (``sla_notified_pct``, ``version``), so two
sweeps racing never notify or escalate twice. Silence never approves anything.

``sla_next_at`` is when the case's next step is due (NULL while the clock stands still or no
step is left). `next_step_at` alone computes it; `refresh` stores it, and is called by every
writer of the due time, the window, the pause, the step taken or the queue, and by the
lifecycle on every move (`lifecycle.on_move`). The sweep is one indexed range scan:
the cases with ``sla_next_at <= now``, in keyset pages; it costs the steps due, not the cases open.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from pydantic import ValidationError
from sqlalchemy import ColumnElement, Row, and_, or_, select, tuple_, update
from sqlalchemy.orm import InstrumentedAttribute, Session, object_session
from sqlalchemy.orm.attributes import set_committed_value

from app import units
from app.actors import Actor
from app.audit import chain
from app.audit.actions import AuditAction
from app.cases import lifecycle
from app.cases.business_hours import BusinessHours
from app.cases.models import Case, Priority, Queue, Status
from app.db import canonical_json, utcnow
from app.metrics import SLA_BREACHES, count_after_commit
from app.notifications.services import notify

log = logging.getLogger(__name__)

S = Status
STEPS = (50, 75, 100)
WARNING_STEP = STEPS[0]  # from the first warning on, a case is "at risk"
CLOCK_STATUSES = tuple(s.value for s in (S.RECEIVED, S.ANALYZING, S.PENDING_REVIEW, S.AI_FAILED, S.IN_REVIEW,
                                         S.AWAITING_SECOND_APPROVAL))
# Decided, answered, expired or withdrawn: the clock has stopped for good.
STOPPED_STATUSES = frozenset(s.value for s in (S.APPROVED, S.REJECTED, S.EXECUTING, S.EXECUTED,
                                               S.EXECUTION_FAILED, S.WITHDRAWN, S.RESPONDED, S.EXPIRED))
ESCALATABLE = frozenset(s.value for s in lifecycle.TRANSITIONS["escalated"].sources)
SLA_ACTOR = Actor.system("sla")
# The audit events that give a case a new window (rule.fired, case.sla_breached) say so under this key.
WINDOW_KEY = "sla_window_minutes"
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


def business_time(start: datetime, end: datetime, hours: BusinessHours | None) -> timedelta:
    """Open time between ``start`` and ``end`` (none when ``end`` is not after ``start``)."""
    if end <= start:
        return timedelta(0)
    if hours is None:
        return end - start
    total = timedelta(0)
    for opens, closes in hours.open_intervals(start):
        if opens >= end:
            break
        total += min(closes, end) - opens
    return total


def business_minutes(start: datetime, end: datetime, hours: BusinessHours | None) -> float:
    """Open minutes between ``start`` and ``end`` (0 when ``end`` is not after ``start``)."""
    return business_time(start, end, hours).total_seconds() / 60


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


def earliest_within(end: datetime, span: timedelta, hours: BusinessHours | None) -> datetime:
    """The earliest moment from which at most ``span`` of open time is left before ``end``
    (counted back from ``end``; closed time just before the span costs nothing)."""
    if hours is None:
        return end - span
    left = span
    earliest = end
    for opens, closes in hours.open_intervals_before(end):
        if left < closes - opens:
            return closes - left
        left -= closes - opens
        earliest = opens
    return earliest  # less open time than ``span`` in the ten years before ``end``


def remaining(due: datetime, at: datetime, hours: BusinessHours | None) -> float:
    """Business minutes left before ``due`` at ``at``; negative once overdue."""
    return business_minutes(at, due, hours) if due > at else -business_minutes(due, at, hours)


# --- the clock ----------------------------------------------------------------------------------


def _left_at(window: int, fraction: float) -> timedelta:
    """Business time left before the due time when the clock reaches ``fraction`` of ``window``."""
    return timedelta(minutes=window * (1 - fraction))


def past(due: datetime, window: int, fraction: float, hours: BusinessHours | None, now: datetime) -> bool:
    """Whether the clock has used ``fraction`` of a ``window``-minute SLA due at ``due``."""
    return business_time(now, due, hours) <= _left_at(window, fraction)


def reached(due: datetime, window: int, hours: BusinessHours | None, now: datetime) -> int:
    """The highest step (0, 50, 75 or 100) the clock has reached."""
    left = business_time(now, due, hours)
    return next((step for step in reversed(STEPS) if left <= _left_at(window, step / 100)), 0)


def step_at(due: datetime, window: int, step: int, hours: BusinessHours | None) -> datetime:
    """The moment the clock reaches ``step`` %: the first at which `reached` says so."""
    return earliest_within(due, _left_at(window, step / 100), hours)


def window_of(case: Case) -> int:
    """The case's SLA window; a case from before the column had its queue's."""
    if case.sla_window_minutes is not None:
        return case.sla_window_minutes
    return case.queue.sla_minutes if case.queue is not None else 0


def running(case: Case) -> bool:
    return (case.queue is not None and case.sla_due_at is not None and case.sla_paused_at is None
            and case.status in CLOCK_STATUSES)


def next_step_at(case: Case, *, notified: int | None = None) -> datetime | None:
    """When the case's next SLA step is due, after ``notified`` (default: the step taken): None
    while the clock stands still, or when no step is left. The one computation of ``sla_next_at``."""
    if case.queue is None or not running(case):
        return None
    done = case.sla_notified_pct if notified is None else notified
    step = next((s for s in STEPS if s > done), None)
    if step is None:
        return None
    return step_at(case.sla_due_at, window_of(case), step, hours_of(case.queue))


@lifecycle.on_move
def refresh(case: Case) -> None:
    """Store `next_step_at` in ``sla_next_at``: after any change of the due time, the window, the
    pause, the step taken, the queue or (through the lifecycle) the status; and when the clock
    stopped for good, in ``sla_stopped_at``."""
    session = object_session(case)
    with session.no_autoflush if session is not None else nullcontext():
        case.sla_next_at = next_step_at(case)
        if case.status not in STOPPED_STATUSES:
            case.sla_stopped_at = None
        elif case.sla_stopped_at is None:
            case.sla_stopped_at = utcnow()


# --- where a case stands -----------------------------------------------------------------------------
# One answer for the badges, the inbox filters and counts, and the sweeps: the same clock (business
# time, through the steps the engine computes) and the same thresholds.

class Standing(enum.StrEnum):
    NONE = "none"
    PAUSED = "paused"
    ON_TIME = "on_time"
    AT_RISK = "at_risk"
    OVERDUE = "overdue"
    MET = "met"  # decided (or withdrawn) before it was due
    BREACHED = "breached"  # decided after it was due

    @property
    def label(self) -> str:
        if self in (Standing.MET, Standing.BREACHED):
            return f"SLA {self.value}"
        return self.value.replace("_", " ").capitalize()


def standing(status: str, due: datetime | None, paused_at: datetime | None, notified_pct: int,
             next_at: datetime | None, stopped_at: datetime | None, now: datetime) -> Standing:
    """Where a case stands against its SLA: as of when its clock stopped once it was decided;
    at risk from the moment the engine's first warning is due (whether or not a sweep has sent it)."""
    if due is None:
        return Standing.NONE
    if status in STOPPED_STATUSES:
        return decided_standing(due, stopped_at)
    if paused_at is not None:
        return Standing.PAUSED
    if now >= due:
        return Standing.OVERDUE
    if notified_pct >= WARNING_STEP or (next_at is not None and next_at <= now):
        return Standing.AT_RISK
    return Standing.ON_TIME


def decided_standing(due: datetime | None, decided_at: datetime | None) -> Standing:
    """Met or breached: how a decision at ``decided_at`` stood against the due time (NONE without one;
    breached when the moment is unknown)."""
    if due is None:
        return Standing.NONE
    return Standing.MET if decided_at is not None and decided_at <= due else Standing.BREACHED


def standing_of(case: Case, now: datetime | None = None) -> Standing:
    return standing(case.status, case.sla_due_at, case.sla_paused_at, case.sla_notified_pct, case.sla_next_at,
                    case.sla_stopped_at, now or utcnow())


def overdue_sql(now: datetime | ColumnElement[Any]) -> ColumnElement[bool]:
    """`standing` is OVERDUE, in SQL."""
    return and_(Case.sla_stopped_at.is_(None), Case.sla_paused_at.is_(None), Case.sla_due_at <= now)


def at_risk_sql(now: datetime | ColumnElement[Any]) -> ColumnElement[bool]:
    """`standing` is AT_RISK, in SQL."""
    return and_(Case.sla_stopped_at.is_(None), Case.sla_paused_at.is_(None), Case.sla_due_at > now,
                or_(Case.sla_notified_pct >= WARNING_STEP, Case.sla_next_at <= now))


def start_clock(case: Case) -> None:
    """The queue's window, due that many business minutes after the case arrived."""
    if case.queue is not None:
        case.sla_window_minutes = case.queue.sla_minutes
        case.sla_due_at = add_business(case.created_at, case.queue.sla_minutes, hours_of(case.queue))
    refresh(case)


def resume_sla(case: Case, now: datetime) -> None:
    """Restart a paused clock: the business time left when it stopped is left again from ``now``.
    Called when the information a reviewer asked for arrives."""
    if case.sla_paused_at is None:
        return
    if case.sla_due_at is not None:
        hours = hours_of(case.queue)
        case.sla_due_at = add_business(now, max(remaining(case.sla_due_at, case.sla_paused_at, hours), 0), hours)
    case.sla_paused_at = None
    refresh(case)


def set_window(case: Case, minutes: int, now: datetime) -> None:
    """Give the case a ``minutes``-long window, keeping the business time it already used; a
    step not reached at the new pace may be taken again."""
    hours = hours_of(case.queue)
    clock = case.sla_paused_at or now
    current = window_of(case)
    left = minutes if case.sla_due_at is None else remaining(case.sla_due_at, clock, hours) + minutes - current
    case.sla_window_minutes = minutes
    case.sla_due_at = add_business(clock, max(left, 0), hours)
    case.sla_notified_pct = min(case.sla_notified_pct, reached(case.sla_due_at, minutes, hours, clock))
    refresh(case)


def windows_in_use(session: Session) -> dict[int, set[int]]:
    """queue id → the windows of the cases whose clock runs in it (one pass over the open cases)."""
    found: dict[int, set[int]] = {}
    rows = session.execute(select(Case.queue_id, Case.sla_window_minutes).distinct().where(
        Case.queue_id.is_not(None), Case.sla_window_minutes.is_not(None), Case.status.in_(CLOCK_STATUSES),
        Case.sla_paused_at.is_(None)))
    for queue_id, window in rows:
        found.setdefault(queue_id, set()).add(window)
    return found


# --- steps ---------------------------------------------------------------------------------------


class Outcome(enum.StrEnum):
    NONE = "none"
    WARNED = "warned"
    BREACHED = "breached"
    CONTENDED = "contended"  # someone changed the case meanwhile: read it again


def check_case(session: Session, case: Case, now: datetime) -> Outcome:
    """Take the step the case's clock has reached and that was not taken yet."""
    step = reached(case.sla_due_at, window_of(case), hours_of(case.queue), now) if running(case) else 0
    if step <= case.sla_notified_pct:
        _repair(session, case)
        return Outcome.NONE
    if not _claim(session, case, step):
        return Outcome.CONTENDED
    if step == 100:
        _breach(session, case, now)
        return Outcome.BREACHED
    _warn(session, case, step)
    return Outcome.WARNED


def _compare_and_set(session: Session, case: Case, **values: Any) -> bool:
    """Set ``values`` only if nobody changed the case (its version, its step) since it was read."""
    changed = session.execute(
        update(Case)
        .where(Case.id == case.id, Case.version == case.version, Case.sla_notified_pct == case.sla_notified_pct)
        .values(**values, updated_at=Case.updated_at)
        .execution_options(synchronize_session=False)
    ).rowcount == 1
    if changed:
        for name, value in values.items():
            set_committed_value(case, name, value)
    return changed


def _claim(session: Session, case: Case, step: int) -> bool:
    """Record ``step`` (and when the next one is due) unless someone changed the case meanwhile."""
    return _compare_and_set(session, case, sla_notified_pct=step, sla_next_at=next_step_at(case, notified=step))


def _repair(session: Session, case: Case) -> None:
    """No step to take: make ``sla_next_at`` right if it is not (a case that left the clock's
    statuses by a write that did not go through the lifecycle, business hours edited...)."""
    expected = next_step_at(case)
    if case.sla_next_at != expected:
        _compare_and_set(session, case, sla_next_at=expected)


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _warn(session: Session, case: Case, step: int) -> None:
    told = [case.assignee, case.queue.lead if step >= 75 else None]
    rows = notify(session, told, "sla_warning", case, f"Case {case.id} “{case.title}” has used {step}% of its "
                                                      f"SLA in {case.queue.name}: due {_when(case.sla_due_at)}.")
    chain.record(session, AuditAction.CASE_SLA_WARNING, SLA_ACTOR, case_id=case.id, data={
        "step": step, "due": case.sla_due_at.isoformat(), "notified_user_ids": sorted(r.user_id for r in rows)})


def _breach(session: Session, case: Case, now: datetime) -> None:
    source, assignee = case.queue, case.assignee
    target = source.escalation_target if case.status in ESCALATABLE else None
    due, window = case.sla_due_at, window_of(case)
    case.priority = min(Priority.URGENT, case.priority + 1)
    data: dict[str, Any] = {"due": due.isoformat(), "from_queue": source.name, "priority": case.priority_label,
                            "to_queue": target.name if target else None}
    if target is not None:
        data[WINDOW_KEY] = target.sla_minutes
        _escalate(session, case, target, now)
    chain.record(session, AuditAction.CASE_SLA_BREACHED, SLA_ACTOR, case_id=case.id, data=data)
    count_after_commit(session, SLA_BREACHES.labels(source.name))
    where = f"escalated to {target.name}" if target else f"it stays in {source.name}"
    log.info("SLA: case %s breached its %s SLA in queue %s; %s, priority %s", case.id, units.minutes(window),
             source.name, where, case.priority_label)
    message = (f"Case {case.id} “{case.title}” breached its SLA (due {_when(due)}): {where}, "
               f"priority {case.priority_label}.")
    notify(session, [assignee, source.lead], "sla_breach", case, message)
    if target is not None:
        notify(session, [target.lead], "escalation", case, message)


def _escalate(session: Session, case: Case, target: Queue, now: datetime) -> None:
    """Into the target's inbox, unclaimed, with the target's window starting now."""
    source = case.queue.name
    case.queue = target
    case.assignee_id = None
    case.claim_expires_at = None
    case.sla_window_minutes = target.sla_minutes
    case.sla_due_at = add_business(now, target.sla_minutes, hours_of(target))
    case.sla_notified_pct = 0
    refresh(case)  # the move refreshes it too; the case is in its new queue from here on
    session.expire(case, ["recommendation"])  # a loaded post_update relationship would bump the version twice
    lifecycle.transition(session, case, "escalated", SLA_ACTOR,
                         data={"reason": "sla_breach", "from_queue": source, "to_queue": target.name})


# --- the sweep ------------------------------------------------------------------------------------


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


def sweep(session: Session, now: datetime, commit: Callable[[], None], *, batch: int = 200) -> SweepReport:
    """Take every SLA step due by ``now`` (the cases with ``sla_next_at <= now``); ``commit``
    after each case. A case someone else changed meanwhile, three times over, is left for the
    next run (its ``sla_next_at`` is still due)."""
    report = SweepReport()
    for rows in pages(session, Case.sla_next_at, None, now, batch=batch):
        ids = [row.id for row in rows]
        cases = {c.id: c for c in session.scalars(select(Case).where(Case.id.in_(ids)))}
        for case_id in ids:
            if case_id in cases:
                _settle(session, cases[case_id], now, commit, report)
    return report


def _settle(session: Session, case: Case, now: datetime, commit: Callable[[], None], report: SweepReport) -> None:
    """Take the case's step, reading it afresh when another writer moved it meanwhile."""
    outcome = check_case(session, case, now)
    for _ in range(ATTEMPTS - 1):
        if outcome is not Outcome.CONTENDED:
            break
        session.rollback()  # someone changed the case meanwhile
        outcome = check_case(session, case, now)
    if outcome is Outcome.CONTENDED:
        report.left_for_next_run += 1
        return
    commit()
    report.warned += outcome is Outcome.WARNED
    report.breached += outcome is Outcome.BREACHED
