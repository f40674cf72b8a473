from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow

KINDS = ("assignment", "escalation", "sla_warning", "sla_breach", "second_approval_request", "rule",
         "qa_disagreement")
TITLES = {"assignment": "Case assigned to you", "escalation": "Case escalated", "sla_warning": "SLA warning",
          "sla_breach": "SLA breached", "second_approval_request": "Second approval requested",
          "rule": "Escalation rule", "qa_disagreement": "QA disagreement"}


class InAppNotification(Base):
    """A notification in a user's bell: assignment, escalation, SLA warning, second approval, rule."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    message: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_notifications_user_unread", "user_id", "read_at"),)
