"""The switch as work reads it: one indexed query on a table of a few rows, so every job may ask."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, exists, or_, select
from sqlalchemy.orm import Session, selectinload

from app.controls.models import Pause, What


def pause_for(session: Session, what: What, queue_id: int | None) -> Pause | None:
    """The pause that stops ``what`` for a case of queue ``queue_id`` (None: a case of no queue,
    stopped only by a pause of every queue), or None when the work may go ahead."""
    return session.scalars(select(Pause).where(Pause.what == what, _covers(queue_id)).limit(1)).first()


def running(what: What, queue_id: ColumnElement[Any]) -> ColumnElement[bool]:
    """SQL: true for a row whose ``queue_id`` no pause of ``what`` covers (a sweep's filter)."""
    return ~exists().where(Pause.what == what, _covers(queue_id))


def _covers(queue_id: int | ColumnElement[Any] | None) -> ColumnElement[bool]:
    return or_(Pause.queue_id.is_(None), Pause.queue_id == queue_id)


def in_force(session: Session) -> list[Pause]:
    """Every pause in force, oldest first, with its queue."""
    return list(session.scalars(select(Pause).options(selectinload(Pause.queue)).order_by(Pause.paused_at, Pause.id)))


def describe(pause: Pause) -> dict[str, Any]:
    """A pause as JSON (``control status --json``, ``/readyz``)."""
    return {"what": pause.what, "queue": pause.queue.name if pause.queue is not None else None,
            "paused_by": pause.paused_by, "since": pause.paused_at.isoformat(), "reason": pause.reason}
