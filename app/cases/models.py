from __future__ import annotations

import enum
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, Numeric, String, Table, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, utcnow

if TYPE_CHECKING:
    from app.intake.models import ApiClient
    from app.users import User


class Status(enum.StrEnum):
    RECEIVED = "received"
    ANALYZING = "analyzing"
    PENDING_REVIEW = "pending_review"
    AI_FAILED = "ai_failed"
    IN_REVIEW = "in_review"
    AWAITING_SECOND_APPROVAL = "awaiting_second_approval"
    NEEDS_INFO = "needs_info"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXECUTING = "executing"
    EXECUTED = "executed"
    EXECUTION_FAILED = "execution_failed"
    WITHDRAWN = "withdrawn"
    RESPONDED = "responded"  # a reviewer answered instead of approving: nothing is executed
    EXPIRED = "expired"  # not decided (or not executed) by the case's expires_at: never executed


class Priority(enum.IntEnum):
    LOW = 0
    NORMAL = 1
    HIGH = 2
    URGENT = 3

    @classmethod
    def from_name(cls, name: str) -> Priority:
        return cls[name.upper()]

    @property
    def label(self) -> str:
        return self.name.lower()


Money = Numeric(18, 4)
# Who works which queue (reviewers see and decide its cases).
queue_members = Table(
    "queue_members",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("queue_id", ForeignKey("queues.id", ondelete="CASCADE"), primary_key=True),
)
_STATUS_VALUES = ", ".join(f"'{s.value}'" for s in Status)


class Queue(Base):
    """A review inbox."""

    __tablename__ = "queues"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    domain: Mapped[str] = mapped_column(String(20))
    is_default: Mapped[bool] = mapped_column(default=False)
    sla_minutes: Mapped[int] = mapped_column(default=24 * 60)
    escalation_target_id: Mapped[int | None] = mapped_column(ForeignKey("queues.id"))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Reviewers record their own decision before the AI recommendation is revealed.
    blind_review: Mapped[bool] = mapped_column(default=False)
    # {"timezone": "Europe/London", "days": [0..6], "start": "09:00", "end": "17:30", "holidays": ["2026-12-25"]}
    business_hours: Mapped[dict[str, Any] | None]
    # The case types of its domain routed here (app.cases.queues.route); the domain's default queue
    # takes the others. A case type is routed to one queue at most.
    case_types: Mapped[list[str]] = mapped_column(default=list)
    # Cases of this queue with an amount (or credit limit set) at or above it need two approvals;
    # None: the DUAL_APPROVAL_THRESHOLDS setting applies (app.cases.policy).
    dual_approval_threshold: Mapped[Decimal | None] = mapped_column(Money)
    # The role that may claim and decide its cases: reviewer (any decider) or senior_reviewer
    # (app.cases.permissions).
    required_role: Mapped[str] = mapped_column(String(20), default="reviewer", server_default="reviewer")
    # The share (0..1) of its approved decisions drawn for QA, a senior reviewer's second look (app.oversight.qa).
    qa_share: Mapped[float] = mapped_column(default=0.0, server_default=text("0"))
    # An archived queue receives no new cases; its open cases stay workable.
    archived_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    members: Mapped[list[User]] = relationship(secondary=queue_members, back_populates="queues")
    escalation_target: Mapped[Queue | None] = relationship(remote_side=[id])
    lead: Mapped[User | None] = relationship(foreign_keys=[lead_id])

    def __repr__(self) -> str:
        return f"<Queue {self.name}>"


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        UniqueConstraint("client_id", "external_id"),
        CheckConstraint(f"status IN ({_STATUS_VALUES})", name="status_known"),
        CheckConstraint("priority BETWEEN 0 AND 3", name="priority_range"),
        Index("ix_cases_inbox", "queue_id", "status", "priority", "sla_due_at"),
        Index("ix_cases_status_updated", "status", "updated_at"),
        Index("ix_cases_status_sla_due", "status", "sla_due_at"),
        Index("ix_cases_sla_next_at", "sla_next_at"),  # the SLA sweep: a range scan of the steps due
        Index("ix_cases_sla_stopped_at", "sla_stopped_at"),  # the dashboards: cases decided in a date range
        Index("ix_cases_expires_at", "expires_at"),  # the expiry sweep: a range scan of the cases due
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("api_clients.id"))
    external_id: Mapped[str] = mapped_column(String(128))
    domain: Mapped[str] = mapped_column(String(20))
    case_type: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(32), default=Status.RECEIVED.value)
    priority: Mapped[int] = mapped_column(default=Priority.NORMAL)
    confidential: Mapped[bool] = mapped_column(default=False)
    amount: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    risk_score: Mapped[float | None]
    callback_url: Mapped[str | None] = mapped_column(String(2048))
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queues.id"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    claim_expires_at: Mapped[datetime | None]
    sla_due_at: Mapped[datetime | None]
    sla_paused_at: Mapped[datetime | None]  # the SLA clock stops while the case waits in needs_info
    sla_notified_pct: Mapped[int] = mapped_column(default=0)  # highest SLA warning sent: 0, 50, 75, 100
    # The case's own SLA window in business minutes: its queue's at intake, a rule's set_sla, or
    # the escalation target's after a breach.
    sla_window_minutes: Mapped[int | None]
    # When the next SLA step (50, 75 or 100 %) is due; NULL while the clock stands still or no step
    # is left. Only app.escalation.sla.next_step_at computes it.
    sla_next_at: Mapped[datetime | None]
    # When the SLA clock stopped for good (the case was decided or withdrawn): whether the SLA was
    # met is judged at this moment, not now. Set by app.escalation.sla.refresh.
    sla_stopped_at: Mapped[datetime | None]
    # When the executor last refused to execute the case (no valid approval): the execution sweep
    # leaves an approved case alone until it changes again (updated_at moves past this).
    execution_refused_at: Mapped[datetime | None]
    # When an undecided or unexecuted case expires for good (an agent's tool call: its case type
    # says); NULL for cases that do not expire. app.agents.expiry sweeps them.
    expires_at: Mapped[datetime | None]
    requires_dual_approval: Mapped[bool] = mapped_column(default=False)
    second_approval_role: Mapped[str | None] = mapped_column(String(20))
    reopen_count: Mapped[int] = mapped_column(default=0)
    recommendation_id: Mapped[int | None] = mapped_column(
        ForeignKey("recommendations.id", use_alter=True, name="fk_cases_recommendation_id_recommendations")
    )
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    # Every UPDATE carries "WHERE version = :seen" and bumps it: a concurrent
    # writer's stale copy fails instead of overwriting.
    __mapper_args__ = {"version_id_col": version}

    client: Mapped[ApiClient] = relationship()
    queue: Mapped[Queue | None] = relationship()
    assignee: Mapped[User | None] = relationship(foreign_keys=[assignee_id])
    recommendation: Mapped[Recommendation | None] = relationship(foreign_keys=[recommendation_id])

    @property
    def priority_label(self) -> str:
        return Priority(self.priority).label

    def __repr__(self) -> str:
        return f"<Case {self.id} {self.case_type} {self.status}>"


class Recommendation(Base):
    """Immutable: one AI recommendation for one version of a case."""

    __tablename__ = "recommendations"
    __table_args__ = (UniqueConstraint("case_id", "case_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    case_version: Mapped[int]
    provider: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(120))
    template_version: Mapped[str] = mapped_column(String(40))
    prompt_hash: Mapped[str] = mapped_column(String(64))
    input_hash: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(40))
    parameters: Mapped[dict[str, Any]]
    rationale: Mapped[str] = mapped_column(Text)
    confidence: Mapped[float]
    flags: Mapped[list[str]]
    citations: Mapped[list[str]]
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tokens_in: Mapped[int] = mapped_column(default=0)
    tokens_out: Mapped[int] = mapped_column(default=0)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(14, 8), default=Decimal(0))
    latency_ms: Mapped[int] = mapped_column(default=0)
    cache_hit: Mapped[bool] = mapped_column(default=False)
    fallback_used: Mapped[bool] = mapped_column(default=False)
    # The local analyzer's hard flags for this case (also among ``flags``), whichever provider answered,
    # and its action: the second opinion shown beside the answer. (NULL: stored before screening existed.)
    hard_flags: Mapped[list[str]] = mapped_column(default=list, server_default=text("'[]'"))
    screen_action: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)  # the dashboards read date ranges


class Decision(Base):
    """Immutable: what a reviewer decided, with the diff against the recommendation."""

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    recommendation_id: Mapped[int | None] = mapped_column(ForeignKey("recommendations.id"))
    kind: Mapped[str] = mapped_column(String(30))
    case_version: Mapped[int]
    action: Mapped[str | None] = mapped_column(String(40))
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    diff: Mapped[dict[str, Any]] = mapped_column(default=dict)
    action_hash: Mapped[str | None] = mapped_column(String(64))
    reason_code: Mapped[str | None] = mapped_column(String(40))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)  # the dashboards read date ranges

    reviewer: Mapped[User] = relationship()


class UndoneApproval(Base):
    """An approval its reviewer took back within the undo window. The decision stays as it was taken
    (decisions are immutable); this row says it no longer stands: it was never executed and counts
    nowhere a reviewer's verdict is counted (dashboards, calibration, QA, shadow comparisons)."""

    __tablename__ = "undone_approvals"

    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"), primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    undone_at: Mapped[datetime] = mapped_column(default=utcnow)


class Execution(Base):
    """Delivery of an approved action to the upstream system."""

    __tablename__ = "executions"
    __table_args__ = (Index("ix_executions_status_next_attempt", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"))
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The first attempt of the current round: the opening, or an admin's latest retry (the give-up
    # time of the retry schedule counts from here).
    round_started_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


class ExecutionAttempt(Base):
    """One delivery attempt of an Execution (numbers restart at 1 when an admin retries)."""

    __tablename__ = "execution_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    execution_id: Mapped[int] = mapped_column(ForeignKey("executions.id"), index=True)
    number: Mapped[int]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    # None while under way; then delivered, retrying, failed, refused or superseded (outlived its lease)
    outcome: Mapped[str | None] = mapped_column(String(20))
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
