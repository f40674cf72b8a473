"""The documents of the reviewer API (`app.review.api`): the commands it reads and the answers it
sends. The shapes shared with the upstream API and the callbacks come from `app.cases.schemas`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

from pydantic import BaseModel, ConfigDict, Field

from app.cases.models import Priority
from app.cases.schemas import CaseHead, DecisionRecord, RecommendationBrief
from app.review.services import MAX_REASON_LENGTH
from app.schemas import Document, IsoDateTime

if TYPE_CHECKING:
    from app.cases.models import Case
    from app.review.inbox import InboxRow


# --- commands ------------------------------------------------------------------------------------------


class AssignCommand(BaseModel):
    """``POST /api/v1/cases/<id>/assign``: give the case to a reviewer of its queue, saying why."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    assignee: str = Field(min_length=1, max_length=254, description="the email of the reviewer to assign")
    reason: str = Field(min_length=1, max_length=MAX_REASON_LENGTH)


# --- answers -------------------------------------------------------------------------------------------


class CaseSummary(CaseHead):
    """A case in the reviewer API: the answer to claim, release and assign."""

    assignee: str | None  # the assignee's email
    claim_expires_at: IsoDateTime | None

    @classmethod
    def of(cls, case: Case, **more: Any) -> Self:
        return super().of(case, assignee=case.assignee.email if case.assignee else None,
                          claim_expires_at=case.claim_expires_at, **more)


class InboxItem(Document):
    id: int
    external_id: str
    case_type: str
    title: str
    status: str
    priority: str
    sla_due_at: IsoDateTime | None
    assignee: str | None  # the assignee's name
    amount: str | None
    currency: str | None
    confidence: float | None
    flags: list[str]

    @classmethod
    def of(cls, row: InboxRow, *, blind: bool) -> Self:
        """A blind-review queue reveals nothing of the AI's view in its list."""
        return cls(id=row.id, external_id=row.external_id, case_type=row.case_type, title=row.title,
                   status=row.status, priority=Priority(row.priority).label, sla_due_at=row.sla_due_at,
                   assignee=row.assignee_name, amount=None if row.amount is None else str(row.amount),
                   currency=row.currency, confidence=None if blind else row.confidence,
                   flags=[] if blind else row.flags)


class InboxPage(Document):
    """``GET /api/v1/inbox``."""

    queue: str
    items: list[InboxItem]
    page: int
    per_page: int
    total: int


class ReviewDecision(DecisionRecord):
    id: int
    diff: dict[str, Any]
    action_hash: str | None
    recommendation_id: int | None
    case_version: int


class CaseVersion(Document):
    id: int
    status: str
    version: int


class DecisionAnswer(Document):
    """``POST /api/v1/cases/<id>/decisions``: the decision and where it left the case."""

    decision: ReviewDecision
    case: CaseVersion


class ReviewRecommendation(RecommendationBrief):
    id: int
    hard_flags: list[str]  # the pre-screen's hard flags (also among flags), whichever provider answered
    screen_action: str | None  # the local analyzer's action: the second opinion
    details: dict[str, Any]
    created_at: IsoDateTime


class CalibratedAgreement(Document):
    """How often reviewers approved this model's recommendations of this case type, at this
    confidence, as recommended; ``rate`` is null with fewer than ``minimum`` decided cases."""

    rate: float | None
    decisions: int
    minimum: int
    label: str


class ProposedAction(Document):
    action: str | None
    parameters: dict[str, Any]


class DualApproval(Document):
    required: bool
    role: str | None  # of the second approver


class ReasonCode(Document):
    """An active reason code and the decision kinds (``kind`` of a decision) that may give it."""

    code: str
    label: str
    kinds: list[str]


class ReviewDocument(CaseSummary):
    """``GET /api/v1/review/cases/<id>``: the case as the reviewer sees it. On a blind queue,
    before their own assessment: nothing of the AI's view (recommendation, proposed action,
    view hash, decisions)."""

    amount: str | None
    currency: str | None
    data: dict[str, Any]
    recommendation_hidden: bool
    recommendation: ReviewRecommendation | None
    calibrated_agreement: CalibratedAgreement | None
    proposed_action: ProposedAction | None
    view_hash: str | None
    dual_approval: DualApproval
    actions: list[str]
    reason_codes: list[ReasonCode]
    decisions: list[ReviewDecision]
