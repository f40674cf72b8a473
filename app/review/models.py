"""The review workspace's own tables: reason codes (why a reviewer decided as they did, offered per
decision kind), and when each reviewer first opened a case."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, get_args

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow

DecisionKind = Literal["approve", "edit", "reject", "escalate", "request_info", "blind", "respond"]
DECISION_KINDS: tuple[str, ...] = get_args(DecisionKind)


class ReasonCode(Base):
    """A code reviewers may give with a decision of the listed kinds. Never deleted: a deactivated
    code is no longer offered, and decisions that gave it still show its label."""

    __tablename__ = "reason_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    label: Mapped[str] = mapped_column(String(120))
    kinds: Mapped[list[str]]
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"<ReasonCode {self.code}>"


class CaseOpening(Base):
    """When a reviewer first opened a case (its page, or the reviewer API's case view): the start of
    the time they took to decide it. One row per (case, reviewer), written once, never changed."""

    __tablename__ = "case_openings"
    __table_args__ = (Index("ix_case_openings_opened_at", "opened_at"),)

    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
