from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow


class EscalationRule(Base):
    """Ordered and declarative: when every condition holds, the actions apply."""

    __tablename__ = "escalation_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    position: Mapped[int] = mapped_column(index=True)
    version: Mapped[int] = mapped_column(default=1)
    enabled: Mapped[bool] = mapped_column(default=True)
    conditions: Mapped[dict[str, Any]]
    actions: Mapped[list[dict[str, Any]]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RuleFiring(Base):
    """A rule (at one version) fired on a case: at most once, which the unique key enforces."""

    __tablename__ = "rule_firings"
    __table_args__ = (UniqueConstraint("case_id", "rule_id", "rule_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    rule_id: Mapped[int] = mapped_column(ForeignKey("escalation_rules.id"))
    rule_version: Mapped[int]
    fired_at: Mapped[datetime] = mapped_column(default=utcnow)
    trigger: Mapped[str] = mapped_column(String(20))
