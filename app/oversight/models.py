from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.cases.models import Case, Decision, Queue
from app.db import Base, utcnow
from app.users import User


class Calibration(Base):
    """How often reviewers approved a model's recommendations as recommended, by its confidence:
    one fitted curve per (case type, model), replaced by each refresh (app.oversight.calibration)."""

    __tablename__ = "calibrations"
    __table_args__ = (UniqueConstraint("case_type", "model"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_type: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(120))
    decisions: Mapped[int]  # the labelled recommendations the curve was fitted on
    agreements: Mapped[int]  # of them, approved as recommended
    # The isotonic fit: [{"low": c, "high": c, "rate": r, "count": n}, ...] in rising confidence.
    curve: Mapped[list[dict[str, Any]]]
    # The reliability diagram: ten equal-width confidence bins, [{"low", "high", "count", "mean_confidence",
    # "agreement"}, ...]; mean_confidence and agreement are None in an empty bin.
    bins: Mapped[list[dict[str, Any]]]
    fitted_at: Mapped[datetime] = mapped_column(default=utcnow)


class QaReview(Base):
    """An approved decision drawn for a senior reviewer's second look, and their verdict."""

    __tablename__ = "qa_reviews"
    __table_args__ = (
        CheckConstraint("verdict IS NULL OR verdict IN ('agree', 'disagree')", name="verdict_known"),
        Index("ix_qa_reviews_queue_open", "queue_id", "verdict"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("decisions.id"), unique=True)  # the approving decision
    queue_id: Mapped[int] = mapped_column(ForeignKey("queues.id"))
    reasons: Mapped[list[str]]  # why it was drawn: "share" (the queue's qa_share), "reviewer" (qa_all)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    verdict: Mapped[str | None] = mapped_column(String(10))
    verdict_reason: Mapped[str | None] = mapped_column(Text)
    verdict_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    verdict_at: Mapped[datetime | None]

    case: Mapped[Case] = relationship()
    decision: Mapped[Decision] = relationship()
    queue: Mapped[Queue] = relationship()
    verdict_by: Mapped[User | None] = relationship()
