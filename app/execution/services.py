"""Executing approved actions: the rules between ``approved`` and ``executed``.

One attempt (the job ``app.execution.jobs.execute_case``):

1. `start_attempt` re-checks the approval in the database (`check_executable`), opens the
   case's Execution (one per approving decision: its idempotency key is the ``webhook-id`` of
   every attempt), moves the case approved → executing and claims the attempt with a
   conditional UPDATE, so two runs of the job never both deliver. The job commits.
2. The executor delivers, with no database session open.
3. `finish_attempt` records the outcome: delivered → executed; a transient failure → retried
   at `next_attempt_time`; a permanent failure, or no time left → execution_failed.

Retry schedule: after the n-th failed attempt in a row, the next one waits
``EXECUTION_RETRY_SCHEDULE[n-1]`` seconds (the last entry repeats; defaults 60, 300, 1800,
7200, 21600, then 43200), ±10% jitter from `jitter_source`, cut to the whole second, and never
before the receiver's ``Retry-After`` (a 429 or 503 may say how long to wait). An attempt
that would come later than ``EXECUTION_GIVE_UP_AFTER_SECONDS`` (3 days) after the first attempt
of the round (``round_started_at``) is not made: the execution fails (with the defaults, after
about 11 attempts). An admin's retry starts a new round. Each retry is scheduled on RQ
(``enqueue_at``) and stored in ``next_attempt_at``, where `due_for_execution` finds it should
Redis lose the job. Every attempt is an ``execution_attempts`` row (its outcome, status code and
error); the audit events remain the evidence.
"""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import Row, Select, func, or_, select, update
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.orm.attributes import set_committed_value

from app.actors import Actor
from app.audit import chain
from app.audit.actions import AuditAction
from app.audit.models import AuditEvent
from app.cases import lifecycle, policy
from app.cases.models import Case, Decision, Execution, ExecutionAttempt, Status
from app.cases.permissions import DECIDERS, require
from app.controls.models import What
from app.controls.switch import running
from app.db import utcnow
from app.errors import Conflict, DomainError, Invalid, NotFound
from app.execution.delivery import DeliveryResult, Sender
from app.jobs import after_commit
from app.users import User
from app.webhooks import CallbackPolicy

log = logging.getLogger(__name__)

S = Status
EXECUTOR = Actor.system("executor")
QUEUE = "execute"
JITTER = 0.10
FIRST_APPROVAL_EVENTS = (AuditAction.CASE_APPROVED, AuditAction.CASE_FIRST_APPROVAL)
# decision kind → the lifecycle events that record it
APPROVAL_EVENTS = {"approve": FIRST_APPROVAL_EVENTS, "edit": FIRST_APPROVAL_EVENTS,
                   "second_approval": (AuditAction.CASE_SECOND_APPROVAL,)}
SWEEP_BATCH = 500
LIST_LIMIT = 100

# Replaced by tests to control time and the jitter.
clock: Callable[[], datetime] = utcnow
jitter_source: random.Random = random.Random()


class State(enum.StrEnum):
    """``Execution.status``."""

    PENDING = "pending"  # opened, or retried by an admin: no attempt yet
    DELIVERING = "delivering"  # an attempt is under way; next_attempt_at is the end of its lease
    RETRYING = "retrying"  # waiting for next_attempt_at
    DELIVERED = "delivered"
    FAILED = "failed"  # for good: the case is execution_failed and on the failures page
    HANDLED = "handled"  # failed, and an admin recorded how it was dealt with


WAITING = (State.PENDING.value, State.RETRYING.value, State.DELIVERING.value)


class ExecutionRefused(Exception):
    """No valid human approval authorises executing the case; the message says why."""


class CallExpired(ExecutionRefused):
    """The case's expires_at has passed: it is never executed, whatever approval it has."""


def refuse_expired(case: Case) -> None:
    """The check that makes an expired case unexecutable: made right before every attempt, so an
    approval that raced the expiry (or a retry after it) delivers nothing."""
    if case.expires_at is not None and clock() >= case.expires_at:
        raise CallExpired(f"case {case.id} expired at {case.expires_at.isoformat()}: it is never executed")


class NotYet(Exception):
    """The approval is still within its undo window: nothing may be delivered before ``at``."""

    def __init__(self, at: datetime) -> None:
        super().__init__(f"the approval can be undone until {at.isoformat()}")
        self.at = at


def undo_window() -> timedelta:
    """How long after an approval its reviewer may undo it (REVIEW_UNDO_SECONDS); no execution
    starts before the window has closed."""
    return timedelta(seconds=current_app.config["REVIEW_UNDO_SECONDS"])


def execute_after(decision: Decision) -> datetime:
    """When the approval ``decision`` may start executing: once its undo window has closed."""
    return decision.created_at + undo_window()


@dataclass(frozen=True)
class Outcome:
    """How an attempt went, as recorded: the new state, and when to try again when retrying."""

    state: State
    retry_at: datetime | None = None


def outcome_of(result: DeliveryResult, retry_at: datetime | None) -> Outcome:
    if result.outcome == "delivered":
        return Outcome(State.DELIVERED)
    return Outcome(State.RETRYING, retry_at) if retry_at else Outcome(State.FAILED)


@dataclass(frozen=True)
class Attempt:
    """A claimed delivery attempt: detached objects, safe to use with no session open."""

    case: Case
    decision: Decision
    execution: Execution
    approved_by: tuple[str, ...]
    attempt_id: int  # its ExecutionAttempt row


# --- the approval, re-checked ---------------------------------------------------------------------


def check_executable(session: Session, case: Case) -> Decision:
    """The approving decision of an approved case, re-checked in the database: the latest human
    decision is an approval whose action_hash matches, backed by a second approval where one is
    required, and audited. Raises ExecutionRefused otherwise."""
    if case.status != S.APPROVED:
        raise ExecutionRefused(f"case {case.id} is {case.status}, not approved")
    decisions = [d for d in policy.decisions_of(session, case) if d.kind not in policy.NOT_DECISIONS]
    if not decisions:
        raise ExecutionRefused("no human decision is recorded for the case")
    final = decisions[-1]
    if final.kind not in APPROVAL_EVENTS:
        raise ExecutionRefused(f"the latest human decision is {final.kind!r}, not an approval")
    verify_approval(session, case, final)
    return final


def approval_chain(session: Session, final: Decision) -> list[Decision]:
    """The approvals behind ``final``, in order: the first approval and ``final``, or ``final`` alone."""
    if final.kind != "second_approval":
        return [final]
    previous = session.scalars(
        select(Decision).where(Decision.case_id == final.case_id, Decision.id < final.id,
                               Decision.kind.not_in(policy.NOT_DECISIONS)).order_by(Decision.id.desc()).limit(1)
    ).first()
    if previous is None or previous.kind not in policy.FIRST_APPROVALS:
        raise ExecutionRefused(f"second approval {final.id} does not follow a first approval")
    return [previous, final]


def verify_approval(session: Session, case: Case, final: Decision) -> None:
    """Raise ExecutionRefused unless ``final`` and the approvals behind it were made by people who
    may decide cases, for the action they carry, four eyes where required, and are audited."""
    approvals = approval_chain(session, final)
    for decision in approvals:
        if decision.reviewer.role not in DECIDERS:
            raise ExecutionRefused(f"decision {decision.id} was made by a user with role "
                                   f"{decision.reviewer.role!r}, who may not decide cases")
        if decision.action is None or decision.action_hash != policy.action_hash(decision.action, decision.parameters):
            raise ExecutionRefused(f"decision {decision.id}: its action_hash does not match its action "
                                   "and parameters")
    _check_four_eyes(session, case, approvals)
    _check_audited(session, case, approvals)


def _check_four_eyes(session: Session, case: Case, approvals: list[Decision]) -> None:
    final = approvals[-1]
    if len(approvals) == 1:
        if policy.dual_approval_required(case, final.action, final.parameters)[0]:
            raise ExecutionRefused("the case requires a second approval, and it is missing")
        return
    first = approvals[0]
    try:
        policy.check_second_approver(session, case, first, final.reviewer_id, final.reviewer.role)
    except DomainError as exc:
        raise ExecutionRefused(f"the second approval breaks the four-eyes rule: {exc.message}") from None
    if (first.action, first.parameters) != (final.action, final.parameters):
        raise ExecutionRefused("the second approval confirms another action than the first")


def _check_audited(session: Session, case: Case, approvals: list[Decision]) -> None:
    """Each approval's move is in the (tamper-evident) audit trail, by its reviewer, for its action."""
    names = {name for names in APPROVAL_EVENTS.values() for name in names}
    events = session.execute(select(AuditEvent.actor, AuditEvent.action, AuditEvent.data)
                             .where(AuditEvent.case_id == case.id, AuditEvent.action.in_(names))).all()
    for decision in approvals:
        actor = str(Actor("user", decision.reviewer_id))
        if not any(e.actor == actor and e.action in APPROVAL_EVENTS[decision.kind]
                   and e.data.get("action_hash") == decision.action_hash for e in events):
            raise ExecutionRefused(f"decision {decision.id} has no matching approval in the audit trail")


# --- one attempt -------------------------------------------------------------------------------------


def start_attempt(session: Session, case_id: int) -> Attempt | None:
    """Claim the case's next delivery attempt (flushed; the caller commits). None when there is
    nothing to deliver now: no such case, executed or failed already, not due yet, or another run
    holds the attempt. Raises ExecutionRefused when no valid approval authorises it, NotYet while
    the approval can still be undone."""
    case = session.get(Case, case_id)
    if case is None or case.status in (S.EXECUTED, S.EXECUTION_FAILED):
        return None
    refuse_expired(case)
    if case.status == S.EXECUTING:
        execution = waiting_execution(session, case_id)
        if execution is None:
            return None
        final = session.get_one(Decision, execution.decision_id)
        verify_approval(session, case, final)
    else:
        final = check_executable(session, case)
        if undo_window() and clock() < execute_after(final):
            raise NotYet(execute_after(final))
        execution = _open_execution(session, case, final)
    now = clock()
    if not _claim(session, execution, now):
        return None
    row = ExecutionAttempt(execution_id=execution.id, number=execution.attempts, started_at=now)
    session.add(row)
    session.flush()
    approved_by = tuple(d.reviewer.email for d in approval_chain(session, final))
    for obj in (case, case.client, final, execution, row):
        session.expunge(obj)
    return Attempt(case, final, execution, approved_by, row.id)


def _open_execution(session: Session, case: Case, final: Decision) -> Execution:
    done = session.scalar(select(Execution).where(Execution.decision_id == final.id))
    if done is not None:
        raise ExecutionRefused(f"decision {final.id} was executed already (execution {done.id} is {done.status})")
    key = f"exec_{case.id}_{final.id}"
    lifecycle.transition(session, case, "execution_started", EXECUTOR,
                         data={"decision_id": final.id, "idempotency_key": key})
    execution = Execution(case_id=case.id, decision_id=final.id, idempotency_key=key, status=State.PENDING.value,
                          round_started_at=clock())
    session.add(execution)
    session.flush()
    return execution


def waiting_execution(session: Session, case_id: int) -> Execution | None:
    return session.scalars(select(Execution).where(Execution.case_id == case_id, Execution.status.in_(WAITING))
                           .order_by(Execution.id.desc()).limit(1)).first()


def _claim(session: Session, execution: Execution, now: datetime) -> bool:
    """Take the next attempt if it is due and nobody else took it: the lease (twice the timeout and a
    minute) lets another run take over only if this one's worker died mid-attempt."""
    lease = attempt_lease()
    claimed = session.execute(
        update(Execution)
        .where(Execution.id == execution.id, Execution.attempts == execution.attempts,
               Execution.status.in_(WAITING),
               or_(Execution.next_attempt_at.is_(None), Execution.next_attempt_at <= now))
        .values(attempts=execution.attempts + 1, status=State.DELIVERING.value, next_attempt_at=now + lease)
    )
    return claimed.rowcount == 1


def attempt_lease() -> timedelta:
    """How long one delivery attempt (of an execution or a notice) may take: twice the callback
    timeout and a minute. Past it another run may take the attempt over, and RQ stops its job."""
    return timedelta(seconds=2 * current_app.config["CALLBACK_TIMEOUT_SECONDS"] + 60)


def sender() -> Sender:
    config = current_app.config
    return Sender(config["CALLBACK_TIMEOUT_SECONDS"], CallbackPolicy.from_config(config))


def finish_attempt(session: Session, attempt: Attempt, result: DeliveryResult) -> Outcome | None:
    """Record how ``attempt`` went (flushed); the caller commits, then schedules a retry. Records
    nothing on the execution (None) when a later attempt took over: this one outlived its lease
    (its attempt row says "superseded")."""
    execution = session.get_one(Execution, attempt.execution.id)
    number = attempt.execution.attempts
    now = clock()
    retry_at = (next_attempt_time(number, execution.round_started_at, now, result.retry_after)
                if result.outcome == "retry" else None)
    outcome = outcome_of(result, retry_at)
    state = outcome.state
    settled = session.execute(
        update(Execution)
        .where(Execution.id == execution.id, Execution.attempts == number, Execution.status == State.DELIVERING)
        .values(status=state.value, next_attempt_at=retry_at, last_status_code=result.status_code,
                last_error=result.error, delivered_at=now if state == State.DELIVERED else None)
    )
    _finish_row(session, attempt.attempt_id, now, state.value if settled.rowcount == 1 else "superseded", result)
    if settled.rowcount != 1:
        return None
    case = session.get_one(Case, attempt.case.id)
    data = {"execution_id": execution.id, "idempotency_key": execution.idempotency_key, "attempt": number,
            "status_code": result.status_code, "error": result.error}
    if state == State.DELIVERED:
        delivered = {"delivered": result.note} if result.note else {"delivered": "callback", "url": case.callback_url}
        lifecycle.transition(session, case, "executed", EXECUTOR, data={**data, **delivered})
    elif state == State.RETRYING:
        chain.record(session, AuditAction.EXECUTION_RETRY_SCHEDULED, EXECUTOR, case_id=case.id,
                     data={**data, "next_attempt_at": retry_at})
    else:
        lifecycle.transition(session, case, "execution_failed", EXECUTOR,
                             data={**data, "gave_up": result.outcome == "retry"})
    return outcome


def next_attempt_time(failures: int, first_attempt: datetime, now: datetime,
                      retry_after: float | None = None) -> datetime | None:
    """When to try again after ``failures`` failed attempts in a row, not before ``retry_after``
    seconds from now (the receiver's Retry-After), or None when that would be past the give-up time
    (see the module's docstring)."""
    config = current_app.config
    schedule = config["EXECUTION_RETRY_SCHEDULE"]
    if not schedule:
        return None
    wait = schedule[min(failures, len(schedule)) - 1] * jitter_source.uniform(1 - JITTER, 1 + JITTER)
    at = (now + timedelta(seconds=wait)).replace(microsecond=0)
    give_up_at = first_attempt + timedelta(seconds=config["EXECUTION_GIVE_UP_AFTER_SECONDS"])
    if retry_after is not None:
        asked = min(retry_after, (give_up_at - now).total_seconds() + 1)  # a wait of years stays a datetime
        # rounded up to the whole second, so the attempt is never early
        at = max(at, (now + timedelta(seconds=asked, microseconds=999_999)).replace(microsecond=0))
    return at if at <= give_up_at else None


def _finish_row(session: Session, attempt_id: int, now: datetime, outcome: str, result: DeliveryResult) -> None:
    session.execute(update(ExecutionAttempt).where(ExecutionAttempt.id == attempt_id).values(
        finished_at=now, outcome=outcome, status_code=result.status_code, error=result.error))


def refuse(session: Session, case_id: int, reason: str) -> None:
    """Audit a refused execution and note it on the case (``execution_refused_at``: the sweep
    leaves an approved case alone until it changes again). The case is otherwise left as it is,
    except that the delivery of an executing case fails for good (an admin may retry it), its
    refused attempt recorded."""
    case = session.get_one(Case, case_id)
    chain.record(session, AuditAction.CASE_EXECUTION_REFUSED, EXECUTOR, case_id=case.id,
                 data={"reason": reason, "status": case.status})
    # Bookkeeping, not a change of the case: neither its version nor its updated_at moves.
    refused_at = utcnow()  # compared with updated_at, also utcnow (not the services' clock)
    session.execute(update(Case).where(Case.id == case.id)
                    .values(execution_refused_at=refused_at, updated_at=Case.updated_at)
                    .execution_options(synchronize_session=False))
    set_committed_value(case, "execution_refused_at", refused_at)
    execution = waiting_execution(session, case.id) if case.status == S.EXECUTING else None
    if execution is not None:
        now = clock()
        session.add(ExecutionAttempt(execution_id=execution.id, number=execution.attempts + 1, started_at=now,
                                     finished_at=now, outcome="refused", error=reason))
        execution.status, execution.next_attempt_at = State.FAILED.value, None
        execution.last_error = f"refused: {reason}"
        lifecycle.transition(session, case, "execution_failed", EXECUTOR,
                             data={"execution_id": execution.id, "error": execution.last_error})


# --- what to enqueue ------------------------------------------------------------------------------------


def latest_decision_id(session: Session, case_id: int) -> int | None:
    return session.scalar(select(func.max(Decision.id)).where(Decision.case_id == case_id))


def due_for_execution(session: Session, now: datetime | None = None) -> list[int]:
    """Cases whose execute job may have been lost with Redis: a waiting execution past its time (or an
    attempt past its lease), or an approved case left without an execution (and not refused since);
    not those of a queue whose executions are paused."""
    now = now or clock()
    stuck_before = now - max(timedelta(seconds=current_app.config["STUCK_CASE_SECONDS"]), undo_window())
    return [*session.scalars(_due_waiting(now).limit(SWEEP_BATCH)),
            *session.scalars(_approved_unexecuted(stuck_before).limit(SWEEP_BATCH))]


def released_executions(session: Session, queue_id: int | None) -> list[int]:
    """What waited for a pause of executions of queue ``queue_id`` (every queue: None) that is lifted:
    every approved case without an execution, however recent, and every waiting execution now due,
    unless another pause still covers it."""
    waiting, approved = _due_waiting(clock()), _approved_unexecuted(clock() - undo_window())
    if queue_id is not None:
        waiting, approved = waiting.where(Case.queue_id == queue_id), approved.where(Case.queue_id == queue_id)
    return [*session.scalars(waiting), *session.scalars(approved)]


def _due_waiting(now: datetime) -> Select[tuple[int]]:
    return (select(Execution.case_id).join(Case, Case.id == Execution.case_id)
            .where(Execution.status.in_(WAITING),
                   or_(Execution.next_attempt_at.is_(None), Execution.next_attempt_at <= now),
                   running(What.EXECUTIONS, Case.queue_id))
            .order_by(Execution.id))


def _approved_unexecuted(approved_before: datetime) -> Select[tuple[int]]:
    """Approved cases last changed (approved, at the latest) before ``approved_before``: an approval
    still within its undo window changed the case after that."""
    not_refused = or_(Case.execution_refused_at.is_(None), Case.execution_refused_at < Case.updated_at)
    return (select(Case.id).where(Case.status == S.APPROVED, not_refused, running(What.EXECUTIONS, Case.queue_id),
                                  Case.updated_at <= approved_before)
            .order_by(Case.id))


# --- the admin's part ----------------------------------------------------------------------------------


def retry_execution(session: Session, admin: User, case_id: int) -> Case:
    """execution_failed → executing, for a new round of attempts, enqueued once the caller commits.
    The job re-checks the approval before delivering."""
    from app.execution.jobs import execution_work  # the jobs module imports this one
    case, execution = _failed_execution(session, admin, case_id)
    lifecycle.transition(session, case, "execution_retried", Actor.user(admin), data={
        "execution_id": execution.id, "previous_attempts": execution.attempts, "last_error": execution.last_error})
    execution.status, execution.attempts, execution.next_attempt_at = State.PENDING.value, 0, None
    execution.round_started_at = clock()
    session.flush()
    after_commit(session, execution_work(session, case_id))
    return case


def mark_handled(session: Session, admin: User, case_id: int, reason: str) -> Execution:
    """Record who dealt with a failed execution outside Countersign, and how. The case stays
    execution_failed; the execution leaves the failures page."""
    case, execution = _failed_execution(session, admin, case_id)
    reason = (reason or "").strip()
    if not reason:
        raise Invalid("say how the failure was handled", {"reason": "required"})
    if execution.status != State.FAILED:
        raise Conflict(f"the execution of case {case.id} is {execution.status}, not failed")
    execution.status = State.HANDLED.value
    chain.record(session, AuditAction.EXECUTION_MARKED_HANDLED, Actor.user(admin), case_id=case.id,
                 data={"execution_id": execution.id, "reason": reason, "by": admin.email})
    return execution


def _failed_execution(session: Session, admin: User, case_id: int) -> tuple[Case, Execution]:
    require(admin, "retry_execution")
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound(f"case {case_id} not found")
    execution = session.scalars(select(Execution).where(Execution.case_id == case_id)
                                .order_by(Execution.id.desc()).limit(1)).first()
    if case.status != S.EXECUTION_FAILED or execution is None:
        raise Conflict(f"case {case_id} is {case.status}, not execution_failed")
    return case, execution


def failed_executions(session: Session) -> list[Row[tuple[Execution, Case]]]:
    """Failed executions an admin has not marked handled, newest first, with their cases."""
    return list(session.execute(_with_cases().where(Execution.status == State.FAILED)))


def recent_executions(session: Session) -> list[Row[tuple[Execution, Case]]]:
    return list(session.execute(_with_cases()))


def _with_cases() -> Select[tuple[Execution, Case]]:
    return (select(Execution, Case).join(Case, Case.id == Execution.case_id).options(joinedload(Case.client))
            .order_by(Execution.id.desc()).limit(LIST_LIMIT))
