"""Helpers of the escalation tests: rules, cases on a controllable clock, what was audited and sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from app.actors import Actor
from app.audit.models import AuditEvent
from app.cases.models import Case
from app.escalation import rules, services, sla
from app.escalation.models import EscalationRule
from app.extensions import db
from app.notifications.models import InAppNotification as Notification
from app.users import User

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # a Monday
ADMIN = Actor.system("test")


@dataclass
class Leads:
    finance: User  # lead of the finance queue
    senior: User  # lead of finance-senior


def add_rule(name: str, conditions: dict[str, Any], actions: list[dict[str, Any]], *,
             enabled: bool = True) -> EscalationRule:
    document = {"name": name, "enabled": enabled, "conditions": conditions, "actions": actions}
    rule = services.create_rule(db.session, rules.validate(document, services.catalog(db.session)), ADMIN)
    db.session.commit()
    return rule


def on_clock(case: Case, created: datetime, due: datetime | None = None, **values: Any) -> Case:
    """Put the case on the test clock: created at ``created``, due at ``due`` (other columns too),
    with its ``sla_next_at`` computed as the SLA engine does."""
    db.session.execute(update(Case).where(Case.id == case.id)
                       .values(created_at=created, sla_due_at=due, **values)
                       .execution_options(synchronize_session=False))
    db.session.commit()
    db.session.expire_all()
    case = db.session.get(Case, case.id)
    db.session.execute(update(Case).where(Case.id == case.id).values(sla_next_at=sla.next_step_at(case))
                       .execution_options(synchronize_session=False))
    db.session.commit()
    db.session.expire_all()
    return db.session.get(Case, case.id)


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def events(case: Case | int, action: str) -> list[AuditEvent]:
    case_id = case if isinstance(case, int) else case.id
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.case_id == case_id, AuditEvent.action == action)
                                   .order_by(AuditEvent.id)))


def notes(user: User | None = None, kind: str | None = None) -> list[Notification]:
    stmt = select(Notification).order_by(Notification.id)
    if user is not None:
        stmt = stmt.where(Notification.user_id == user.id)
    if kind is not None:
        stmt = stmt.where(Notification.kind == kind)
    return list(db.session.scalars(stmt))


def fresh(case: Case) -> Case:
    db.session.expire_all()
    return db.session.get(Case, case.id)
