"""The rules of the reviewer workspace: who sees, claims and decides which case, and how.

Every function takes the acting user, checks the rule, changes the case through the
lifecycle (which audits the move) or appends to the audit log itself, and flushes;
the request or job commits once. Stored ``Decision.kind`` values: ``approve`` and
``edit`` (the first, or only, approval), ``second_approval``, ``reject``, ``escalate``,
``request_info``, ``blind_assessment`` and ``respond`` (an answer to an agent's question instead
of running its tool: final, nothing is executed).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Integer, Select, bindparam, select, update
from sqlalchemy.orm import Session

from app.actors import Actor
from app.ai.jobs import analysis
from app.audit import chain
from app.audit.actions import AuditAction
from app.cases import lifecycle, policy
from app.cases.models import Case, Decision, Queue, Status, UndoneApproval
from app.cases.permissions import DECIDERS, can_in, get_case_for, queue_for, require, require_in, sees
from app.cases.types import UnknownAction, get_case_type
from app.db import utcnow
from app.errors import ConfirmationRequired, Conflict, Forbidden, Invalid
from app.execution import services as execution
from app.execution import upstream
from app.execution.jobs import execution_work, notice_work
from app.jobs import after_commit
from app.notifications.services import notify
from app.oversight import qa
from app.review import reason_codes
from app.review import signals as signal_words
from app.review.inbox import inbox_order_ids
from app.review.models import DecisionKind
from app.users import User

S = Status
CLAIMABLE_STATUSES = (S.PENDING_REVIEW, S.AI_FAILED)
CLAIMABLE = tuple(status.value for status in CLAIMABLE_STATUSES)
INBOX_ORDER = (Case.priority.desc(), Case.sla_due_at.asc().nulls_last(), Case.id.asc())
CLAIM_BATCH = 20
UPSTREAM_EVENTS = {"reject": "case.decided", "escalate": "case.decided", "respond": "case.decided",
                   "request_info": "case.needs_info"}
STALE = "the case changed while you were looking at it: reload"
MAX_REASON_LENGTH = 5000
SCHEDULER = Actor.system("scheduler")


# --- claiming ------------------------------------------------------------------------------------


def _move(session: Session, case: Case, event: str, actor: Actor, *, expected_version: int | None = None,
          data: dict[str, Any] | None = None, changes: dict[str, Any] | None = None) -> None:
    """Apply ``changes`` to the case and move it, in one versioned UPDATE.

    Everything else is read before the case changes: an autoflush in between would bump its version."""
    for name, value in (changes or {}).items():
        setattr(case, name, value)
    try:
        lifecycle.transition(session, case, event, actor, expected_version=expected_version, data=data)
    except lifecycle.StaleVersion as exc:
        raise lifecycle.StaleVersion(STALE) from exc


UNCLAIMED = {"assignee_id": None, "claim_expires_at": None}


def _words(status: str) -> str:
    """A status as a reviewer reads it: ``in_review`` → "in review"."""
    return status.replace("_", " ")


def _give(session: Session, user: User, case: Case, event: str, assignee: User, data: dict[str, Any]) -> Case:
    expires = utcnow() + timedelta(minutes=current_app.config["CLAIM_IDLE_MINUTES"])
    _move(session, case, event, Actor.user(user), data={"assignee_id": assignee.id, "assignee": assignee.name, **data},
          changes={"assignee_id": assignee.id, "claim_expires_at": expires})
    return case


def claim(session: Session, user: User, case_id: int) -> Case:
    case = get_case_for(session, user, case_id, "claim")
    if case.assignee_id == user.id and case.status == S.IN_REVIEW:
        return case
    if case.assignee_id is not None:
        raise Conflict(f"case {case.id} is already claimed by {case.assignee.name}", slug="already-claimed")
    if case.status not in CLAIMABLE:
        raise Conflict(f"this case is {_words(case.status)}: it cannot be claimed", slug="illegal-transition")
    return _give(session, user, case, "claimed", user, {})


def claim_next(session: Session, user: User, queue_id: int) -> Case | None:
    """Claim the queue's most urgent unclaimed case (priority, then SLA due time, then age);
    two reviewers asking at once never get the same case."""
    queue = queue_for(session, user, queue_id)
    require_in(user, "claim", queue)
    if session.get_bind().dialect.name == "postgresql":
        case = _lock_next(session, queue.id)
    else:
        case = _reserve_next(session, queue.id, user.id)
    return None if case is None else _give(session, user, case, "claimed", user, {"next_in_queue": queue.name})


def _unclaimed(queue_id: int) -> tuple[Any, ...]:
    return Case.queue_id == queue_id, Case.status.in_(CLAIMABLE), Case.assignee_id.is_(None)


def _candidates(session: Session, queue_id: int) -> Iterator[list[int]]:
    """Unclaimed case ids of the queue in inbox order, a batch at a time. Each batch reads
    index-ordered slices (see inbox.inbox_order_ids), so its cost does not grow with the queue."""
    offset = 0
    while ids := session.scalars(_candidates_stmt(), {"queue_id": queue_id, "offset": offset,
                                                      "reach": offset + CLAIM_BATCH}).all():
        yield list(ids)
        offset += CLAIM_BATCH


@functools.cache
def _candidates_stmt() -> Select[Any]:
    """Built once: building the union of slices costs more than running it on a small queue."""
    # No status condition here: each slice names its status, and a redundant IN would lure
    # the PostgreSQL planner onto another index.
    base = select(Case.id, Case.priority, Case.sla_due_at).where(
        Case.queue_id == bindparam("queue_id"), Case.assignee_id.is_(None))
    return inbox_order_ids(base, CLAIMABLE_STATUSES, offset=bindparam("offset", type_=Integer),
                           limit=CLAIM_BATCH, reach=bindparam("reach", type_=Integer))


def _lock_next(session: Session, queue_id: int) -> Case | None:
    """PostgreSQL: lock the first unclaimed candidate, skipping rows other claimers hold."""
    for ids in _candidates(session, queue_id):
        stmt = (select(Case).where(Case.id.in_(ids), *_unclaimed(queue_id)).order_by(*INBOX_ORDER).limit(1)
                .with_for_update(skip_locked=True).execution_options(populate_existing=True))
        case = session.scalars(stmt).first()
        if case is not None:
            return case
    return None


def _reserve_next(session: Session, queue_id: int, user_id: int) -> Case | None:
    """SQLite: take a candidate with a conditional UPDATE; no row matched means someone else
    was faster, so try the next one."""
    for ids in _candidates(session, queue_id):
        for case_id in ids:
            taken = session.execute(
                update(Case).where(Case.id == case_id, *_unclaimed(queue_id)).values(assignee_id=user_id)
                .execution_options(synchronize_session=False)
            )
            if taken.rowcount == 1:
                return session.get(Case, case_id, populate_existing=True)
    return None


def release(session: Session, user: User, case_id: int) -> Case:
    """Hand a claimed case back: its assignee, a senior reviewer or an admin."""
    case = get_case_for(session, user, case_id, "release")
    if case.status != S.IN_REVIEW:
        raise Conflict(f"this case is {_words(case.status)}, not claimed: there is nothing to unclaim",
                       slug="illegal-transition")
    if case.assignee_id != user.id:
        try:
            require(user, "release_others")
        except Forbidden:
            raise Forbidden("only the reviewer who claimed the case, a senior reviewer or an admin may unclaim it"
                            ) from None
    _move(session, case, "released", Actor.user(user), data={"assignee_id": case.assignee_id}, changes=UNCLAIMED)
    return case


def assign(session: Session, user: User, case_id: int, assignee_id: int | None, reason: str) -> Case:
    """A senior reviewer or admin gives the case to a reviewer who works its queue, saying why."""
    case = get_case_for(session, user, case_id, "assign")
    return _assign(session, user, case, session.get(User, assignee_id) if assignee_id else None, reason)


def assign_by_email(session: Session, user: User, case_id: int, email: str, reason: str) -> Case:
    """`assign`, naming the assignee by email (the reviewer API)."""
    case = get_case_for(session, user, case_id, "assign")
    assignee = session.scalar(select(User).where(User.email == email.strip().lower()))
    return _assign(session, user, case, assignee, reason)


def assignees(session: Session, case: Case) -> list[User]:
    """Who the case may be assigned to: the active reviewers and senior reviewers who see its queue."""
    deciders = session.scalars(select(User).where(User.active.is_(True), User.role.in_(sorted(DECIDERS)))
                               .order_by(User.name, User.id))
    return [person for person in deciders if _may_work(session, person, case)]


def _may_work(session: Session, person: User | None, case: Case) -> bool:
    return person is not None and person.active and can_in(person, "decide", case.queue) and sees(session, person, case)


def _assign(session: Session, user: User, case: Case, assignee: User | None, reason: str) -> Case:
    reason = (reason or "").strip()
    if not reason:
        raise Invalid("say why you assign the case", {"reason": "required"})
    if assignee is None or not _may_work(session, assignee, case):
        raise Invalid("that person cannot work this case", {"assignee": "not an active reviewer of this queue"})
    _give(session, user, case, "assigned", assignee, {"previous_assignee_id": case.assignee_id, "reason": reason})
    notify(session, [assignee], "assignment", case, f"{user.name} assigned you case {case.id}: {reason}")
    return case


def release_expired_claims(session: Session, now: datetime | None = None) -> int:
    """Put claims idle past CLAIM_IDLE_MINUTES back in their inbox; returns how many."""
    stmt = (select(Case).where(Case.status == S.IN_REVIEW, Case.claim_expires_at <= (now or utcnow()))
            .order_by(Case.id).with_for_update(skip_locked=True))
    expired = session.scalars(stmt).all()
    for case in expired:
        _move(session, case, "released", SCHEDULER, data={"assignee_id": case.assignee_id, "reason": "claim expired"},
              changes=UNCLAIMED)
    return len(expired)


def retry_analysis(session: Session, user: User, case_id: int) -> Case:
    """ai_failed → analyzing; the analysis is enqueued once the caller commits."""
    case = get_case_for(session, user, case_id, "retry_analysis")
    _move(session, case, "analysis_retried", Actor.user(user))
    after_commit(session, analysis(case.id, case.version))
    return case


# --- what a decision binds to --------------------------------------------------------------------


def decision_diff(recommended: tuple[str | None, dict[str, Any]], final: tuple[str | None, dict[str, Any]],
                  ) -> dict[str, Any]:
    """``{"action": [old, new]}`` and/or ``{"parameters": {key: [old, new]}}``; empty when equal."""
    (old_action, old_params), (new_action, new_params) = recommended, final
    diff: dict[str, Any] = {}
    if old_action != new_action:
        diff["action"] = [old_action, new_action]
    changed = {key: [old_params.get(key), new_params.get(key)] for key in sorted(old_params.keys() | new_params.keys())
               if old_params.get(key) != new_params.get(key)}
    if changed:
        diff["parameters"] = changed
    return diff


def has_blind_assessment(session: Session, user: User, case: Case) -> bool:
    """Whether the user recorded their own assessment of the case's current recommendation."""
    return session.scalar(select(Decision.id).where(
        Decision.case_id == case.id, Decision.reviewer_id == user.id, Decision.kind == "blind_assessment",
        Decision.recommendation_id == case.recommendation_id,
    ).limit(1)) is not None


def recommendation_hidden(session: Session, user: User, case: Case) -> bool:
    """On a blind-review queue a reviewer sees the recommendation only after their own assessment."""
    return (case.queue is not None and case.queue.blind_review and case.recommendation_id is not None
            and user.role in DECIDERS and case.status in (S.PENDING_REVIEW, S.IN_REVIEW)
            and not has_blind_assessment(session, user, case))


# --- safe speed: risky approvals are confirmed, every approval can be undone for a while ----------


def confirmation_reasons(case: Case, final: Final) -> list[str]:
    """Why approving ``final`` on the case takes a confirmation step, in plain words: an amount at
    or above REVIEW_CONFIRM_AMOUNT, a recommendation less sure than REVIEW_CONFIRM_CONFIDENCE, hard
    flags of the pre-screen. Empty: one key may approve it."""
    config, rec, reasons = current_app.config, case.recommendation, []
    amount = policy.approval_amount(case, final[1])
    if amount is not None and amount >= config["REVIEW_CONFIRM_AMOUNT"]:
        reasons.append(f"it moves {case.currency or ''} {amount:,.2f}".replace("  ", " "))
    if rec is not None and rec.confidence < config["REVIEW_CONFIRM_CONFIDENCE"]:
        reasons.append(f"the AI is only {rec.confidence:.0%} confident")
    if rec is not None and rec.hard_flags:
        reasons.append("the pre-screen raised hard flags: "
                       + ", ".join(signal_words.in_words(flag).label.lower() for flag in rec.hard_flags))
    return reasons


def undo_approval(session: Session, user: User, case_id: int) -> Case:
    """The approver takes their approval back within its undo window (REVIEW_UNDO_SECONDS): the
    case is theirs to decide again, and nothing is executed (the execution job finds it in review)."""
    case = get_case_for(session, user, case_id, "decide")
    approval = _undoable_approval(session, user, case)
    expires = utcnow() + timedelta(minutes=current_app.config["CLAIM_IDLE_MINUTES"])
    _move(session, case, "approval_undone", Actor.user(user), data={"decision_id": approval.id},
          changes={"assignee_id": user.id, "claim_expires_at": expires})
    session.add(UndoneApproval(decision_id=approval.id, case_id=case.id))
    chain.record(session, AuditAction.DECISION_UNDONE, Actor.user(user), case_id=case.id,
                 data={"decision_id": approval.id, "kind": approval.kind, "action": approval.action,
                       "parameters": approval.parameters})
    return case


def undo_until(session: Session, user: User, case: Case) -> datetime | None:
    """Until when ``user`` may still undo their approval of the case; None when they may not."""
    try:
        return execution.execute_after(_undoable_approval(session, user, case))
    except (Conflict, Forbidden):
        return None


def _undoable_approval(session: Session, user: User, case: Case) -> Decision:
    """The user's approval of the case while they may undo it; Conflict or Forbidden saying why not."""
    approval = policy.approving_decision(session, case)
    if case.status != S.APPROVED or approval is None:
        raise Conflict("this approval can no longer be undone: its execution has started", slug="undo-closed")
    if approval.reviewer_id != user.id:
        raise Forbidden("only the reviewer who approved the case may undo the approval")
    if approval.kind not in policy.FIRST_APPROVALS:
        raise Conflict("a second approval cannot be undone: reject the case instead", slug="undo-closed")
    if utcnow() >= execution.execute_after(approval):
        raise Conflict("the time to undo this approval is over: it is being executed", slug="undo-closed")
    return approval


def _require_confirmation(r: _Request, final: Final) -> None:
    reasons = confirmation_reasons(r.case, final)
    if reasons and not r.command.confirmed:
        raise ConfirmationRequired("confirm this approval: " + "; ".join(reasons), reasons)


# --- deciding ------------------------------------------------------------------------------------


class DecisionCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: DecisionKind
    action: str | None = None  # edit / blind: the reviewer's action (approve takes the recommendation's)
    parameters: dict[str, Any] = Field(default_factory=dict)
    reason_code: str | None = None
    reason: str | None = Field(default=None, max_length=MAX_REASON_LENGTH)
    case_version: int
    view_hash: str | None = None  # approve / edit: view_hash(case, final action, final parameters)
    target_queue: str | None = None  # escalate
    # approve / edit: the reviewer confirmed a risky approval (see confirmation_reasons); the web UI
    # asks for it, API clients approve knowingly
    confirmed: bool = True


@dataclass(frozen=True)
class _Request:
    session: Session
    user: User
    case: Case
    command: DecisionCommand
    bind_by_version: bool


Final = policy.Final


def decide(session: Session, user: User, case_id: int, command: DecisionCommand, *,
           bind_by_version: bool = False) -> Decision:
    """Apply a reviewer's decision. ``bind_by_version`` (API clients): without a view_hash, the
    case_version alone binds the approval to what was seen."""
    case = get_case_for(session, user, case_id, "decide")
    if command.case_version != case.version:
        raise lifecycle.StaleVersion(STALE)
    decision = _HANDLERS[command.kind](_Request(session, user, case, command, bind_by_version))
    _follow_up(session, case, decision)
    return decision


def _follow_up(session: Session, case: Case, decision: Decision) -> None:
    """Once the decision commits: an approved action goes to the executor; other outcomes are
    told to the upstream system (the outbox row is written with the decision, so a lost job is
    found again by the notice sweep)."""
    if case.status == S.APPROVED:
        qa.sample_approval(session, case, decision)
        undoable = execution.undo_window() > timedelta(0)
        after_commit(session, execution_work(session, case.id),
                     at=execution.execute_after(decision) if undoable else None)
    elif decision.kind in UPSTREAM_EVENTS:
        upstream.open_notice(session, case.id, UPSTREAM_EVENTS[decision.kind], decision.id)
        after_commit(session, notice_work(case.id, UPSTREAM_EVENTS[decision.kind], decision.id))


def _approve(r: _Request) -> Decision:
    _refuse_own_action(r.command)
    _check_reason(r, required=False)
    if r.case.status == S.AWAITING_SECOND_APPROVAL:
        return _second_approval(r)
    _require_assignee(r)
    rec = r.case.recommendation
    if rec is None:
        raise Invalid("there is no AI recommendation to approve: decide the case with edit",
                      {"kind": "use edit with your own action"})
    _require_blind_assessment(r)
    return _first_approval(r, "approve", (rec.action, rec.parameters))


def _edit(r: _Request) -> Decision:
    if r.case.status == S.AWAITING_SECOND_APPROVAL:
        raise Conflict("a second approval confirms the first approver's action as it is: reject it to change it",
                       slug="illegal-transition")
    _require_assignee(r)
    _require_blind_assessment(r)
    _check_reason(r, required=True)
    final = _validated_action(r.case, r.command)
    rec = r.case.recommendation
    if rec is not None and (rec.action, rec.parameters) == final:
        raise Invalid("the edit changes nothing: approve the recommendation instead",
                      {"parameters": "same as the recommendation"})
    return _first_approval(r, "edit", final)


def _first_approval(r: _Request, kind: str, final: Final) -> Decision:
    _check_view(r, final)
    _require_confirmation(r, final)
    required, role = policy.dual_approval_required(r.case, *final)
    decision = _record(r, "first_approval" if required else "approved", kind, final,
                       {"second_approval_role": role} if required else {})
    if required:
        _notify_second_approvers(r, role)
    return decision


def _second_approval(r: _Request) -> Decision:
    first = _check_second_reviewer(r)
    final = (first.action, first.parameters)
    _check_view(r, final)
    _require_confirmation(r, final)
    return _record(r, "second_approval", "second_approval", final, {"first_decision_id": first.id})


def _reject(r: _Request) -> Decision:
    if r.case.status == S.AWAITING_SECOND_APPROVAL:
        _check_second_reviewer(r)
    else:
        _require_assignee(r)
    _check_reason(r, required=True)
    return _record(r, "rejected", "reject", None)


def _escalate(r: _Request) -> Decision:
    _require_assignee(r)
    _check_reason(r, required=True)
    target = _escalation_target(r.session, r.case, r.command.target_queue)
    return _record(r, "escalated", "escalate", None, {"from_queue": r.case.queue.name, "to_queue": target.name},
                   changes={"queue": target})


def _request_info(r: _Request) -> Decision:
    _require_assignee(r)
    _check_reason(r, required=True)
    # The clock stops: the move recomputes sla_next_at (lifecycle.on_move → sla.refresh), NULL while paused.
    return _record(r, "info_requested", "request_info", None, changes={"sla_paused_at": utcnow()})


def _blind(r: _Request) -> Decision:
    _require_assignee(r)
    if not r.case.queue.blind_review or r.case.recommendation_id is None:
        raise Conflict(f"queue {r.case.queue.name} has no hidden recommendation to assess blind", slug="not-blind")
    if has_blind_assessment(r.session, r.user, r.case):
        raise Conflict("you already recorded your own assessment of this case", slug="already-assessed")
    _check_reason(r, required=False)
    decision = _new_decision(r, "blind_assessment", _validated_action(r.case, r.command))
    r.session.add(decision)
    r.session.flush()
    chain.record(r.session, AuditAction.CASE_BLIND_ASSESSMENT, Actor.user(r.user), case_id=r.case.id,
                 data={"decision_id": decision.id, **_decision_data(decision)})
    return decision


def _respond(r: _Request) -> Decision:
    """Answer the agent's question instead of running its tool: the answer is the reason."""
    _require_assignee(r)
    _require_blind_assessment(r)
    if not get_case_type(r.case.domain, r.case.case_type).answerable:
        raise Invalid(f"a {r.case.case_type} case cannot be answered instead of decided",
                      {"kind": "respond is for an agent's tool call"})
    _check_reason(r, required=False)
    if not (r.command.reason or "").strip():
        raise Invalid("write the answer to the agent", {"reason": "the answer is required"})
    return _record(r, "responded", "respond", None)


_HANDLERS = {"approve": _approve, "edit": _edit, "reject": _reject, "escalate": _escalate,
             "request_info": _request_info, "blind": _blind, "respond": _respond}


def _record(r: _Request, event: str, kind: str, final: Final | None, data: dict[str, Any] | None = None, *,
            changes: dict[str, Any] | None = None) -> Decision:
    """Move the case with ``changes`` (its versioned UPDATE settles races), then store the decision."""
    decision = _new_decision(r, kind, final)
    _move(r.session, r.case, event, Actor.user(r.user), expected_version=r.command.case_version,
          data={**_decision_data(decision), **(data or {})}, changes={**UNCLAIMED, **(changes or {})})
    r.session.add(decision)
    r.session.flush()
    return decision


def _new_decision(r: _Request, kind: str, final: Final | None) -> Decision:
    rec = r.case.recommendation
    action, parameters = final or (None, {})
    recommended = (rec.action, rec.parameters) if rec is not None else (None, {})
    return Decision(
        case_id=r.case.id, reviewer_id=r.user.id, recommendation_id=r.case.recommendation_id, kind=kind,
        case_version=r.command.case_version, action=action, parameters=parameters,
        diff=decision_diff(recommended, (action, parameters)) if final is not None else {},
        action_hash=policy.action_hash(action, parameters) if final is not None else None,
        reason_code=r.command.reason_code, reason=(r.command.reason or "").strip() or None,
    )


def _decision_data(decision: Decision) -> dict[str, Any]:
    return {"kind": decision.kind, "action": decision.action, "parameters": decision.parameters,
            "diff": decision.diff, "action_hash": decision.action_hash, "reason_code": decision.reason_code,
            "reason": decision.reason, "recommendation_id": decision.recommendation_id}


def _require_assignee(r: _Request) -> None:
    if r.case.status != S.IN_REVIEW:
        raise Conflict(f"this case is {_words(r.case.status)}: claim it first", slug="not-in-review")
    if r.case.assignee_id != r.user.id:
        raise Forbidden("only the reviewer who claimed the case may decide it")


def _refuse_own_action(command: DecisionCommand) -> None:
    if command.action is not None or command.parameters:
        raise Invalid("approve takes the proposed action as it is: use edit to change it",
                      {"action": "not allowed with approve"})


def _require_blind_assessment(r: _Request) -> None:
    if recommendation_hidden(r.session, r.user, r.case):
        raise Conflict("record your own assessment (blind) before the recommendation is revealed",
                       slug="blind-assessment-required")


def _check_reason(r: _Request, *, required: bool) -> None:
    command, errors = r.command, {}
    problem = reason_codes.problem_with(r.session, command.kind, command.reason_code, required=required)
    if problem:
        errors["reason_code"] = problem
    if required and not (command.reason or "").strip():
        errors["reason"] = "explain the decision in a few words"
    if errors:
        raise Invalid("a reason code and an explanation are required", errors)


def _validated_action(case: Case, command: DecisionCommand) -> tuple[str, dict[str, Any]]:
    """The reviewer's own action, checked by the case type's schema and normalised."""
    if not command.action:
        raise Invalid("choose an action", {"action": "required"})
    case_type = get_case_type(case.domain, case.case_type)
    try:
        params = case_type.validate_action(command.action, command.parameters)
    except UnknownAction as exc:
        raise Invalid(str(exc), {"action": str(exc)}) from None
    except ValidationError as exc:
        errors = {".".join(str(p) for p in ("parameters", *err["loc"])): err["msg"] for err in exc.errors()}
        raise Invalid(f"the parameters of {command.action} are invalid", errors) from None
    parameters = params.model_dump(mode="json")
    problems = case_type.action_problems(case_type.validate_data(case.payload), command.action, parameters)
    if problems:
        raise Invalid(f"the parameters of {command.action} do not fit this case", problems)
    return command.action, parameters


def _check_view(r: _Request, final: Final) -> None:
    seen = r.command.view_hash
    if seen is None and r.bind_by_version:
        return  # case_version, checked already, is the binding
    if seen is None:
        raise Invalid("view_hash is required to approve", {"view_hash": "required"})
    if seen != policy.view_hash(r.case, *final):
        raise Conflict(STALE, slug="view-changed")


def _check_second_reviewer(r: _Request) -> Decision:
    first = policy.pending_approval(r.session, r.case)
    if first is None:
        raise Conflict("no first approval is waiting on this case", slug="illegal-transition")
    policy.check_second_approver(r.session, r.case, first, r.user.id, r.user.role)
    return first


def _escalation_target(session: Session, case: Case, name: str | None) -> Queue:
    name = (name or "").strip()
    if not name:
        raise Invalid("name the queue to escalate to", {"target_queue": "required"})
    target = session.scalar(select(Queue).where(Queue.name == name))
    if target is None:
        raise Invalid("name an existing queue to escalate to", {"target_queue": f"no queue named {name!r}"})
    if target.id == case.queue_id:
        raise Invalid("the case is already in that queue", {"target_queue": "the case's own queue"})
    if target.domain != case.domain and target.id != case.queue.escalation_target_id:
        raise Invalid(f"queue {target.name} does not take {case.domain} cases",
                      {"target_queue": f"not a {case.domain} queue"})
    return target


def _notify_second_approvers(r: _Request, role: str) -> None:
    approvers = [m for m in r.case.queue.members if m.role == role and m.id != r.user.id]
    notify(r.session, approvers, "second_approval_request", r.case,
           f"{r.user.name} approved case {r.case.id}; it needs your second approval")


def set_auto_next(session: Session, user: User, on: bool) -> None:
    """The reviewer's preference: after a decision, claim and open the queue's next case."""
    user.auto_next = on
    session.flush()
