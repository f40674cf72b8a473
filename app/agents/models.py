from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.cases.models import Queue
from app.db import Base, utcnow


class AgentTool(Base):
    """The policy of one tool that agents call: limits on its arguments, whether a call needs two
    approvals (the second by a senior reviewer), and the queue its calls go to."""

    __tablename__ = "agent_tools"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # {"amount": {"max": "500"}, "currency": {"allowed_values": ["EUR"]}, "email": {"allowed_domains": [...]}}
    arguments: Mapped[dict[str, Any]] = mapped_column(default=dict)
    two_approvals: Mapped[bool] = mapped_column(default=False)
    queue_id: Mapped[int | None] = mapped_column(ForeignKey("queues.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    queue: Mapped[Queue | None] = relationship()

    def __repr__(self) -> str:
        return f"<AgentTool {self.name}>"
