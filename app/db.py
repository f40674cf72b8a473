"""Declarative base, column types and helpers shared by every model."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, DateTime, MetaData, TypeDecorator, event, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Session, registry

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def on_outer_commit(key: str, act: Callable[[Session, Any], None]) -> None:
    """Once a session's outermost transaction commits, ``act(session, kept)`` with what was kept under
    ``session.info[key]`` meanwhile (nothing kept: not called); if it rolls back, what was kept is
    dropped. SQLAlchemy's own after_commit also fires when a savepoint is released, when nothing is
    committed yet: that one is not the commit."""

    @event.listens_for(Session, "after_commit")
    def _committed(session: Session) -> None:
        if not session.in_nested_transaction():
            kept = session.info.pop(key, None)
            if kept:
                act(session, kept)

    @event.listens_for(Session, "after_soft_rollback")
    def _rolled_back(session: Session, previous_transaction: Any) -> None:
        if previous_transaction.parent is None:  # the outermost transaction: nothing of it was committed
            session.info.pop(key, None)


def sqlite_write_lock(session: Session) -> bool:
    """On SQLite, take the database's one write lock now, before reading what a write depends on:
    a concurrent writer waits here until this transaction ends, then reads what it committed.
    True when it did; elsewhere it does nothing (SQLite ignores FOR UPDATE; on PostgreSQL the
    callers lock their rows with it)."""
    if session.get_bind().dialect.name != "sqlite":
        return False
    session.execute(text("UPDATE cases SET id = id WHERE 0 = 1"))
    return True


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: use timezone-aware UTC times")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def json_digest(value: Any) -> str:
    """SHA-256 of the canonical JSON of ``value``: equal for equal content, whatever the key order."""
    return sha256_hex(canonical_json(value))


def canonical_json(value: Any) -> str:
    """Stable JSON text: sorted keys, no whitespace, decimals and times as strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def _json_default(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class Base(DeclarativeBase):
    registry = registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={
            datetime: UTCDateTime,
            dict[str, Any]: JSONType,
            list[str]: JSONType,
            list[int]: JSONType,
            list[dict[str, Any]]: JSONType,
        },
    )
