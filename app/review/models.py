"""Reason codes: why a reviewer decided as they did, offered per decision kind."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, get_args

from sqlalchemy import String
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
