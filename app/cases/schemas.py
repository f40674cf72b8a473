"""The shapes of a case, its recommendation and its decisions shared by every surface: the
upstream API (`app.intake.schemas`), the reviewer API (`app.review.schemas`) and the documents
sent upstream (`app.execution.schemas`). Each surface extends them; none repeats them.

Decisions are read straight from `Decision` rows: ``decided_at`` is the row's ``created_at``
and ``decided_by`` its reviewer's email.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

from pydantic import AliasChoices, AliasPath, Field

from app.schemas import Document, IsoDateTime

if TYPE_CHECKING:
    from app.cases.models import Case


class CaseRef(Document):
    """How every document names a case."""

    id: int
    external_id: str
    domain: str
    case_type: str
    title: str


class CaseHead(CaseRef):
    """Where a case stands: the head of the upstream case document and of the reviewer API's summary."""

    status: str
    version: int
    priority: str  # low, normal, high, urgent
    queue: str | None
    sla_due_at: IsoDateTime | None

    @classmethod
    def of(cls, case: Case, **more: Any) -> Self:
        """The case's head, with the members a subclass adds in ``more``."""
        return cls(id=case.id, external_id=case.external_id, domain=case.domain, case_type=case.case_type,
                   title=case.title, status=case.status, version=case.version, priority=case.priority_label,
                   queue=case.queue.name if case.queue else None, sla_due_at=case.sla_due_at, **more)


class RecommendationBrief(Document):
    """The AI's recommendation as the upstream client sees it."""

    action: str
    parameters: dict[str, Any]
    rationale: str
    confidence: float
    flags: list[str]
    citations: list[str]
    provider: str
    model: str


class DecisionBrief(Document):
    """A decision as an approval callback reports it."""

    kind: str
    reason_code: str | None
    reason: str | None
    decided_at: IsoDateTime = Field(validation_alias=AliasChoices("decided_at", "created_at"))


class DecisionNotice(DecisionBrief):
    """…and who made it, as notifications and the APIs report it."""

    decided_by: str = Field(validation_alias=AliasChoices("decided_by", AliasPath("reviewer", "email")))


class DecisionRecord(DecisionNotice):
    """…and the action it approved (none for a rejection, escalation or request for information)."""

    action: str | None
    parameters: dict[str, Any]
