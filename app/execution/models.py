from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow


class NoticeStatus(enum.StrEnum):
    PENDING = "pending"  # to send (again) at next_attempt_at
    DELIVERED = "delivered"
    FAILED = "failed"  # for good: refused by the receiver, or no time left


class UpstreamNotice(Base):
    """The outbox of ``case.decided`` / ``case.needs_info`` / ``case.expired`` notifications to the upstream system.

    Written in the transaction of the decision; the job sends it and records the outcome here, and
    the periodic sweep re-enqueues pending notices that are due, should Redis lose their job."""

    __tablename__ = "upstream_notices"
    __table_args__ = (Index("ix_upstream_notices_status_next_attempt", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    decision_id: Mapped[int | None] = mapped_column(ForeignKey("decisions.id"))  # None: a case.expired notice
    event_type: Mapped[str] = mapped_column(String(40))
    webhook_id: Mapped[str] = mapped_column(String(255), unique=True)  # the same on every attempt
    status: Mapped[str] = mapped_column(String(20), default=NoticeStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(default=0)
    # When to send, or when the attempt under way may be taken over (its lease ends)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
