from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow


class CaseOpening(Base):
    """When a reviewer first opened a case (its page, or the reviewer API's case view): the start of
    the time they took to decide it. One row per (case, reviewer), written once, never changed."""

    __tablename__ = "case_openings"
    __table_args__ = (Index("ix_case_openings_opened_at", "opened_at"),)

    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
