from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base

# SQLite makes an INTEGER PRIMARY KEY the rowid: assigned on insert, in commit order (one writer).
EventId = BigInteger().with_variant(Integer(), "sqlite")


class AuditEvent(Base):
    """One event of the audit log. Writers insert it unsealed (``seq`` and ``hash`` empty); the
    sealer gives it its place in the one order (``seq``, from 1) and its Merkle leaf hash. The
    schema's triggers refuse every other change, every delete and every replacing insert."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_unsealed", "id", sqlite_where=text("seq IS NULL"),
              postgresql_where=text("seq IS NULL")),
        # the audit page: filtered by actor or action, newest first; or by a time range
        Index("ix_audit_events_actor_id", "actor", "id"),
        Index("ix_audit_events_action_id", "action", "id"),
        Index("ix_audit_events_time", "time"),
    )

    id: Mapped[int] = mapped_column(EventId, primary_key=True)
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    time: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(60))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    # json, not jsonb, on PostgreSQL: the canonical text written is kept byte for byte, and hashed as is
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    hash: Mapped[str | None] = mapped_column(String(64))
    # PostgreSQL: the writing transaction's id, set by a trigger; the sealer takes only events of
    # transactions older than every still-open one, so none can be overtaken. Empty on SQLite.
    xid: Mapped[int | None] = mapped_column(BigInteger)


class AuditCheckpoint(Base):
    """A signed tree head: the log's size and Merkle root at a time, signed with Ed25519.
    Append-only like the events; each is also written outside the database (AUDIT_CHECKPOINT_DIR)."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    tree_size: Mapped[int] = mapped_column(BigInteger, index=True)
    root_hash: Mapped[str] = mapped_column(String(64))
    time: Mapped[datetime]
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(String(100))

    def document(self) -> dict[str, Any]:
        """The checkpoint as published: what tools/verify_export.py checks."""
        return {"tree_size": self.tree_size, "root_hash": self.root_hash, "time": self.time.isoformat(),
                "key_id": self.key_id, "signature": self.signature}
