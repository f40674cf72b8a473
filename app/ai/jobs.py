"""RQ jobs of the AI runtime. They take ids, never ORM objects, and are idempotent.

An analysis paused by the kill switch (app/controls) returns at once and leaves its case received;
`release_analyses` enqueues the cases that waited once the pause is lifted, and the sweep skips
paused cases meanwhile."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app
from rq import Retry, get_current_job
from sqlalchemy import Select, or_, select

from app.ai import services, shadow
from app.ai.runtime import AllProvidersFailed, analyze
from app.cases.models import Case, Recommendation, Status
from app.controls.models import What
from app.controls.switch import pause_for, running
from app.db import utcnow
from app.extensions import db
from app.jobs import Work, enqueue, job

log = logging.getLogger(__name__)
SWEEP_BATCH = 500


def _retries_left() -> int:
    current = get_current_job()
    return (current.retries_left or 0) if current is not None else 0


@job
def analyze_case(case_id: int) -> str:
    """Analyse one case: pending_review with a recommendation, or ai_failed with the reason;
    ``paused`` (the case left as it is) while the kill switch stops analysis for its queue."""
    case = db.session.get(Case, case_id)
    if case is not None and pause_for(db.session, What.AI, case.queue_id) is not None:
        db.session.rollback()
        return "paused"
    version = services.start_analysis(db.session, case) if case is not None else None
    if version is None:
        db.session.rollback()
        return "skipped"
    snapshot = services.snapshot(case)
    db.session.commit()  # the move to analyzing, before the precedent search: SQLite's one write lock is free
    context = services.context_for(db.session, case)
    db.session.commit()  # nothing held open during the provider calls
    try:
        draft = analyze(snapshot, context)
    except AllProvidersFailed as exc:
        if exc.transient and _retries_left() > 0:
            raise  # RQ retries the job with backoff
        services.record_failure(db.session, case_id, version, str(exc), exc.attempts)
        db.session.commit()
        return "ai_failed"
    stored = services.store_recommendation(db.session, case_id, version, draft)
    db.session.commit()
    if stored is None:
        return "superseded"
    if shadow.target_for(context.routing, case) is not None:
        enqueue(shadow_analysis(stored.id))
    return "stored"


@job
def shadow_case(recommendation_id: int) -> str:
    """Analyse the case of a recommendation with its route's shadow model and store the answer (or the
    failure) apart from the recommendations; ``skipped`` when there is nothing (left) to do: the case
    has moved on to another recommendation, its route has no shadow, or a twin job stored it;
    ``paused`` (not tried again) while the kill switch stops analysis for the case's queue."""
    rec = db.session.get(Recommendation, recommendation_id)
    case = db.session.get(Case, rec.case_id) if rec is not None else None
    routing = services.routing()
    target = shadow.target_for(routing, case) if case is not None else None
    if rec is None or case is None or target is None or case.recommendation_id != recommendation_id \
            or shadow.already_shadowed(db.session, recommendation_id):
        db.session.rollback()
        return "skipped"
    if pause_for(db.session, What.AI, case.queue_id) is not None:  # the kill switch stops shadows too
        db.session.rollback()
        return "paused"
    snapshot = services.snapshot(case)
    context = shadow.shadow_context(services.context_for(db.session, case),
                                    shadow.over_budget(db.session, routing, utcnow()))
    db.session.commit()  # nothing held open during the provider call
    try:
        draft, error = analyze(snapshot, context, [target]), None
    except AllProvidersFailed as exc:
        draft, error = None, str(exc)
    stored = shadow.store(db.session, rec, target, draft, error)
    db.session.commit()
    return "skipped" if stored is None else "failed" if error else "stored"


@job
def requeue_stuck_cases() -> int:
    """Enqueue analysis for cases that never got a job (Redis was down at intake) or
    whose job died with its worker; not those of a paused queue. Returns how many were enqueued."""
    rows = db.session.execute(_awaiting_analysis().limit(SWEEP_BATCH)).all()
    db.session.rollback()  # release the read transaction before talking to Redis
    enqueued = sum(enqueue(analysis(case_id, version)) for case_id, version in rows)
    if enqueued:
        log.info("requeued %d stuck case(s)", enqueued)
    return enqueued


@job
def release_analyses(queue_id: int | None) -> int:
    """Once a pause of analysis is lifted: enqueue every case of the queue (every queue: None) that
    waited for it, batch by batch. Returns how many were enqueued."""
    enqueued, after = 0, 0
    while True:
        query = _awaiting_analysis().where(Case.id > after).limit(SWEEP_BATCH)
        if queue_id is not None:
            query = query.where(Case.queue_id == queue_id)
        rows = db.session.execute(query).all()
        db.session.rollback()
        if not rows:
            break
        enqueued += sum(enqueue(analysis(case_id, version)) for case_id, version in rows)
        after = rows[-1].id
    log.info("analysis resumed: %d waiting case(s) enqueued", enqueued)
    return enqueued


def _awaiting_analysis() -> Select[tuple[int, int]]:
    """Received cases, and cases analysing for longer than a job may take (its worker died), by id,
    unless analysis is paused for their queue."""
    stale_before = utcnow() - timedelta(seconds=current_app.config["STUCK_CASE_SECONDS"])
    return (select(Case.id, Case.version)
            .where(or_(Case.status == Status.RECEIVED.value,
                       (Case.status == Status.ANALYZING.value) & (Case.updated_at < stale_before)),
                   running(What.AI, Case.queue_id))
            .order_by(Case.id))


def shadow_analysis(recommendation_id: int) -> Work:
    """The shadow model's analysis of a recommended case: tried once (a failure is stored, not retried)."""
    return Work(shadow_case, f"shadow-{recommendation_id}", (recommendation_id,), "ai",
                {"job_timeout": current_app.config["AI_JOB_TIMEOUT"]})


def analysis(case_id: int, version: int) -> Work:
    """The analysis of one version of a case, retried with backoff while providers fail transiently."""
    intervals = current_app.config["AI_RETRY_INTERVALS"]
    return Work(analyze_case, f"analyze-{case_id}-{version}", (case_id,), "ai", {
        "job_timeout": current_app.config["AI_JOB_TIMEOUT"],
        "retry": Retry(max=len(intervals), interval=intervals) if intervals else None})
