"""Telling the upstream system about decisions that are not approvals: signed ``case.decided``
(rejections and escalations) and ``case.needs_info`` (with the reviewer's question)
notifications, retried on the executions' schedule. They never change the case.

The ``upstream_notices`` table is their outbox: `open_notice` writes the row in the transaction
of the decision; each attempt claims it (`prepare_notification`), the job delivers it, and
`record_notification` records the outcome there (delivered, failed for good, or pending again
at ``next_attempt_at``). `due_notices` is what the periodic sweep enqueues again, should Redis
lose a job. Every outcome is also audited (``upstream.notified`` / ``upstream.notify_failed``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.actors import Actor
from app.audit import chain
from app.audit.actions import AuditAction
from app.cases.models import Case, Decision
from app.execution import services
from app.execution.delivery import NO_CALLBACK_URL, Sender, notice_document
from app.execution.models import NoticeStatus, UpstreamNotice
from app.intake.models import ApiClient
from app.webhooks import DeliveryResult

NOTIFIER = Actor.system("notifier")
# event type → the decision kinds it reports
NOTIFY_EVENTS = {"case.decided": frozenset({"reject", "escalate", "respond"}),
                 "case.needs_info": frozenset({"request_info"})}
EXPIRED = "case.expired"  # the one notice that no decision causes: the case ran out of time
SWEEP_BATCH = 500


def webhook_id(case_id: int, decision_id: int | None) -> str:
    """The idempotency key of a decision's notification (or of the case's expiry): the same on every attempt."""
    return f"notify_{case_id}_{decision_id}" if decision_id is not None else f"notify_{case_id}_expired"


def open_notice(session: Session, case_id: int, event_type: str, decision_id: int | None, *,
                made: int = 0) -> UpstreamNotice:
    """The outbox row of a decision's notification (flushed), due at once; the caller enqueues
    its job once the transaction commits. ``made``: attempts made before the row existed."""
    notice = UpstreamNotice(case_id=case_id, decision_id=decision_id, event_type=event_type,
                            webhook_id=webhook_id(case_id, decision_id), status=NoticeStatus.PENDING.value,
                            attempts=made, next_attempt_at=services.clock())
    session.add(notice)
    session.flush()
    return notice


# --- one attempt ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PreparedNotice:
    """One claimed notification attempt, read from the database: usable with no session open."""

    notice_id: int
    case_id: int
    event_type: str
    decision_id: int | None
    attempt: int
    msg_id: str
    client: ApiClient  # detached
    url: str | None
    document: dict[str, Any]
    decided_at: datetime  # the start of the retry schedule

    def send(self, sender: Sender) -> DeliveryResult:
        if not self.url:
            return DeliveryResult("delivered", note=NO_CALLBACK_URL)
        return sender.send(self.client, self.url, self.msg_id, self.document)


def prepare_notification(session: Session, case_id: int, event_type: str, decision_id: int | None,
                         attempt: int) -> PreparedNotice | None:
    """Claim attempt number ``attempt`` of the notification (flushed; the caller commits) and
    return what to send; None when there is nothing to send: delivered already, failed for good,
    or that attempt was made (or claimed) already."""
    decision = session.get(Decision, decision_id) if decision_id is not None else None
    if (event_type, decision) != (EXPIRED, None) and (
            decision is None or decision.case_id != case_id or decision.kind not in NOTIFY_EVENTS.get(event_type, ())):
        raise ValueError(f"no {event_type!r} notification for decision {decision_id} of case {case_id}")
    notice = _notice(session, case_id, event_type, decision_id, attempt)
    if notice.status != NoticeStatus.PENDING or not _claim(session, notice, attempt):
        return None
    case = session.get_one(Case, case_id)
    document = notice_document(event_type, case, decision, notice.webhook_id, attempt).model_dump(mode="json")
    client = case.client
    session.expunge(client)
    return PreparedNotice(notice.id, case_id, event_type, decision_id, attempt, notice.webhook_id, client,
                          case.callback_url, document, decision.created_at if decision else notice.created_at)


def _notice(session: Session, case_id: int, event_type: str, decision_id: int | None,
            attempt: int) -> UpstreamNotice:
    """The decision's outbox row; opened here for a job enqueued without one (before the outbox
    existed), the attempts before this one counted as made."""
    notice = session.scalar(select(UpstreamNotice).where(UpstreamNotice.webhook_id == webhook_id(case_id, decision_id)))
    return notice or open_notice(session, case_id, event_type, decision_id, made=attempt - 1)


def _claim(session: Session, notice: UpstreamNotice, attempt: int) -> bool:
    """Attempt ``attempt`` only follows attempt ``attempt - 1``, and only one run makes it; its
    lease (like an execution's) lets the sweep hand it to another run if this worker dies."""
    now = services.clock()
    lease = services.attempt_lease()
    claimed = session.execute(
        update(UpstreamNotice)
        .where(UpstreamNotice.id == notice.id, UpstreamNotice.attempts == attempt - 1,
               UpstreamNotice.status == NoticeStatus.PENDING.value)
        .values(attempts=attempt, next_attempt_at=now + lease)
        .execution_options(synchronize_session=False)
    ).rowcount == 1
    session.expire(notice)
    return claimed


def record_notification(session: Session, note: PreparedNotice, result: DeliveryResult) -> services.Outcome:
    """Record how the attempt went in the outbox and the audit trail (flushed); the caller
    commits, then schedules a retry."""
    now = services.clock()
    data = {"event_type": note.event_type, "decision_id": note.decision_id, "webhook_id": note.msg_id,
            "attempt": note.attempt, "status_code": result.status_code, "error": result.error}
    if result.outcome == "delivered":
        _settle(session, note, status=NoticeStatus.DELIVERED.value, next_attempt_at=None, last_error=None,
                delivered_at=now)
        chain.record(session, AuditAction.UPSTREAM_NOTIFIED, NOTIFIER, case_id=note.case_id,
                     data={**data, "delivered": result.note or "callback", "url": note.url})
        return services.outcome_of(result, None)
    retry_at = (services.next_attempt_time(note.attempt, note.decided_at, now, result.retry_after)
                if result.outcome == "retry" else None)
    status = NoticeStatus.PENDING if retry_at is not None else NoticeStatus.FAILED
    _settle(session, note, status=status.value, next_attempt_at=retry_at, last_error=result.error)
    chain.record(session, AuditAction.UPSTREAM_NOTIFY_FAILED, NOTIFIER, case_id=note.case_id,
                 data={**data, "next_attempt_at": retry_at, "gave_up": retry_at is None})
    return services.outcome_of(result, retry_at)


def _settle(session: Session, note: PreparedNotice, **values: Any) -> None:
    session.execute(update(UpstreamNotice)
                    .where(UpstreamNotice.id == note.notice_id, UpstreamNotice.attempts == note.attempt)
                    .values(**values).execution_options(synchronize_session=False))


# --- what to enqueue again ----------------------------------------------------------------------------


def due_notices(session: Session, now: datetime | None = None) -> list[tuple[int, str, int | None, int]]:
    """(case id, event type, decision id, next attempt) of the pending notices that are due: their
    job was lost with Redis, or their worker died mid-attempt (its lease ran out)."""
    now = now or services.clock()
    rows = session.execute(
        select(UpstreamNotice.case_id, UpstreamNotice.event_type, UpstreamNotice.decision_id, UpstreamNotice.attempts)
        .where(UpstreamNotice.status == NoticeStatus.PENDING.value, UpstreamNotice.next_attempt_at <= now)
        .order_by(UpstreamNotice.next_attempt_at, UpstreamNotice.id).limit(SWEEP_BATCH))
    return [(case_id, event_type, decision_id, attempts + 1) for case_id, event_type, decision_id, attempts in rows]
