"""The documents of the upstream API: what a client sends (cases, answers to requests for
information, withdrawals) and what it gets back."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool

from app.cases.schemas import CaseHead, DecisionRecord, RecommendationBrief
from app.cases.types.base import identifier
from app.schemas import Document, IsoDateTime

MAX_NOTE_LENGTH = 5000
MAX_WITHDRAWAL_REASON_LENGTH = 5000


# --- what the client sends -------------------------------------------------------------------------


class CaseEnvelope(BaseModel):
    """``POST /api/v1/cases``: the common envelope; ``data`` follows the case type's schema
    (``app/cases/types/<type>/schema.py``)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    external_id: Annotated[str, Field(min_length=1, max_length=128), AfterValidator(identifier)]
    domain: Literal["finance", "legal", "compliance"]
    case_type: str = Field(min_length=1, max_length=40)
    title: str = Field(min_length=1, max_length=200)
    data: dict[str, Any]
    priority: Literal["low", "normal", "high", "urgent"] = "normal"
    callback_url: str | None = Field(default=None, max_length=2048)
    confidential: StrictBool = False


class InfoAnswer(BaseModel):
    """``POST /api/v1/cases/<id>/info``: the answer to a reviewer's request for information."""

    model_config = ConfigDict(extra="forbid")

    data: dict[str, Any]  # top-level fields of the case's data to replace or add
    note: str | None = Field(default=None, max_length=MAX_NOTE_LENGTH)


class Withdrawal(BaseModel):
    """``POST /api/v1/cases/<id>/withdraw``: the client takes its case back before it is approved."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(min_length=1, max_length=MAX_WITHDRAWAL_REASON_LENGTH)


# --- what the client gets back ---------------------------------------------------------------------


class CaseAccepted(Document):
    """The answer to a signed case action (intake, information, withdrawal): stored with its
    webhook receipt and replayed as it was to a repeated delivery."""

    id: int
    status: str
    url: str


class ExecutionState(Document):
    """How the delivery of the approved action is going."""

    status: str
    attempts: int
    last_status_code: int | None
    delivered_at: IsoDateTime | None


class UpstreamCase(CaseHead):
    """``GET /api/v1/cases/<id>``: the case as the client that posted it sees it."""

    created_at: IsoDateTime
    expires_at: IsoDateTime | None  # an agent's tool call: when it expires undecided (never executed after)
    answer: str | None  # a reviewer's answer instead of running the agent's tool (a respond decision)
    recommendation: RecommendationBrief | None
    decisions: list[DecisionRecord]
    execution: ExecutionState | None
