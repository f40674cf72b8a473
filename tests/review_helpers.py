"""Helpers of the reviewer-workspace tests: people of every role, cases ready for review, decisions."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from werkzeug.security import generate_password_hash

from app.actors import Actor
from app.audit.models import AuditEvent
from app.cases import policy
from app.cases.lifecycle import transition
from app.cases.models import Case, Decision, Queue, Recommendation
from app.cases.types import examples
from app.extensions import db
from app.review import services
from app.review.services import DecisionCommand
from app.users import User
from tests.conftest import Upstream, case_body

EXAMPLES = examples()

PASSWORD = "correct-horse-battery-1"
_CHEAP_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")  # tests only: fast to check
AI = Actor.system("ai")
RECOMMENDED: dict[str, tuple[str, dict[str, Any]]] = {
    "payment_release": ("hold", {"reason": "Possible sanctions match on the beneficiary"}),
    "credit_limit_change": ("approve", {"limit": "12000.00"}),
    "contract_review": ("approve", {}),
    "aml_alert": ("file_sar", {"narrative": "Structuring below the reporting threshold over six weeks."}),
    "kyc_review": ("approve_onboarding", {}),
}
PRECEDENTS = [{"case_id": 4, "score": 0.91, "outcome": "approved (approve: hold)"}]
ALL_QUEUES = ("finance", "legal", "compliance")


@dataclass
class People:
    reviewer: User
    reviewer2: User
    senior: User
    senior2: User
    admin: User
    auditor: User
    outsider: User  # a reviewer of the legal queue only

    def by_role(self, role: str) -> User:
        return {"reviewer": self.reviewer, "senior_reviewer": self.senior, "admin": self.admin,
                "auditor": self.auditor}[role]


def make_user(key: str, role: str, queues: list[Queue]) -> User:
    user = User(email=f"{key}@example.com", name=key.replace("_", " ").title(), role=role, queues=queues,
                password_hash=_CHEAP_HASH)
    db.session.add(user)
    return user


def make_case(upstream: Upstream, case_type: str = "payment_release", *,
              recommendation: tuple[str, dict[str, Any]] | bool | None = True, data: dict[str, Any] | None = None,
              **body: Any) -> Case:
    """A posted case, analysed: pending_review with ``recommendation`` (the type's usual one when
    True), or ai_failed when None. ``data`` entries replace the example's top-level fields."""
    payload = {**copy.deepcopy(EXAMPLES[case_type]), **(data or {})}
    answer = upstream.post_case(case_body(case_type, data=payload, **body))
    assert answer.status_code == 202, answer.get_json()
    case = db.session.get(Case, answer.get_json()["id"])
    transition(db.session, case, "analysis_started", AI)
    if recommendation is None:
        transition(db.session, case, "analysis_failed", AI, data={"error": "all providers failed"})
    else:
        action, parameters = RECOMMENDED[case_type] if recommendation is True else recommendation
        rec = Recommendation(
            case_id=case.id, case_version=case.version, provider="local", model="rules-v1", template_version="v1",
            prompt_hash="0" * 64, input_hash="0" * 64, action=action, parameters=parameters,
            rationale="Deterministic test rationale.", confidence=0.8, flags=["new_beneficiary"],
            citations=["amount"], details={"precedents": PRECEDENTS},
        )
        db.session.add(rec)
        db.session.flush()
        case.recommendation_id = rec.id
        transition(db.session, case, "recommendation_stored", AI, data={"recommendation_id": rec.id})
    db.session.commit()
    return case


def claim(user: User, case: Case) -> Case:
    claimed = services.claim(db.session, user, case.id)
    db.session.commit()
    return claimed


NEEDS_REASON = ("edit", "reject", "escalate", "request_info")


def command(case: Case, kind: str, **fields: Any) -> DecisionCommand:
    """A valid command for ``case`` as it is now: version, view hash and (where needed) a reason."""
    values: dict[str, Any] = {"kind": kind, "case_version": case.version, **fields}
    if kind in NEEDS_REASON:
        values.setdefault("reason_code", "policy_breach")
        values.setdefault("reason", "The evidence points the other way.")
    if kind in ("approve", "edit") and "view_hash" not in fields:
        final = ((values.get("action"), values.get("parameters", {})) if kind == "edit"
                 else policy.proposed_action(db.session, case))
        values["view_hash"] = policy.view_hash(case, *final)
    return DecisionCommand(**values)


def decide(user: User, case: Case, kind: str, **fields: Any) -> Decision:
    decision = services.decide(db.session, user, case.id, command(case, kind, **fields))
    db.session.commit()
    return decision


def last_event(case: Case | None = None) -> AuditEvent:
    stmt = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)
    if case is not None:
        stmt = stmt.where(AuditEvent.case_id == case.id)
    return db.session.scalars(stmt).one()
