"""Helpers of the execution and upstream tests.

Cases reach ``approved`` (or ``needs_info``) through the lifecycle directly, with the Decision
rows and audit data a reviewer's approval leaves, so these tests do not depend on the review UI.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from app.actors import Actor
from app.audit.models import AuditEvent
from app.cases.lifecycle import transition
from app.cases.models import Case, Decision, Execution, Queue
from app.cases.policy import action_hash
from app.extensions import db
from app.users import User
from tests.conftest import Upstream, case_body

AI = Actor.system("ai")
RELEASE: tuple[str, dict[str, Any]] = ("release", {})


@dataclass
class People:
    reviewer: User
    reviewer2: User
    senior: User
    admin: User
    auditor: User


class FakeClock:
    """The services' clock, moved by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def to(self, moment: datetime) -> None:
        self.now = moment


class FixedJitter:
    """A random source whose ``uniform`` always answers the same factor."""

    def __init__(self, factor: float) -> None:
        self.factor = factor

    def uniform(self, low: float, high: float) -> float:
        assert low <= self.factor <= high
        return self.factor


def make_user(role: str, queues: list[Queue] | None = None) -> User:
    user = User(email=f"{role}-{uuid.uuid4().hex[:6]}@example.com", name=role.replace("_", " ").title(), role=role,
                password_hash="!", queues=queues or [])
    db.session.add(user)
    return user


def make_people(queues: list[Queue]) -> People:
    """Two reviewers and a senior reviewer of ``queues``, an admin and an auditor (committed)."""
    made = People(make_user("reviewer", queues), make_user("reviewer", queues), make_user("senior_reviewer", queues),
                  make_user("admin"), make_user("auditor"))
    db.session.commit()
    return made


def new_case(upstream: Upstream, callback_url: str | None, **overrides: Any) -> Case:
    body = case_body("payment_release", **overrides)
    if callback_url:
        body["callback_url"] = callback_url
    answer = upstream.post_case(body)
    assert answer.status_code == 202, answer.get_json()
    return db.session.get(Case, answer.get_json()["id"])


def in_review(case: Case, reviewer: User) -> Case:
    """received → analyzing → ai_failed → in_review, claimed by ``reviewer``."""
    transition(db.session, case, "analysis_started", AI)
    transition(db.session, case, "analysis_failed", AI)
    transition(db.session, case, "claimed", Actor.user(reviewer))
    db.session.commit()
    return case


def record_decision(case: Case, user: User, event: str, kind: str, action: tuple[str, dict[str, Any]] | None = RELEASE,
                    reason: str | None = None) -> Decision:
    """What a reviewer's decision leaves: the lifecycle move (audited with the action's hash) and the row."""
    name, parameters = action or (None, {})
    digest = action_hash(name, parameters) if action else None
    transition(db.session, case, event, Actor.user(user),
               data={"kind": kind, "action": name, "parameters": parameters, "action_hash": digest})
    decision = Decision(case_id=case.id, reviewer_id=user.id, kind=kind, case_version=case.version, action=name,
                        parameters=parameters, action_hash=digest, reason_code="other" if reason else None,
                        reason=reason)
    db.session.add(decision)
    db.session.commit()
    return decision


def approved_case(upstream: Upstream, people: People, callback_url: str | None, *, dual: bool = False) -> int:
    """A case approved by a reviewer (and a senior reviewer's second approval with ``dual``); its id."""
    case = in_review(new_case(upstream, callback_url), people.reviewer)
    if dual:
        case.requires_dual_approval = True
        record_decision(case, people.reviewer, "first_approval", "approve")
        record_decision(case, people.senior, "second_approval", "second_approval")
    else:
        record_decision(case, people.reviewer, "approved", "edit")
    return case.id


def reload(case_id: int) -> Case:
    db.session.expire_all()
    return db.session.get_one(Case, case_id)


def execution_of(case_id: int) -> Execution:
    db.session.expire_all()
    return db.session.scalars(select(Execution).where(Execution.case_id == case_id)).one()


def events(case_id: int, action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.case_id == case_id,
                                                            AuditEvent.action == action).order_by(AuditEvent.id)))

