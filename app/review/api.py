"""The reviewer API for scripts and chat-ops bots, authenticated by a personal token
(``Authorization: Bearer cst_…``): the same services, rules and refusals as the web UI.

``/cases/<id>/claim|release|decisions`` are POST-only, so they never collide with the
upstream clients' ``GET /api/v1/cases/<id>``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from pydantic import ValidationError

from app.auth.services import user_for_token
from app.cases import permissions, policy
from app.cases.models import Case, Decision, Priority, Recommendation
from app.cases.types import get_case_type
from app.errors import Invalid, field_errors, validation_error
from app.extensions import db
from app.problems import Problem, problem_response
from app.review import services
from app.review.inbox import DEFAULT_PER_PAGE, STATUS_GROUPS, InboxFilters, InboxRow, inbox_page

bp = Blueprint("review_api", __name__, url_prefix="/api/v1")


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


@bp.before_request
def _authenticate() -> Response | None:
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    user = user_for_token(db.session, raw.strip()) if scheme.lower() == "bearer" else None
    if user is None:
        response = problem_response(Problem(401, "unauthorized", "Authentication required",
                                            "send Authorization: Bearer cst_… with a live personal API token"))
        response.headers["WWW-Authenticate"] = 'Bearer realm="countersign"'
        return response
    g.reviewer = user
    return None


def _int_arg(name: str, default: int) -> int:
    raw = request.args.get(name, "")
    if not raw:
        return default
    if not raw.isdigit():
        raise Invalid(f"{name} must be a positive whole number", {name: "not a positive whole number"})
    return int(raw)


@bp.get("/inbox")
def inbox() -> Response:
    queue = permissions.queue_for(db.session, g.reviewer, request.args.get("queue", ""))
    status = request.args.get("status") or "open"
    if status not in STATUS_GROUPS:
        raise Invalid(f"unknown status {status!r}", {"status": f"one of {', '.join(STATUS_GROUPS)}"})
    filters = InboxFilters(status=status, page=_int_arg("page", 1), per_page=_int_arg("per_page", DEFAULT_PER_PAGE))
    page = inbox_page(db.session, g.reviewer, queue, filters)
    db.session.commit()
    return jsonify({"queue": queue.name, "items": [_inbox_item(row, queue.blind_review) for row in page.rows],
                    "page": page.filters.page, "per_page": page.filters.per_page, "total": page.total})


@bp.post("/cases/<int:case_id>/claim")
def claim(case_id: int) -> Response:
    return _summary_after(services.claim(db.session, g.reviewer, case_id))


@bp.post("/cases/<int:case_id>/release")
def release(case_id: int) -> Response:
    return _summary_after(services.release(db.session, g.reviewer, case_id))


@bp.post("/cases/<int:case_id>/decisions")
def decide(case_id: int) -> tuple[Response, int]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise Problem(400, "invalid-json", "The body is not a JSON object", "send the decision as a JSON object")
    try:
        command = services.DecisionCommand.model_validate(body)
    except ValidationError as exc:
        raise validation_error(field_errors(exc)) from None
    decision = services.decide(db.session, g.reviewer, case_id, command, bind_by_version=True)
    case = db.session.get(Case, case_id)
    answer = {"decision": _decision(decision), "case": {"id": case.id, "status": case.status, "version": case.version}}
    db.session.commit()
    return jsonify(answer), 201


@bp.get("/review/cases/<int:case_id>")
def review_case(case_id: int) -> Response:
    case = permissions.get_case_for(db.session, g.reviewer, case_id, "view")
    answer = _review_document(case)
    db.session.commit()
    return jsonify(answer)


def _summary_after(case: Case) -> Response:
    answer = _summary(case)
    db.session.commit()
    return jsonify(answer)


# --- JSON shapes ---------------------------------------------------------------------------------


def _summary(case: Case) -> dict[str, Any]:
    return {
        "id": case.id, "external_id": case.external_id, "domain": case.domain, "case_type": case.case_type,
        "title": case.title, "status": case.status, "version": case.version, "priority": case.priority_label,
        "queue": case.queue.name if case.queue else None, "assignee": case.assignee.email if case.assignee else None,
        "claim_expires_at": _iso(case.claim_expires_at), "sla_due_at": _iso(case.sla_due_at),
    }


def _inbox_item(row: InboxRow, blind: bool) -> dict[str, Any]:
    return {
        "id": row.id, "external_id": row.external_id, "case_type": row.case_type, "title": row.title,
        "status": row.status, "priority": Priority(row.priority).label, "sla_due_at": _iso(row.sla_due_at),
        "assignee": row.assignee_name, "amount": str(row.amount) if row.amount is not None else None,
        "currency": row.currency,
        # A blind-review queue reveals nothing of the AI's view in its list.
        "confidence": None if blind else row.confidence, "flags": [] if blind else row.flags,
    }


def _decision(d: Decision) -> dict[str, Any]:
    return {
        "id": d.id, "kind": d.kind, "action": d.action, "parameters": d.parameters, "diff": d.diff,
        "action_hash": d.action_hash, "reason_code": d.reason_code, "reason": d.reason,
        "recommendation_id": d.recommendation_id, "case_version": d.case_version,
        "decided_by": d.reviewer.email, "decided_at": _iso(d.created_at),
    }


def _recommendation(rec: Recommendation) -> dict[str, Any]:
    return {
        "id": rec.id, "action": rec.action, "parameters": rec.parameters, "rationale": rec.rationale,
        "confidence": rec.confidence, "flags": rec.flags, "citations": rec.citations, "details": rec.details,
        "provider": rec.provider, "model": rec.model, "created_at": _iso(rec.created_at),
    }


def _review_document(case: Case) -> dict[str, Any]:
    """The case as the reviewer sees it; on a blind queue, nothing of the AI's view before their own assessment."""
    hidden = services.recommendation_hidden(db.session, g.reviewer, case)
    action, parameters = policy.proposed_action(db.session, case)
    required, role = policy.dual_approval_required(case, action, parameters)
    decisions = [] if hidden else policy.decisions_of(db.session, case)
    return {
        **_summary(case),
        "amount": str(case.amount) if case.amount is not None else None, "currency": case.currency,
        "data": case.payload,
        "recommendation_hidden": hidden,
        "recommendation": _recommendation(case.recommendation) if case.recommendation and not hidden else None,
        "proposed_action": None if hidden else {"action": action, "parameters": parameters},
        "view_hash": None if hidden else policy.view_hash(case, action, parameters),
        "dual_approval": {"required": required, "role": role},
        "actions": list(get_case_type(case.domain, case.case_type).action_names),
        "reason_codes": [{"code": code, "label": label} for code, label in services.reason_codes()],
        "decisions": [_decision(d) for d in decisions],
    }
