"""Talking to the upstream system: signing with the client's secret and delivering approved actions.

Every delivery is signed per Standard Webhooks with the client's newest active secret, goes
only to a URL the client's callback allow-list accepts (checked again right before sending),
and is sent by `app.webhooks.post` (no redirects followed). The documents sent are declared
in `app.execution.schemas`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app import webhooks
from app.cases.models import Case, Decision, Execution
from app.cases.schemas import CaseRef, DecisionBrief, DecisionNotice
from app.db import canonical_json
from app.execution.schemas import (
    ApprovedAction,
    ApprovedCallback,
    CaseWithStatus,
    DecidedNotice,
    DeliveryAttempt,
    ExpiredNotice,
    NeedsInfoNotice,
)
from app.intake.models import ApiClient
from app.webhooks import DeliveryResult

NO_CALLBACK_URL = "no callback_url"


@dataclass(frozen=True)
class Sender:
    """Signs and sends documents to a client's callback URLs."""

    timeout: float
    policy: webhooks.CallbackPolicy

    def send(self, client: ApiClient, url: str, msg_id: str, document: dict[str, Any]) -> DeliveryResult:
        """``msg_id`` is the ``webhook-id``: the receiver's idempotency key, the same on every retry."""
        problem = self.policy.problem(url, client.callback_hosts)
        if problem:
            return DeliveryResult("failed", error=f"refused before sending: {problem}")
        secrets = client.active_secrets()
        if not secrets:
            return DeliveryResult("failed", error="refused before sending: the client has no active signing secret")
        body = canonical_json(document).encode()
        return webhooks.post_callback(url, body, webhooks.headers(secrets[0], msg_id, body), self.timeout,
                                      self.policy.insecure_hosts)


def callback_document(case: Case, decision: Decision, execution: Execution,
                      approved_by: Sequence[str]) -> ApprovedCallback:
    return ApprovedCallback(
        case=CaseRef.model_validate(case),
        action=ApprovedAction(name=decision.action, parameters=decision.parameters),
        decision=DecisionBrief.model_validate(decision),
        approved_by=list(approved_by),
        execution=DeliveryAttempt(idempotency_key=execution.idempotency_key, attempt=execution.attempts),
    )


def notice_document(event_type: str, case: Case, decision: Decision | None, msg_id: str,
                    attempt: int) -> DecidedNotice | ExpiredNotice:
    """The ``case.decided`` or ``case.needs_info`` notification of a decision (the latter with the
    question; a respond decision's with the answer), or the ``case.expired`` one of the case."""
    notification = DeliveryAttempt(idempotency_key=msg_id, attempt=attempt)
    if decision is None:
        return ExpiredNotice(case=CaseWithStatus.model_validate(case), expires_at=case.expires_at,
                             notification=notification)
    fields: dict[str, Any] = {
        "case": CaseWithStatus.model_validate(case),
        "decision": DecisionNotice.model_validate(decision),
        "notification": notification,
    }
    if event_type == "case.needs_info":
        return NeedsInfoNotice(**fields, question=decision.reason)
    if decision.kind == "respond":
        return DecidedNotice(**fields, answer=decision.reason)
    return DecidedNotice(**fields)


def deliver_approval(sender: Sender, case: Case, decision: Decision, execution: Execution,
                     approved_by: Sequence[str]) -> DeliveryResult:
    """The approved action, delivered as a signed ``case.approved`` callback to ``case.callback_url``.
    Called with detached objects and no database session open."""
    if not case.callback_url:
        return DeliveryResult("delivered", note=NO_CALLBACK_URL)
    document = callback_document(case, decision, execution, approved_by).model_dump(mode="json")
    return sender.send(case.client, case.callback_url, execution.idempotency_key, document)
