"""The documents sent to the upstream system's callback URL, signed (`app.execution.delivery`):
the ``case.approved`` callback that carries an approved action, and the ``case.decided`` and
``case.needs_info`` notifications of other decisions (`app.execution.upstream`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from app.cases.schemas import CaseRef, DecisionBrief, DecisionNotice
from app.schemas import Document


class DeliveryAttempt(Document):
    idempotency_key: str  # also the webhook-id: the same on every retry
    attempt: int


# --- case.approved -------------------------------------------------------------------------------------


class ApprovedAction(Document):
    name: str | None
    parameters: dict[str, Any]


class ApprovedCallback(Document):
    type: Literal["case.approved"] = "case.approved"
    case: CaseRef
    action: ApprovedAction
    decision: DecisionBrief
    approved_by: list[str]  # the approvers' emails, first approver first
    execution: DeliveryAttempt


# --- case.decided, case.needs_info ---------------------------------------------------------------------


class CaseWithStatus(CaseRef):
    status: str


class DecidedNotice(Document):
    """A rejection, an escalation, or an answer to an agent (a respond decision: ``answer``)."""

    type: Literal["case.decided"] = "case.decided"
    case: CaseWithStatus
    decision: DecisionNotice
    notification: DeliveryAttempt
    answer: str | None = None


class ExpiredNotice(Document):
    """The case was not decided, or not executed, by its expires_at: it never will be."""

    type: Literal["case.expired"] = "case.expired"
    case: CaseWithStatus
    expires_at: datetime | None
    notification: DeliveryAttempt


class NeedsInfoNotice(DecidedNotice):
    """A reviewer's request for information, with their question."""

    type: Literal["case.needs_info"] = "case.needs_info"  # type: ignore[assignment]
    question: str | None
