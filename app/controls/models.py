"""A pause in force: one row per (what, queue); a queue of None means every queue."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, utcnow

if TYPE_CHECKING:
    from app.cases.models import Queue


class What(enum.StrEnum):
    """What a pause stops."""

    AI = "ai"  # analysing cases: new cases stay received
    EXECUTIONS = "executions"  # delivering approved actions: approved cases stay approved

    @property
    def label(self) -> str:
        return {What.AI: "AI analysis", What.EXECUTIONS: "Executions"}[self]


_WHAT_VALUES = ", ".join(f"'{w.value}'" for w in What)
# UNIQUE (what, queue_id) lets NULLs repeat: the partial index keeps one pause of each kind for every queue.
_EVERYWHERE = text("queue_id IS NULL")


class Pause(Base):
    __tablename__ = "pauses"
    __table_args__ = (
        UniqueConstraint("what", "queue_id"),
        Index("uq_pauses_what_everywhere", "what", unique=True, sqlite_where=_EVERYWHERE,
              postgresql_where=_EVERYWHERE),
        CheckConstraint(f"what IN ({_WHAT_VALUES})", name="what_known"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    what: Mapped[str] = mapped_column(String(20))
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queues.id"))
    reason: Mapped[str] = mapped_column(Text)
    paused_by: Mapped[str] = mapped_column(String(255))  # the admin's email, or the system actor's name (cli)
    paused_at: Mapped[datetime] = mapped_column(default=utcnow)

    queue: Mapped[Queue | None] = relationship()

    @property
    def label(self) -> str:
        return What(self.what).label

    @property
    def where(self) -> str:
        return f"queue {self.queue.name}" if self.queue is not None else "every queue"
