"""RQ jobs of the AI runtime. They take ids, never ORM objects, and are idempotent."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import or_, select

from app.cases.models import Case, Status
from app.db import utcnow
from app.extensions import db
from app.jobs import enqueue_analysis, job

log = logging.getLogger(__name__)
SWEEP_BATCH = 500


@job
def requeue_stuck_cases() -> int:
    """Enqueue analysis for cases that never got a job (Redis was down at intake) or
    whose job died with its worker. Returns how many were enqueued."""
    stale_before = utcnow() - timedelta(seconds=current_app.config["STUCK_CASE_SECONDS"])
    rows = db.session.execute(
        select(Case.id, Case.version)
        .where(or_(Case.status == Status.RECEIVED.value,
                   (Case.status == Status.ANALYZING.value) & (Case.updated_at < stale_before)))
        .order_by(Case.id)
        .limit(SWEEP_BATCH)
    ).all()
    db.session.rollback()  # release the read transaction before talking to Redis
    enqueued = sum(enqueue_analysis(case_id, version) for case_id, version in rows)
    if enqueued:
        log.info("requeued %d stuck case(s)", enqueued)
    return enqueued
