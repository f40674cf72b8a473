"""QA sampling: approved decisions drawn for a senior reviewer's second look, after the fact.

A decision that approves a case (an ``approve`` or ``edit`` needing no second approval, or a
``second_approval``) is drawn when the hash of its id falls below its queue's ``qa_share``
(deterministic per decision, uniform over decisions), and always when an approver of the case
is flagged ``qa_all``. The draw is stored and audited (``qa.sampled``) with the decision.

A senior reviewer who sees the queue, and took no part in the approval, records a verdict:
``agree``, or ``disagree`` with a reason (``qa.agreed`` / ``qa.disagreed``). A verdict never
changes the case or its executed action: a disagreement notifies the queue's lead (or, without
one, every admin) to follow it up, and the audited event is the record of it.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from app.actors import Actor
from app.audit import chain
from app.audit.actions import AuditAction
from app.cases import policy
from app.cases.models import Case, Decision, Queue, UndoneApproval
from app.cases.permissions import Role, can, require, sees, visible_queues
from app.cases.policy import FIRST_APPROVALS
from app.db import utcnow
from app.errors import Conflict, Forbidden, Invalid, NotFound
from app.notifications.services import notify
from app.oversight.models import QaReview
from app.users import User

Verdict = Literal["agree", "disagree"]
VERDICTS: tuple[str, ...] = ("agree", "disagree")
MAX_REASON_LENGTH = 5000
SAMPLER = Actor.system("qa-sampling")
_SCALE = 2**64


def drawn(decision_id: int, share: float) -> bool:
    """Whether the decision falls in a sample of ``share`` (0..1): the first 64 bits of a hash of
    its id, read as a fraction of 2**64, below the share. The same decision always gets the same
    answer; over many decisions the fraction drawn is ``share``."""
    digest = hashlib.sha256(f"countersign-qa:{decision_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < share * _SCALE


def approvers(session: Session, decision: Decision) -> list[User]:
    """Who approved: the decision's reviewer, and for a second approval the first approver too."""
    people = [decision.reviewer]
    if decision.kind == "second_approval":
        first = session.scalar(select(Decision).where(
            Decision.case_id == decision.case_id, Decision.kind.in_(FIRST_APPROVALS), Decision.id < decision.id)
            .order_by(Decision.id.desc()).limit(1))
        if first is not None:
            people.append(first.reviewer)
    return people


def sample_approval(session: Session, case: Case, decision: Decision) -> QaReview | None:
    """Draw the decision that just approved ``case`` for QA, or not; flushed with its audit event."""
    queue = case.queue
    reasons = []
    if queue is not None and drawn(decision.id, queue.qa_share):
        reasons.append("share")
    flagged = sorted(person.email for person in approvers(session, decision) if person.qa_all)
    if flagged:
        reasons.append("reviewer")
    if not reasons or queue is None:
        return None
    review = QaReview(case_id=case.id, decision_id=decision.id, queue_id=queue.id, reasons=reasons)
    session.add(review)
    session.flush()
    chain.record(session, AuditAction.QA_SAMPLED, SAMPLER, case_id=case.id, data={
        "qa_review_id": review.id, "decision_id": decision.id, "queue": queue.name, "reasons": reasons,
        "qa_share": queue.qa_share, "flagged_reviewers": flagged})
    return review


# --- the QA list and verdicts -------------------------------------------------------------------------


def reviews_for(session: Session, user: User, *, judged: bool, limit: int | None = None) -> list[QaReview]:
    """The samples awaiting a verdict (or, ``judged``, given one) of the queues the user sees (seniors:
    their queues; admins, auditors: all), newest first."""
    require(user, "view_quality")
    queue_ids = [q.id for q in visible_queues(session, user)]
    stmt = (select(QaReview).where(QaReview.queue_id.in_(queue_ids), policy.standing(QaReview.decision_id))
            .options(selectinload(QaReview.case), selectinload(QaReview.decision).selectinload(Decision.reviewer),
                     selectinload(QaReview.queue), selectinload(QaReview.verdict_by))
            .where(QaReview.verdict.is_not(None) if judged else QaReview.verdict.is_(None))
            .order_by(QaReview.id.desc()).limit(limit))
    return list(session.scalars(stmt))


def judgeable(session: Session, user: User, reviews: list[QaReview]) -> set[int]:
    """The ids of the ``reviews`` the user may give a verdict on (their queues read once)."""
    if not can(user, "qa_verdict"):
        return set()
    mine = {q.id for q in visible_queues(session, user)}
    return {r.id for r in reviews if r.queue_id in mine and not _approved_by(session, user, r)}


def sample_for_verdict(session: Session, user: User, review_id: int) -> QaReview:
    """The sample ``user`` may give a verdict on: NotFound when they do not see it, Forbidden when
    they may not judge it (not a senior reviewer of its queue, or one of its approvers)."""
    review = session.get(QaReview, review_id)
    if review is None or not sees(session, user, review.case):
        raise NotFound(f"no QA sample {review_id}")
    _check_verdict_giver(session, user, review)
    if session.get(UndoneApproval, review.decision_id) is not None:
        raise Conflict(f"QA sample {review.id}: its approval was undone and never executed; there is "
                       "nothing to review", slug="approval-undone")
    return review


def record_verdict(session: Session, user: User, review_id: int, verdict: str, reason: str | None) -> QaReview:
    """A senior reviewer's verdict on a sample; flushed with ``qa.agreed`` or ``qa.disagreed``.
    A disagreement notifies the queue lead (every admin when the queue has none)."""
    review = sample_for_verdict(session, user, review_id)
    reason = (reason or "").strip() or None
    _check_verdict(verdict, reason)
    taken = session.execute(
        update(QaReview).where(QaReview.id == review.id, QaReview.verdict.is_(None))
        .values(verdict=verdict, verdict_reason=reason, verdict_by_id=user.id, verdict_at=utcnow())
        .execution_options(synchronize_session=False))
    if taken.rowcount != 1:
        raise Conflict(f"QA sample {review.id} already has a verdict", slug="already-reviewed")
    session.refresh(review)
    action = AuditAction.QA_AGREED if verdict == "agree" else AuditAction.QA_DISAGREED
    chain.record(session, action, Actor.user(user), case_id=review.case_id, data={
        "qa_review_id": review.id, "decision_id": review.decision_id, "verdict": verdict, "reason": reason})
    if verdict == "disagree":
        _follow_up(session, user, review, reason or "")
    return review


def _check_verdict_giver(session: Session, user: User, review: QaReview) -> None:
    require(user, "qa_verdict")
    if not any(q.id == review.queue_id for q in visible_queues(session, user)):
        raise Forbidden(f"only a senior reviewer of queue {review.queue.name} may review its QA samples")
    if _approved_by(session, user, review):
        raise Forbidden("you approved this case: another senior reviewer gives its QA verdict")


def _approved_by(session: Session, user: User, review: QaReview) -> bool:
    return any(person.id == user.id for person in approvers(session, review.decision))


def _check_verdict(verdict: str, reason: str | None) -> None:
    if verdict not in VERDICTS:
        raise Invalid("choose agree or disagree", {"verdict": "agree or disagree"})
    if verdict == "disagree" and not reason:
        raise Invalid("say why you disagree", {"reason": "required when you disagree"})
    if reason is not None and len(reason) > MAX_REASON_LENGTH:
        raise Invalid(f"the reason is longer than {MAX_REASON_LENGTH} characters",
                      {"reason": f"at most {MAX_REASON_LENGTH} characters"})


def _follow_up(session: Session, user: User, review: QaReview, reason: str) -> None:
    queue: Queue = review.queue
    recipients = [queue.lead] if queue.lead is not None else list(
        session.scalars(select(User).where(User.role == Role.ADMIN, User.active.is_(True))))
    notify(session, [person for person in recipients if person is not None and person.id != user.id],
           "qa_disagreement", review.case,
           f"{user.name} disagrees with the approval of case {review.case_id} (QA): {reason}")
