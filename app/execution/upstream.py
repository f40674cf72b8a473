"""Telling the upstream system about decisions that are not approvals: signed ``case.decided``
(rejections and escalations) and ``case.needs_info`` (with the reviewer's question)
notifications, retried on the executions' schedule. They never change the case and are
recorded as audit events only (``upstream.notified`` / ``upstream.notify_failed``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.actors import Actor
from app.audit import chain
from app.audit.models import AuditEvent
from app.cases.models import Case, Decision
from app.execution import services
from app.execution.delivery import NO_CALLBACK_URL, Sender, notice_document
from app.intake.models import ApiClient
from app.webhooks import DeliveryResult

NOTIFIER = Actor.system("notifier")
# event type → the decision kinds it reports
NOTIFY_EVENTS = {"case.decided": frozenset({"reject", "escalate"}), "case.needs_info": frozenset({"request_info"})}


# --- notifications ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class UpstreamNotice:
    """One notification attempt, read from the database: usable with no session open."""

    case_id: int
    event_type: str
    decision_id: int
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


def prepare_notification(session: Session, case_id: int, event_type: str, decision_id: int,
                         attempt: int) -> UpstreamNotice | None:
    """The notification to send, or None when it was delivered already."""
    decision = session.get(Decision, decision_id)
    if decision is None or decision.case_id != case_id or decision.kind not in NOTIFY_EVENTS.get(event_type, ()):
        raise ValueError(f"no {event_type!r} notification for decision {decision_id} of case {case_id}")
    msg_id = f"notify_{case_id}_{decision_id}"
    if _notified(session, case_id, msg_id):
        return None
    case = session.get_one(Case, case_id)
    document = notice_document(event_type, case, decision, msg_id, attempt).model_dump(mode="json")
    client = case.client
    session.expunge(client)
    return UpstreamNotice(case_id, event_type, decision_id, attempt, msg_id, client, case.callback_url, document,
                        decision.created_at)


def _notified(session: Session, case_id: int, msg_id: str) -> bool:
    sent = session.scalars(select(AuditEvent.data).where(AuditEvent.case_id == case_id,
                                                         AuditEvent.action == "upstream.notified"))
    return any(data.get("webhook_id") == msg_id for data in sent)


def record_notification(session: Session, note: UpstreamNotice, result: DeliveryResult) -> services.Outcome:
    """Audit how the attempt went (flushed); the caller commits, then schedules a retry."""
    data = {"event_type": note.event_type, "decision_id": note.decision_id, "webhook_id": note.msg_id,
            "attempt": note.attempt, "status_code": result.status_code, "error": result.error}
    if result.outcome == "delivered":
        chain.record(session, "upstream.notified", NOTIFIER, case_id=note.case_id,
                     data={**data, "delivered": result.note or "callback", "url": note.url})
        return services.outcome_of(result, None)
    retry_at = (services.next_attempt_time(note.attempt, note.decided_at, services.clock())
                if result.outcome == "retry" else None)
    chain.record(session, "upstream.notify_failed", NOTIFIER, case_id=note.case_id,
                 data={**data, "next_attempt_at": retry_at, "gave_up": retry_at is None})
    return services.outcome_of(result, retry_at)
