"""RQ jobs of execution and upstream notifications. They take ids, hold no database session
during a delivery, and are safe to run twice.

A delivery paused by the kill switch (app/controls) returns at once and leaves its case approved
(or its execution waiting); `release_executions` enqueues what waited once the pause is lifted, and
the sweep skips paused cases meanwhile. Notifications of other decisions are not paused."""

from __future__ import annotations

import logging
from dataclasses import replace

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.cases.lifecycle import StaleVersion
from app.cases.models import Case
from app.controls.models import What
from app.controls.switch import pause_for
from app.execution import expiry, services, upstream
from app.execution.delivery import deliver_approval
from app.extensions import db
from app.jobs import Work, after_commit, enqueue, job
from app.metrics import EXECUTION_OUTCOMES

log = logging.getLogger(__name__)


@job
def execute_case(case_id: int) -> str:
    """One delivery attempt of the case's approved action: ``delivered``, ``retrying``, ``failed``,
    ``refused``, ``skipped`` (nothing to do now), ``waiting`` (the approval's undo window is still
    open: tried again when it closes), ``superseded`` (a later attempt took over) or
    ``paused`` (left as it is: the kill switch stops executions for the case's queue). Each
    outcome is counted, once what it records is committed."""
    outcome = _attempt(case_id)
    EXECUTION_OUTCOMES.labels(outcome).inc()
    return outcome


def _attempt(case_id: int) -> str:
    case = db.session.get(Case, case_id)
    if case is not None and pause_for(db.session, What.EXECUTIONS, case.queue_id) is not None:
        db.session.rollback()
        return "paused"
    try:
        attempt = services.start_attempt(db.session, case_id)
    except services.CallExpired as exc:
        db.session.rollback()
        outcome, notice = expiry.expire_or_refuse(db.session, case_id, str(exc))
        if notice is not None:
            after_commit(db.session, notice_work(case_id, notice.event_type, None))
        db.session.commit()
        log.warning("execution of case %s refused: %s", case_id, exc)
        return outcome
    except services.ExecutionRefused as exc:
        db.session.rollback()
        services.refuse(db.session, case_id, str(exc))
        db.session.commit()
        log.warning("execution of case %s refused: %s", case_id, exc)
        return "refused"
    except (StaleVersion, IntegrityError):
        db.session.rollback()
        return "skipped"  # a concurrent run of this job opened the execution first
    except services.NotYet as exc:
        db.session.rollback()
        later = execution_work(db.session, case_id)  # under another id: this very job is still running
        enqueue(replace(later, job_id=f"{later.job_id}-after-undo-window"), at=exc.at)
        return "waiting"  # the approval can still be undone: come back when its window closes
    db.session.commit()
    if attempt is None:
        return "skipped"
    result = deliver_approval(services.sender(), attempt.case, attempt.decision, attempt.execution,
                              attempt.approved_by)
    outcome = services.finish_attempt(db.session, attempt, result)
    db.session.commit()
    if outcome is None:
        return "superseded"
    if outcome.retry_at is not None:
        enqueue(attempt_work(case_id, attempt.execution.id, attempt.execution.attempts + 1),
                at=outcome.retry_at)
    return outcome.state.value


@job
def notify_upstream(case_id: int, event_type: str, decision_id: int | None, attempt: int = 1) -> str:
    """Attempt ``attempt`` of a ``case.decided`` / ``case.needs_info`` notification: ``delivered``,
    ``retrying``, ``failed`` or ``skipped`` (delivered or given up already, or that attempt was made)."""
    note = upstream.prepare_notification(db.session, case_id, event_type, decision_id, attempt)
    db.session.commit()  # the claimed attempt; and no session is held during the delivery
    if note is None:
        return "skipped"
    result = note.send(services.sender())
    outcome = upstream.record_notification(db.session, note, result)
    db.session.commit()
    if outcome.retry_at is not None:
        enqueue(notice_work(note.case_id, note.event_type, note.decision_id, note.attempt + 1),
                at=outcome.retry_at)
    return outcome.state.value


@job
def retry_due_executions() -> int:
    """Periodic: enqueue execute jobs that are due but missing (Redis lost them, or a worker died
    mid-attempt); not those of a paused queue. Returns how many were enqueued."""
    enqueued = _enqueue_executions(services.due_for_execution(db.session))
    if enqueued:
        log.info("re-enqueued %d due execution(s)", enqueued)
    return enqueued


@job
def release_executions(queue_id: int | None) -> int:
    """Once a pause of executions is lifted: enqueue the delivery of every approved case of the queue
    (every queue: None) and every waiting delivery that fell due meanwhile. Returns how many."""
    enqueued = _enqueue_executions(services.released_executions(db.session, queue_id))
    log.info("executions resumed: %d waiting delivery(ies) enqueued", enqueued)
    return enqueued


def _enqueue_executions(case_ids: list[int]) -> int:
    enqueued = sum(enqueue(execution_work(db.session, case_id), overdue=True) for case_id in case_ids)
    db.session.rollback()
    return enqueued


@job
def expire_due_calls() -> int:
    """Periodic: expire the cases past their expires_at (agents' tool calls) and tell their upstream
    systems. Returns how many expired."""
    notices = expiry.expire_due(db.session)
    for notice in notices:
        after_commit(db.session, notice_work(notice.case_id, notice.event_type, None))
    db.session.commit()
    if notices:
        log.info("expired %d case(s)", len(notices))
    return len(notices)


@job
def retry_due_notices() -> int:
    """Periodic: enqueue the upstream notifications that are due but whose job is missing (Redis lost
    it, or a worker died mid-attempt). Returns how many were enqueued."""
    due = upstream.due_notices(db.session)
    db.session.rollback()
    enqueued = sum(enqueue(notice_work(*notice), overdue=True) for notice in due)
    if enqueued:
        log.info("re-enqueued %d due upstream notification(s)", enqueued)
    return enqueued


# --- the work, as enqueued ------------------------------------------------------------------------------


def execution_work(session: Session, case_id: int) -> Work:
    """The case's next delivery attempt. Its id names the work (the waiting execution's next attempt,
    or the decision an approved case waits on), so enqueueing it twice is harmless."""
    execution = services.waiting_execution(session, case_id)
    if execution is not None:
        return attempt_work(case_id, execution.id, execution.attempts + 1)
    decision_id = services.latest_decision_id(session, case_id) or 0
    return Work(execute_case, f"execute-{case_id}-decision-{decision_id}", (case_id,), services.QUEUE,
                _within_the_lease())


def attempt_work(case_id: int, execution_id: int, number: int) -> Work:
    return Work(execute_case, f"execute-{case_id}-execution-{execution_id}-{number}", (case_id,), services.QUEUE,
                _within_the_lease())


def notice_work(case_id: int, event_type: str, decision_id: int | None, attempt: int = 1) -> Work:
    """A ``case.decided`` / ``case.needs_info`` notification of a decision, or a ``case.expired``
    one (no decision), to the upstream system."""
    about = decision_id if decision_id is not None else f"expired-{case_id}"
    return Work(notify_upstream, f"notify-{about}-{attempt}", (case_id, event_type, decision_id, attempt),
                services.QUEUE, _within_the_lease())


def _within_the_lease() -> dict[str, int]:
    """A delivery job stops when its attempt's lease ends: by then another run may have taken the
    attempt over, and a job left marked as running by a dead worker is enqueued again."""
    return {"job_timeout": int(services.attempt_lease().total_seconds())}
