"""The reviewer API for scripts and chat-ops bots, authenticated by a personal token
(``Authorization: Bearer cst_…``): the same services, rules and refusals as the web UI.

``/cases/<id>/claim|release|assign|decisions`` are POST-only, so they never collide with the
upstream clients' ``GET /api/v1/cases/<id>``. Commands and answers are declared in
`app.review.schemas`.
"""

from __future__ import annotations

from typing import TypeVar

from flask import Blueprint, Response, g, jsonify, request
from pydantic import BaseModel, ValidationError

from app import jsonbody
from app.auth.services import user_for_token
from app.cases import permissions, policy
from app.cases.models import Case, Recommendation
from app.cases.types import get_case_type
from app.errors import Invalid, field_errors, validation_error
from app.extensions import db
from app.oversight import calibration
from app.problems import Problem, problem_response
from app.review import openings, reason_codes, services
from app.review.inbox import DEFAULT_PER_PAGE, STATUS_GROUPS, InboxFilters, inbox_page
from app.review.schemas import (
    AssignCommand,
    CalibratedAgreement,
    CaseSummary,
    CaseVersion,
    DecisionAnswer,
    DualApproval,
    InboxItem,
    InboxPage,
    ProposedAction,
    ReasonCode,
    ReviewDecision,
    ReviewDocument,
    ReviewRecommendation,
)

MAX_PAGE_ARG = 100_000  # as the queue page's form
bp = Blueprint("review_api", __name__, url_prefix="/api/v1")
C = TypeVar("C", bound=BaseModel)


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
    if not (raw.isascii() and raw.isdigit() and 0 < int(raw) <= MAX_PAGE_ARG):
        raise Invalid(f"{name} must be a whole number from 1 to {MAX_PAGE_ARG:,}",
                      {name: f"not a whole number from 1 to {MAX_PAGE_ARG:,}"})
    return int(raw)


@bp.get("/inbox")
def inbox() -> Response:
    queue = permissions.queue_for(db.session, g.reviewer, request.args.get("queue", ""))
    status = request.args.get("status") or "open"
    if status not in STATUS_GROUPS:
        raise Invalid(f"unknown status {status!r}", {"status": f"one of {', '.join(STATUS_GROUPS)}"})
    filters = InboxFilters(status=status, page=_int_arg("page", 1), per_page=_int_arg("per_page", DEFAULT_PER_PAGE))
    page = inbox_page(db.session, g.reviewer, queue, filters)
    answer = InboxPage(queue=queue.name, items=[InboxItem.of(row, blind=queue.blind_review) for row in page.rows],
                       page=page.filters.page, per_page=page.filters.per_page, total=page.total)
    db.session.commit()
    return jsonify(answer.model_dump(mode="json"))


@bp.post("/cases/<int:case_id>/claim")
def claim(case_id: int) -> Response:
    return _summary_after(services.claim(db.session, g.reviewer, case_id))


@bp.post("/cases/<int:case_id>/release")
def release(case_id: int) -> Response:
    return _summary_after(services.release(db.session, g.reviewer, case_id))


@bp.post("/cases/<int:case_id>/assign")
def assign(case_id: int) -> Response:
    """``{"assignee": "<email>", "reason": "..."}``: seniors and admins give a case to a reviewer of its queue."""
    command = _command(AssignCommand, "the assignment")
    return _summary_after(services.assign_by_email(db.session, g.reviewer, case_id, command.assignee,
                                                   command.reason))


@bp.post("/cases/<int:case_id>/decisions")
def decide(case_id: int) -> tuple[Response, int]:
    command = _command(services.DecisionCommand, "the decision")
    decision = services.decide(db.session, g.reviewer, case_id, command, bind_by_version=True)
    case = db.session.get(Case, case_id)
    answer = DecisionAnswer(decision=ReviewDecision.model_validate(decision), case=CaseVersion.model_validate(case))
    db.session.commit()
    return jsonify(answer.model_dump(mode="json")), 201


@bp.get("/review/cases/<int:case_id>")
def review_case(case_id: int) -> Response:
    case = permissions.get_case_for(db.session, g.reviewer, case_id, "view")
    answer = _review_document(case)
    openings.record_first_open(db.session, g.reviewer, case)  # the start of the time taken to decide it
    db.session.commit()
    return jsonify(answer.model_dump(mode="json"))


def _command(model: type[C], what: str) -> C:
    """The JSON object body as ``model``: 400 when it is not a JSON object, 422 naming every invalid field."""
    body = jsonbody.document(request.get_data()) if request.is_json else None
    if not isinstance(body, dict):
        raise Problem(400, "invalid-json", "The body is not a JSON object", f"send {what} as a JSON object")
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise validation_error(field_errors(exc)) from None


def _summary_after(case: Case) -> Response:
    answer = CaseSummary.of(case)
    db.session.commit()
    return jsonify(answer.model_dump(mode="json"))


def _calibrated(rec: Recommendation, case_type: str) -> CalibratedAgreement:
    found = calibration.agreement_of(db.session, rec, case_type)
    return CalibratedAgreement(rate=found.rate, decisions=found.decisions, minimum=found.minimum, label=found.label)


def _review_document(case: Case) -> ReviewDocument:
    """The case as the reviewer sees it; on a blind queue, nothing of the AI's view before their own assessment."""
    hidden = services.recommendation_hidden(db.session, g.reviewer, case)
    action, parameters = policy.proposed_action(db.session, case)
    required, role = policy.dual_approval_required(case, action, parameters)
    rec = case.recommendation
    return ReviewDocument.of(
        case,
        amount=None if case.amount is None else str(case.amount),
        currency=case.currency,
        data=case.payload,
        recommendation_hidden=hidden,
        recommendation=ReviewRecommendation.model_validate(rec) if rec is not None and not hidden else None,
        calibrated_agreement=None if rec is None or hidden else _calibrated(rec, case.case_type),
        proposed_action=None if hidden else ProposedAction(action=action, parameters=parameters),
        view_hash=None if hidden else policy.view_hash(case, action, parameters),
        dual_approval=DualApproval(required=required, role=role),
        actions=list(get_case_type(case.domain, case.case_type).action_names),
        reason_codes=[ReasonCode(code=c.code, label=c.label, kinds=c.kinds)
                      for c in reason_codes.all_codes(db.session) if c.active],
        decisions=[] if hidden else [ReviewDecision.model_validate(d) for d in policy.decisions_of(db.session, case)],
    )
