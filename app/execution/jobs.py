"""RQ jobs of execution and upstream notifications. They take ids, hold no database session
during a delivery, and are safe to run twice."""

from __future__ import annotations

import logging

from sqlalchemy.exc import IntegrityError

from app.cases.lifecycle import StaleVersion
from app.execution import services, upstream
from app.extensions import db
from app.jobs import job

log = logging.getLogger(__name__)


@job
def execute_case(case_id: int) -> str:
    """One delivery attempt of the case's approved action: ``delivered``, ``retrying``, ``failed``,
    ``refused``, ``skipped`` (nothing to do now) or ``superseded`` (a later attempt took over)."""
    try:
        attempt = services.start_attempt(db.session, case_id)
    except services.ExecutionRefused as exc:
        db.session.rollback()
        services.refuse(db.session, case_id, str(exc))
        db.session.commit()
        log.warning("execution of case %s refused: %s", case_id, exc)
        return "refused"
    except (StaleVersion, IntegrityError):
        db.session.rollback()
        return "skipped"  # a concurrent run of this job opened the execution first
    db.session.commit()
    if attempt is None:
        return "skipped"
    result = services.executor_for(attempt.case).deliver(attempt.case, attempt.decision, attempt.execution,
                                                          attempt.approved_by)
    outcome = services.finish_attempt(db.session, attempt, result)
    db.session.commit()
    if outcome is None:
        return "superseded"
    if outcome.retry_at is not None:
        services.schedule_attempt(case_id, attempt.execution.id, attempt.execution.attempts + 1, outcome.retry_at)
    return outcome.state.value


@job
def notify_upstream(case_id: int, event_type: str, decision_id: int, attempt: int = 1) -> str:
    """Deliver a ``case.decided`` / ``case.needs_info`` notification: ``delivered``, ``retrying``,
    ``failed`` or ``skipped`` (delivered already)."""
    note = upstream.prepare_notification(db.session, case_id, event_type, decision_id, attempt)
    db.session.rollback()  # only read: release the session before the delivery
    if note is None:
        return "skipped"
    result = note.send(services.sender())
    outcome = upstream.record_notification(db.session, note, result)
    db.session.commit()
    if outcome.retry_at is not None:
        upstream.schedule_notification(note, outcome.retry_at)
    return outcome.state.value


@job
def retry_due_executions() -> int:
    """Periodic: enqueue execute jobs that are due but missing (Redis lost them, or a worker died
    mid-attempt). Returns how many were enqueued."""
    case_ids = services.due_for_execution(db.session)
    enqueued = sum(services.enqueue_execution(case_id) for case_id in case_ids)
    db.session.rollback()
    if enqueued:
        log.info("re-enqueued %d due execution(s)", enqueued)
    return enqueued
