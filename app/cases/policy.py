"""What an approval must satisfy before anything is executed: the one home of the four-eyes
rules. The reviewer workspace applies them when a decision is made; the executor applies them
again, from the database, before it delivers.

- An approval binds to an action by ``action_hash`` (the action and its parameters).
- Dual approval is required when a rule flagged the case, for the actions its case type names
  (a SAR filing, an onboarding rejection), when the case's queue has a threshold of its own and
  the amount (or credit limit set) is at or above it, or, for a queue without one, when the case
  type says so for amounts at or above their currency's threshold (DUAL_APPROVAL_THRESHOLDS).
- Separation of duties: the second approver has the required role and is neither the first
  approver nor anyone who edited the action.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from flask import current_app
from sqlalchemy import ColumnElement, Select, select
from sqlalchemy import case as sql_case
from sqlalchemy.orm import InstrumentedAttribute, Session, joinedload

from app.cases.models import Case, Decision, Status, UndoneApproval
from app.cases.permissions import Role
from app.cases.types import get_case_type
from app.cases.types.view import humanize
from app.db import json_digest
from app.errors import Conflict, Forbidden

if TYPE_CHECKING:
    from app.users import User

FIRST_APPROVALS = ("approve", "edit")
APPROVALS = (*FIRST_APPROVALS, "second_approval")
APPROVED_STATUSES = frozenset(s.value for s in (Status.APPROVED, Status.EXECUTING, Status.EXECUTED,
                                                Status.EXECUTION_FAILED))
NOT_DECISIONS = ("blind_assessment",)  # a reviewer's own assessment before the reveal decides nothing
DEFAULT_SECOND_APPROVER = Role.SENIOR_REVIEWER.value

Final = tuple[str | None, dict[str, Any]]


def action_hash(action: str | None, parameters: dict[str, Any]) -> str:
    return json_digest({"action": action, "parameters": parameters})


def view_hash(case: Case, action: str | None, parameters: dict[str, Any]) -> str:
    """Binds an approval to what the reviewer saw: this version of the case, its
    recommendation, and the final action."""
    rec = case.recommendation
    return json_digest({
        "case": case.id,
        "version": case.version,
        "recommendation": None if rec is None else {"id": rec.id, "action": rec.action, "parameters": rec.parameters},
        "final": {"action": action, "parameters": parameters},
    })


def dual_approval_required(case: Case, action: str | None, parameters: dict[str, Any] | None = None,
                           ) -> tuple[bool, str | None]:
    """(needed, role of the second approver)."""
    required = bool(dual_approval_reasons(case, action, parameters))
    return (True, second_approver_role(case)) if required else (False, None)


def dual_approval_reasons(case: Case, action: str | None, parameters: dict[str, Any] | None = None) -> list[str]:
    """Why approving ``action`` on the case needs two approvals, in words a reviewer reads
    ("this amount is over EUR 100,000"); empty when one approval is enough."""
    kind = get_case_type(case.domain, case.case_type)
    reasons = []
    if case.requires_dual_approval:
        reasons.append("an escalation rule asked for a second approval")
    if action in kind.dual_approval_actions:
        reasons.append(f"{humanize(action)} always needs a second approval")
    threshold = _threshold_reached(case, parameters or {}, kind.dual_approval_over_threshold)
    if threshold is not None:
        amount, limit = threshold
        where = "over" if amount > limit else "at"
        reasons.append(f"this amount is {where} {case.currency or ''} {limit:,.0f}".replace("  ", " "))
    return reasons


def second_approver_role(case: Case) -> str:
    """The role a second approval of the case needs (a rule may have named it)."""
    return case.second_approval_role or DEFAULT_SECOND_APPROVER


def approval_amount(case: Case, parameters: dict[str, Any]) -> Decimal | None:
    """The amount an approval moves: the case's amount or the credit limit the action sets
    (validated by the action schema), whichever is larger; None without either."""
    limit = parameters.get("limit")
    if case.amount is None and limit is None:
        return None
    return max(case.amount or Decimal(0), Decimal(str(limit)) if limit is not None else Decimal(0))


def _threshold_reached(case: Case, parameters: dict[str, Any], by_case_type: bool) -> tuple[Decimal, Decimal] | None:
    """(amount, threshold) when the amount is at or above the queue's own threshold, else (when the
    case type asks for it) the global threshold of its currency. A case without an amount reaches none."""
    amount = approval_amount(case, parameters)
    if amount is None:
        return None
    own = case.queue.dual_approval_threshold if case.queue is not None else None
    if own is None and not by_case_type:
        return None
    thresholds = current_app.config["DUAL_APPROVAL_THRESHOLDS"]
    limit = own if own is not None else thresholds.get(case.currency or "", thresholds["default"])
    return (amount, limit) if amount >= limit else None


def standing(decision_id: ColumnElement[int] | InstrumentedAttribute[int] = Decision.id) -> ColumnElement[bool]:
    """A condition on the decision ``decision_id``: it stands, i.e. it is not an approval its reviewer
    took back (``undone_approvals``). Every count of reviewers' verdicts keeps to these."""
    return ~select(UndoneApproval.decision_id).where(UndoneApproval.decision_id == decision_id).exists()


def decisions_of(session: Session, case: Case) -> list[Decision]:
    """The case's decisions in order, with their reviewers (whom every presentation names)."""
    return list(session.scalars(select(Decision).where(Decision.case_id == case.id)
                                .options(joinedload(Decision.reviewer)).order_by(Decision.id)))


def pending_approval(session: Session, case: Case) -> Decision | None:
    """The first approval a case in awaiting_second_approval waits on."""
    if case.status != Status.AWAITING_SECOND_APPROVAL:
        return None
    return session.scalars(select(Decision).where(Decision.case_id == case.id, Decision.kind.in_(FIRST_APPROVALS))
                           .order_by(Decision.id.desc()).limit(1)).first()


def approving_decision(session: Session, case: Case) -> Decision | None:
    """The approval an approved case stands on (its action is what is delivered); None before."""
    if case.status not in APPROVED_STATUSES:
        return None
    return session.scalars(_latest_approval(Decision, case.id)).first()


def approved_action_column() -> ColumnElement[str | None]:
    """`approving_decision`'s action as a column of a query over cases (NULL before approval)."""
    latest = _latest_approval(Decision.action, Case.id).correlate(Case).scalar_subquery()
    return sql_case((Case.status.in_(APPROVED_STATUSES), latest), else_=None)


def _latest_approval(what: Any, case_id: Any) -> Select[Any]:
    return (select(what).where(Decision.case_id == case_id, Decision.kind.in_(APPROVALS))
            .order_by(Decision.id.desc()).limit(1))


def proposed_action(session: Session, case: Case) -> Final:
    """What ``approve`` would approve now: the pending first approval, else the recommendation."""
    first = pending_approval(session, case)
    if first is not None:
        return first.action, first.parameters
    rec = case.recommendation
    return (rec.action, rec.parameters) if rec is not None else (None, {})


def check_second_approver(session: Session, case: Case, first: Decision, user_id: int, role: str) -> None:
    """Four eyes: Forbidden without the required role; Conflict (separation of duties) for the
    first approver or anyone who edited the action."""
    required = second_approver_role(case)
    if role != required:
        raise Forbidden(f"this needs a {required.replace('_', ' ')}'s second approval")
    editors = session.scalars(select(Decision.reviewer_id).where(Decision.case_id == case.id,
                                                                 Decision.kind == "edit")).all()
    rules = (
        (user_id in editors, "whoever edited the action may not give the second approval"),
        (user_id == first.reviewer_id, "the first approver may not give the second approval"),
    )
    for broken, rule in rules:
        if broken:
            raise Conflict(f"separation of duties: {rule}", slug="separation-of-duties")


def may_second_approve(session: Session, case: Case, first: Decision, user: User) -> bool:
    try:
        check_second_approver(session, case, first, user.id, user.role)
    except (Forbidden, Conflict):
        return False
    return True
