"""The rest of the conversation with the upstream system.

Outbound: signed notifications of decisions that are not approvals (``case.decided`` for
rejections and escalations, ``case.needs_info`` with the reviewer's question), retried on the
executions' schedule; they never change the case and are recorded as audit events only
(``upstream.notified`` / ``upstream.notify_failed``).

Inbound: the answer to a request for information (``POST /api/v1/cases/<id>/info``): merged
into the case's data, validated against its type, and the case goes back to analysis.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.actors import Actor
from app.audit import chain
from app.audit.models import AuditEvent
from app.cases import lifecycle
from app.cases.models import Case, Decision, Status
from app.cases.types import get_case_type
from app.db import utcnow
from app.errors import Problem, validation_problem
from app.escalation.sla import resume_sla
from app.execution import services
from app.execution.delivery import NO_CALLBACK_URL, DeliveryResult, Sender, case_summary
from app.intake.models import ApiClient, WebhookReceipt
from app.intake.services import IntakeResult, _replay
from app.jobs import enqueue_once

NOTIFIER = Actor.system("notifier")
NOTIFY_JOB = "app.execution.jobs.notify_upstream"
# event type → the decision kinds it reports
NOTIFY_EVENTS = {"case.decided": frozenset({"reject", "escalate"}), "case.needs_info": frozenset({"request_info"})}
MAX_NOTE_LENGTH = 5000


# --- notifications ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Notification:
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


def enqueue_notification(case_id: int, event_type: str, decision_id: int) -> bool:
    """Tell the upstream system about a decision (call after commit): ``case.decided`` for a
    rejection or an escalation, ``case.needs_info`` for a request for information."""
    return enqueue_once(services.QUEUE, NOTIFY_JOB, _job_id(decision_id, 1), case_id, event_type, decision_id)


def _job_id(decision_id: int, attempt: int) -> str:
    return f"notify-{decision_id}-{attempt}"


def prepare_notification(session: Session, case_id: int, event_type: str, decision_id: int,
                         attempt: int) -> Notification | None:
    """The notification to send, or None when it was delivered already."""
    decision = session.get(Decision, decision_id)
    if decision is None or decision.case_id != case_id or decision.kind not in NOTIFY_EVENTS.get(event_type, ()):
        raise ValueError(f"no {event_type!r} notification for decision {decision_id} of case {case_id}")
    msg_id = f"notify_{case_id}_{decision_id}"
    if _notified(session, case_id, msg_id):
        return None
    case = session.get_one(Case, case_id)
    document = {
        "type": event_type,
        "case": {**case_summary(case), "status": case.status},
        "decision": {"kind": decision.kind, "reason_code": decision.reason_code, "reason": decision.reason,
                     "decided_at": decision.created_at.isoformat(), "decided_by": decision.reviewer.email},
        "notification": {"idempotency_key": msg_id, "attempt": attempt},
    }
    if event_type == "case.needs_info":
        document["question"] = decision.reason
    client = case.client
    session.expunge(client)
    return Notification(case_id, event_type, decision_id, attempt, msg_id, client, case.callback_url, document,
                        decision.created_at)


def _notified(session: Session, case_id: int, msg_id: str) -> bool:
    sent = session.scalars(select(AuditEvent.data).where(AuditEvent.case_id == case_id,
                                                         AuditEvent.action == "upstream.notified"))
    return any(data.get("webhook_id") == msg_id for data in sent)


def record_notification(session: Session, note: Notification, result: DeliveryResult) -> services.Outcome:
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


def schedule_notification(note: Notification, at: datetime) -> bool:
    number = note.attempt + 1
    return services.schedule_job(_job_id(note.decision_id, number), at, NOTIFY_JOB, note.case_id, note.event_type,
                                 note.decision_id, number)


# --- the answer to a request for information ------------------------------------------------------------


class InfoAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: dict[str, Any]  # top-level fields of the case's data to replace or add
    note: str | None = Field(default=None, max_length=MAX_NOTE_LENGTH)


def answer_info_request(session: Session, client: ApiClient, case_id: int, webhook_id: str, raw_body: bytes, *,
                        case_url: str) -> IntakeResult:
    """Merge the upstream system's answer into a needs_info case and send the case back to
    analysis (flushed; the caller commits, then enqueues the analysis). Idempotent on
    ``webhook_id``; a concurrent twin fails on the receipt's unique key and, tried again, replays."""
    body_hash = hashlib.sha256(raw_body).hexdigest()
    replay = _replay(session, client, webhook_id, body_hash)
    if replay:
        return replay
    case = session.get(Case, case_id)
    if case is None or case.client_id != client.id:  # another client's case does not exist for you
        raise Problem(404, "case-not-found", "Case not found", f"no case {case_id} for this client")
    if case.status != Status.NEEDS_INFO:
        raise Problem(409, "case-not-waiting-for-info", "The case is not waiting for information",
                      f"case {case_id} is {case.status}; answers are accepted while it is needs_info")
    answer, data = _merged(case, raw_body)
    body = {"id": case.id, "status": Status.ANALYZING.value, "url": case_url}
    session.add(WebhookReceipt(client_id=client.id, webhook_id=webhook_id, body_hash=body_hash, case_id=case.id,
                               response_status=202, response_body=body))
    session.flush()  # before the case changes: one move, one version
    now = utcnow()
    paused = now - case.sla_paused_at if case.sla_paused_at else timedelta(0)
    amount = get_case_type(case.domain, case.case_type).amount(data)
    case.payload = data.model_dump(mode="json")
    case.amount, case.currency = amount or (None, None)
    resume_sla(case, now)  # in the queue's business time
    try:
        lifecycle.transition(session, case, "info_received", Actor.client(client), data={
            "webhook_id": webhook_id, "body_sha256": body_hash, "fields": sorted(answer.data), "note": answer.note,
            "sla_paused_seconds": int(paused.total_seconds())})
    except lifecycle.StaleVersion as exc:
        raise Problem(409, "case-changed", "The case changed meanwhile", str(exc)) from None
    return IntakeResult(case.id, case.version, body, created=True)


def _merged(case: Case, raw_body: bytes) -> tuple[InfoAnswer, BaseModel]:
    """The answer, and the case's data with the answer's top-level fields merged in, validated
    against the case type: every invalid field at once, as a 422."""
    try:
        document = json.loads(raw_body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Problem(400, "malformed-json", "Malformed JSON", f"the body is not valid JSON: {exc}") from None
    errors: list[dict[str, Any]] = []
    answer = data = None
    try:
        answer = InfoAnswer.model_validate(document)
    except ValidationError as exc:
        errors += validation_problem(exc).errors or []
    if isinstance(document, dict) and isinstance(document.get("data"), dict):
        try:
            data = get_case_type(case.domain, case.case_type).validate_data({**case.payload, **document["data"]})
        except ValidationError as exc:
            errors += validation_problem(exc, prefix=("data",)).errors or []
    if errors or answer is None or data is None:
        raise Problem(422, "validation-error", "The answer is invalid",
                      f"{len(errors)} invalid field(s) in the answer or in the case's data with it merged in", errors)
    return answer, data
