from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow


class ApiClient(Base):
    """An upstream system allowed to post cases and receive callbacks."""

    __tablename__ = "api_clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_prefix: Mapped[str] = mapped_column(String(16))
    # [{"secret": "whsec_…", "created_at": iso, "expires_at": iso | null}], newest first.
    signing_secrets: Mapped[list[dict[str, Any]]]
    allowed_domains: Mapped[list[str]]
    callback_hosts: Mapped[list[str]]
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def active_secrets(self, now: datetime | None = None) -> list[str]:
        """The signing secrets in force, newest first: the first one signs what we send."""
        now = now or utcnow()
        return [s["secret"] for s in self.signing_secrets
                if not s["expires_at"] or datetime.fromisoformat(s["expires_at"]) > now]

    def __repr__(self) -> str:
        return f"<ApiClient {self.name}>"


class WebhookReceipt(Base):
    """One accepted webhook delivery: (client, webhook-id) is the idempotency key."""

    __tablename__ = "webhook_receipts"
    __table_args__ = (UniqueConstraint("client_id", "webhook_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("api_clients.id"))
    webhook_id: Mapped[str] = mapped_column(String(255))
    body_hash: Mapped[str] = mapped_column(String(64))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    response_status: Mapped[int]
    response_body: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IntakeConfigStamp(Base):
    """One row: a random stamp that database triggers replace whenever a row of api_clients,
    queues or escalation_rules is inserted, updated or deleted (migration 0019), in the changing
    transaction. Intake reads it instead of those tables while it is unchanged (app.intake.config_cache)."""

    __tablename__ = "intake_config_stamp"

    id: Mapped[int] = mapped_column(primary_key=True)
    stamp: Mapped[int] = mapped_column(BigInteger)
