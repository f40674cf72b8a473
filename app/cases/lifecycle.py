"""The one state machine of a case. No other code assigns ``case.status``.

``transition`` checks that the move is allowed from the current state and that
the actor may make it, applies it, bumps ``version`` (optimistic locking: the
UPDATE only matches the version that was read) and writes the audit event in
the same transaction. Callers commit.

State that other features derive from the case's status registers with `on_move`: each
listener runs after the status is set and before the versioned UPDATE, so what it changes
goes into that same UPDATE (the SLA engine keeps ``sla_next_at`` so).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from app.actors import Actor
from app.audit import chain
from app.audit.actions import AuditAction
from app.cases.models import Case, Status
from app.cases.permissions import ADMINS, ASSIGNERS, DECIDERS, SENIORS
from app.db import utcnow
from app.errors import Conflict, Forbidden, Stale

S = Status
BEFORE_APPROVAL = frozenset(
    {S.RECEIVED, S.ANALYZING, S.PENDING_REVIEW, S.AI_FAILED, S.IN_REVIEW, S.AWAITING_SECOND_APPROVAL, S.NEEDS_INFO}
)
TERMINAL = frozenset({S.REJECTED, S.EXECUTED, S.WITHDRAWN, S.RESPONDED, S.EXPIRED})
# A case with an expires_at expires from these: undecided, or approved and not yet executing.
EXPIRABLE = BEFORE_APPROVAL | {S.APPROVED}


def _back_to_inbox(case: Case) -> Status:
    """A case leaving a reviewer's hands waits with, or without, an AI recommendation."""
    return S.PENDING_REVIEW if case.recommendation_id is not None else S.AI_FAILED


@dataclass(frozen=True)
class Move:
    sources: frozenset[Status]
    target: Status | Callable[[Case], Status]
    # Actor kinds allowed ("system", "client") and user roles allowed.
    kinds: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()

    def target_for(self, case: Case) -> Status:
        return self.target(case) if callable(self.target) else self.target


def _move(
    sources: set[Status] | Status,
    target: Status | Callable[[Case], Status],
    *,
    kinds: frozenset[str] | set[str] = frozenset(),
    roles: frozenset[str] = frozenset(),
) -> Move:
    src = frozenset(sources) if isinstance(sources, set) else frozenset({sources})
    return Move(src, target, frozenset(kinds), roles)


TRANSITIONS: dict[str, Move] = {
    "analysis_started": _move(S.RECEIVED, S.ANALYZING, kinds={"system"}),
    "recommendation_stored": _move(S.ANALYZING, S.PENDING_REVIEW, kinds={"system"}),
    "analysis_failed": _move(S.ANALYZING, S.AI_FAILED, kinds={"system"}),
    "analysis_retried": _move(S.AI_FAILED, S.ANALYZING, kinds={"system"}, roles=DECIDERS | ADMINS),
    "claimed": _move({S.PENDING_REVIEW, S.AI_FAILED}, S.IN_REVIEW, roles=DECIDERS),
    "assigned": _move({S.PENDING_REVIEW, S.AI_FAILED, S.IN_REVIEW}, S.IN_REVIEW, roles=ASSIGNERS),
    "released": _move(S.IN_REVIEW, _back_to_inbox, kinds={"system"}, roles=DECIDERS | ADMINS),
    "approved": _move(S.IN_REVIEW, S.APPROVED, roles=DECIDERS),
    "first_approval": _move(S.IN_REVIEW, S.AWAITING_SECOND_APPROVAL, roles=DECIDERS),
    "second_approval": _move(S.AWAITING_SECOND_APPROVAL, S.APPROVED, roles=SENIORS),
    # the approver takes an approval back within its undo window, before its execution started
    "approval_undone": _move(S.APPROVED, S.IN_REVIEW, roles=DECIDERS),
    "rejected": _move({S.IN_REVIEW, S.AWAITING_SECOND_APPROVAL}, S.REJECTED, roles=DECIDERS),
    "info_requested": _move(S.IN_REVIEW, S.NEEDS_INFO, roles=DECIDERS),
    "info_received": _move(S.NEEDS_INFO, S.ANALYZING, kinds={"client"}),
    "escalated": _move({S.PENDING_REVIEW, S.AI_FAILED, S.IN_REVIEW}, _back_to_inbox, kinds={"system"}, roles=DECIDERS),
    "execution_started": _move(S.APPROVED, S.EXECUTING, kinds={"system"}),
    "executed": _move(S.EXECUTING, S.EXECUTED, kinds={"system"}),
    "execution_failed": _move(S.EXECUTING, S.EXECUTION_FAILED, kinds={"system"}),
    "execution_retried": _move(S.EXECUTION_FAILED, S.EXECUTING, roles=ADMINS),
    "withdrawn": _move(set(BEFORE_APPROVAL), S.WITHDRAWN, kinds={"client"}),
    "responded": _move(S.IN_REVIEW, S.RESPONDED, roles=DECIDERS),
    "expired": _move(set(EXPIRABLE), S.EXPIRED, kinds={"system"}),
}


# Each move is audited as case.<event>: a move without its AuditAction fails here, at import.
ACTIONS: dict[str, AuditAction] = {event: AuditAction(f"case.{event}") for event in TRANSITIONS}

MoveListener = Callable[[Case], None]
_listeners: list[MoveListener] = []


def on_move(listener: MoveListener) -> MoveListener:
    """Call ``listener(case)`` on every move, after the new status is set and before it is flushed."""
    if listener not in _listeners:
        _listeners.append(listener)
    return listener


class IllegalTransition(Conflict):
    """The move is not allowed from the case's current status."""

    slug = "illegal-transition"


class ActorNotAllowed(Forbidden):
    """The actor may not make this move."""


class StaleVersion(Stale):
    """The case changed since it was read."""


def _check_actor(event: str, move: Move, actor: Actor) -> None:
    permitted = actor.kind in move.kinds or (actor.kind == "user" and actor.role in move.roles)
    if not permitted:
        who = f"a user with role {actor.role!r}" if actor.kind == "user" else f"the {actor.kind} actor"
        raise ActorNotAllowed(f"{who} may not make the move {event!r}")


def transition(
    session: Session,
    case: Case,
    event: str,
    actor: Actor,
    *,
    expected_version: int | None = None,
    data: dict[str, Any] | None = None,
) -> Status:
    """Apply ``event`` to ``case``, audit it, and return the new status."""
    move = TRANSITIONS.get(event)
    if move is None:
        raise IllegalTransition(f"unknown event {event!r}")
    current = Status(case.status)
    if current not in move.sources:
        allowed = ", ".join(sorted(s.value for s in move.sources))
        raise IllegalTransition(f"cannot apply {event!r} to a case in {current.value!r} (allowed from: {allowed})")
    _check_actor(event, move, actor)
    if expected_version is not None and expected_version != case.version:
        raise StaleVersion(f"case {case.id} is at version {case.version}, not {expected_version}: reload it")
    target = move.target_for(case)
    case_id = case.id
    case.status = target.value
    case.updated_at = utcnow()  # also makes same-status moves (reassignment) an UPDATE that bumps version
    for listener in _listeners:
        listener(case)
    try:
        session.flush()  # the versioned UPDATE matches only the version read
    except StaleDataError as exc:
        raise StaleVersion(f"case {case_id} was changed by someone else meanwhile: reload it") from exc
    chain.record(
        session,
        ACTIONS[event],
        actor,
        case_id=case.id,
        data={"from": current.value, "to": target.value, "version": case.version, **(data or {})},
    )
    return target
