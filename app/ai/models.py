from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ForeignKey, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow


class ShadowRecommendation(Base):
    """Immutable: a shadow model's analysis of one version of a case, kept apart from the recommendations
    table so that nothing that shows, escalates or executes a recommendation can meet it. Read only by
    ``flask ai compare-shadow``. ``error`` is set (and the answer columns empty) when the shadow failed."""

    __tablename__ = "shadow_recommendations"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    case_version: Mapped[int]
    recommendation_id: Mapped[int] = mapped_column(ForeignKey("recommendations.id"), unique=True)  # the primary's
    provider: Mapped[str] = mapped_column(String(40))
    model: Mapped[str] = mapped_column(String(120))
    template_version: Mapped[str] = mapped_column(String(40))
    prompt_hash: Mapped[str | None] = mapped_column(String(64))
    input_hash: Mapped[str] = mapped_column(String(64))
    action: Mapped[str | None] = mapped_column(String(40))
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    rationale: Mapped[str | None] = mapped_column(Text)
    confidence: Mapped[float | None]
    flags: Mapped[list[str]] = mapped_column(default=list)
    hard_flags: Mapped[list[str]] = mapped_column(default=list)
    citations: Mapped[list[str]] = mapped_column(default=list)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tokens_in: Mapped[int] = mapped_column(default=0)
    tokens_out: Mapped[int] = mapped_column(default=0)
    cost_usd: Mapped[Decimal] = mapped_column(Numeric(14, 8), default=Decimal(0))
    latency_ms: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
