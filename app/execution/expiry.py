"""Expiry: a case with an ``expires_at`` (an agent's tool call) that is not decided, or not yet
executing, by then becomes ``expired`` (final, audited) and its upstream system is told with a
signed ``case.expired`` notice. The periodic sweep expires the cases that are due; the executor
refuses an expired case right before every attempt (`services.refuse_expired`), so an approval
that races the expiry never runs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.actors import Actor
from app.cases import lifecycle
from app.cases.models import Case, Status
from app.execution import services, upstream
from app.execution.models import UpstreamNotice

EXPIRER = Actor.system("expiry")
EXPIRED_EVENT = "case.expired"
SWEEP_BATCH = 200
EXPIRABLE = tuple(status.value for status in lifecycle.EXPIRABLE)


def expire(session: Session, case: Case) -> UpstreamNotice:
    """Move the case to expired (unclaimed) and open its ``case.expired`` notice (flushed; the caller
    commits and enqueues the notice)."""
    case.assignee_id, case.claim_expires_at = None, None
    lifecycle.transition(session, case, "expired", EXPIRER,
                         data={"expires_at": case.expires_at.isoformat() if case.expires_at else None})
    return upstream.open_notice(session, case.id, EXPIRED_EVENT, None)


def expire_due(session: Session, now: datetime | None = None) -> list[UpstreamNotice]:
    """Expire the cases whose time is up (a batch; rows other sweeps hold are skipped, and a case that
    a decision or the executor changed meanwhile is left to the next sweep or to the executor)."""
    stmt = (select(Case).where(Case.expires_at <= (now or services.clock()), Case.status.in_(EXPIRABLE))
            .order_by(Case.expires_at, Case.id).limit(SWEEP_BATCH).with_for_update(skip_locked=True))
    notices = []
    for case in session.scalars(stmt).all():
        try:
            with session.begin_nested():
                notices.append(expire(session, case))
        except lifecycle.StaleVersion:
            session.expire(case)
    return notices


def expire_or_refuse(session: Session, case_id: int, reason: str) -> tuple[str, UpstreamNotice | None]:
    """The executor found the case expired: an approved case expires; a delivery under way (a retry
    after the expiry) fails for good instead, so that nothing is delivered either way."""
    case = session.get_one(Case, case_id)
    if case.status in EXPIRABLE:
        return "expired", expire(session, case)
    if case.status == Status.EXECUTING:
        services.refuse(session, case_id, reason)
    return "refused", None
