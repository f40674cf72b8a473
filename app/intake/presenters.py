"""The case as the upstream client that posted it sees it (`UpstreamCase`)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from app.cases import policy
from app.cases.models import Case, Execution
from app.cases.schemas import DecisionRecord, RecommendationBrief
from app.intake.schemas import ExecutionState, UpstreamCase
from app.intake.services import own_case


def case_document(session: Session, client_id: int, case_id: int) -> UpstreamCase:
    """Three queries: the case with its queue and recommendation, its decisions with their
    reviewers, its latest execution (an agent waiting for the decision is answered with it)."""
    case = own_case(session, client_id, case_id, (joinedload(Case.queue), joinedload(Case.recommendation)))
    decisions = policy.decisions_of(session, case)
    execution = session.scalars(
        select(Execution).where(Execution.case_id == case.id).order_by(Execution.id.desc()).limit(1)
    ).first()
    rec = case.recommendation
    return UpstreamCase.of(
        case,
        created_at=case.created_at,
        expires_at=case.expires_at,
        answer=next((d.reason for d in reversed(decisions) if d.kind == "respond"), None),
        recommendation=None if rec is None else RecommendationBrief.model_validate(rec),
        decisions=[DecisionRecord.model_validate(d) for d in decisions],
        execution=None if execution is None else ExecutionState.model_validate(execution),
    )
