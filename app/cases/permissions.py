"""Who may do what: the roles, and the one answer to "may this user do X to this case".

Views, the reviewer API, services and jobs all ask here; no other module keeps a role list.
A case a user may not see is "not found" for them (its existence is not revealed); a case
they see but their role may not act on is "forbidden".
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.cases.models import Case, Queue
from app.errors import Forbidden, NotFound

if TYPE_CHECKING:
    from app.users import User


class Role(enum.StrEnum):
    REVIEWER = "reviewer"
    SENIOR_REVIEWER = "senior_reviewer"
    ADMIN = "admin"
    AUDITOR = "auditor"


EVERYONE = frozenset(Role)
DECIDERS = frozenset({Role.REVIEWER, Role.SENIOR_REVIEWER})  # admins never decide cases; auditors only read
SENIORS = frozenset({Role.SENIOR_REVIEWER})
ADMINS = frozenset({Role.ADMIN})
ASSIGNERS = SENIORS | ADMINS
SEE_ALL = frozenset({Role.ADMIN, Role.AUDITOR})  # every queue, without being a member
OVERSEERS = SEE_ALL  # read the admin pages (rules, executions)
AUDITORS = frozenset({Role.AUDITOR})

INTENT_ROLES: dict[str, frozenset[Role]] = {
    "view": EVERYONE,
    "claim": DECIDERS,
    "decide": DECIDERS,
    "assign": ASSIGNERS,
    "release": DECIDERS | ADMINS,  # hand back a claim: one's own, or (below) another's
    "release_others": ASSIGNERS,
    "retry_analysis": DECIDERS | ADMINS,
    "retry_execution": ADMINS,
    "oversee": OVERSEERS,
    "audit": SEE_ALL,  # the audit page, decision-log exports, evidence packages
    "administer": ADMINS,
    "view_controls": ADMINS | AUDITORS | SENIORS,  # the kill switch's page: what is paused, and its history
    "control": ADMINS,  # pause and resume AI analysis or executions
    "dashboards": ADMINS | AUDITORS | SENIORS,  # senior reviewers: the numbers of the queues they see
    "view_quality": ADMINS | AUDITORS | SENIORS,  # the calibration page and the QA samples (of the queues one sees)
    "qa_verdict": SENIORS,  # a QA verdict on a sampled approval of a queue one sees
}
INTENTS = tuple(INTENT_ROLES)
# A queue's required_role narrows who may claim and decide its cases.
QUEUE_BOUND_INTENTS = frozenset({"claim", "decide"})
QUEUE_DECIDERS: dict[str, frozenset[Role]] = {Role.REVIEWER.value: DECIDERS, Role.SENIOR_REVIEWER.value: SENIORS}
REFUSALS = {
    "release": "release claims",
    "release_others": "release another reviewer's claim",
    "retry_analysis": "retry an analysis",
    "retry_execution": "retry a failed execution or mark it handled",
    "oversee": "see the oversight pages",
    "audit": "read or export the audit log",
    "administer": "change the configuration",
    "view_controls": "see the kill switch",
    "control": "pause or resume AI analysis or executions",
    "dashboards": "see the dashboards",
    "view_quality": "see the calibration and QA pages",
    "qa_verdict": "give QA verdicts",
}


def can(user: User, intent: str) -> bool:
    """Whether the user's role allows ``intent`` at all (on a case they see)."""
    if intent not in INTENT_ROLES:
        raise ValueError(f"unknown intent {intent!r}; one of {', '.join(INTENTS)}")
    return user.role in INTENT_ROLES[intent]


def require(user: User, intent: str) -> None:
    if not can(user, intent):
        raise Forbidden(f"a user with role {user.role} may not {REFUSALS.get(intent, intent + ' cases')}")


def can_in(user: User, intent: str, queue: Queue | None) -> bool:
    """`can`, and for claiming and deciding, the role the case's queue requires."""
    if not can(user, intent):
        return False
    required = queue.required_role if queue is not None else None
    return intent not in QUEUE_BOUND_INTENTS or user.role in QUEUE_DECIDERS[required or Role.REVIEWER]


def require_in(user: User, intent: str, queue: Queue | None) -> None:
    require(user, intent)
    if not can_in(user, intent, queue):
        raise Forbidden(f"queue {queue.name!r} requires the role {queue.required_role} to {intent} its cases",
                        slug="queue-role-required")


def visible_queues(session: Session, user: User) -> list[Queue]:
    """Reviewers: the queues they work or lead; senior reviewers also those queues' escalation
    targets; admins and auditors: every queue."""
    if user.role in SEE_ALL:
        return list(session.scalars(select(Queue).order_by(Queue.name)))
    own = {q.id: q for q in [*user.queues, *session.scalars(select(Queue).where(Queue.lead_id == user.id))]}
    if user.role in SENIORS:
        own.update({q.escalation_target.id: q.escalation_target for q in list(own.values()) if q.escalation_target})
    return sorted(own.values(), key=lambda q: q.name)


def queue_for(session: Session, user: User, key: int | str) -> Queue:
    """A queue the user may see, by id or by name (NotFound otherwise)."""
    found = next((q for q in visible_queues(session, user) if key in (q.id, q.name)), None)
    if found is None:
        raise NotFound(f"no queue {key!r} among your queues")
    return found


def sees(session: Session, user: User, case: Case) -> bool:
    return user.role in SEE_ALL or any(q.id == case.queue_id for q in visible_queues(session, user))


def get_case_for(session: Session, user: User, case_id: int, intent: str) -> Case:
    """The one place that loads a case for a user: NotFound when they may not even know it
    exists, Forbidden when they see it but their role may not do ``intent``."""
    can(user, intent)  # an unknown intent is a programming error, whoever asks
    case = session.get(Case, case_id)
    if case is None or not sees(session, user, case):
        raise NotFound(f"case {case_id} not found")
    require_in(user, intent, case.queue)
    return case


def may_open(session: Session, user: User) -> Callable[[int], bool]:
    """``case_id → bool``: whether ``user`` may open another case (a precedent, a link)."""

    def visible(case_id: int) -> bool:
        try:
            get_case_for(session, user, case_id, "view")
        except (NotFound, Forbidden):
            return False
        return True

    return visible
