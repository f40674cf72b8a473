"""The JSON shape of a case for the upstream client that posted it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.cases.models import Case, Decision, Execution
from app.errors import NotFound
from app.intake.models import ApiClient


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def case_document(session: Session, client: ApiClient, case_id: int) -> dict[str, Any]:
    case = session.get(Case, case_id)
    if case is None or case.client_id != client.id:  # another client's case does not exist for you
        raise NotFound(f"no case {case_id} for this client", slug="case-not-found", title="Case not found")
    rec = case.recommendation
    decisions = session.scalars(select(Decision).where(Decision.case_id == case.id).order_by(Decision.id)).all()
    execution = session.scalars(
        select(Execution).where(Execution.case_id == case.id).order_by(Execution.id.desc()).limit(1)
    ).first()
    return {
        "id": case.id,
        "external_id": case.external_id,
        "domain": case.domain,
        "case_type": case.case_type,
        "title": case.title,
        "status": case.status,
        "version": case.version,
        "queue": case.queue.name if case.queue else None,
        "priority": case.priority_label,
        "sla_due_at": _iso(case.sla_due_at),
        "created_at": _iso(case.created_at),
        "recommendation": None if rec is None else {
            "action": rec.action,
            "parameters": rec.parameters,
            "rationale": rec.rationale,
            "confidence": rec.confidence,
            "flags": rec.flags,
            "citations": rec.citations,
            "provider": rec.provider,
            "model": rec.model,
        },
        "decisions": [
            {
                "kind": d.kind,
                "action": d.action,
                "parameters": d.parameters,
                "reason_code": d.reason_code,
                "reason": d.reason,
                "decided_by": d.reviewer.email,
                "decided_at": _iso(d.created_at),
            }
            for d in decisions
        ],
        "execution": None if execution is None else {
            "status": execution.status,
            "attempts": execution.attempts,
            "last_status_code": execution.last_status_code,
            "delivered_at": _iso(execution.delivered_at),
        },
    }
