"""Pausing and resuming: the one place the switch is changed, and every change audited.

A pause covers one kind of work (`What`) for one queue, or for every queue. Pausing what is already
paused there, or resuming what is not, is refused (Conflict): the switch says what it says, and
the audit log records each real change once. A pause of every queue and one of a single queue are
separate: resuming one leaves the other in force. Resuming enqueues the work that waited, once the
transaction commits (`release_work`).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.actors import Actor
from app.ai.jobs import release_analyses
from app.audit import chain
from app.audit.actions import AuditAction
from app.audit.models import AuditEvent
from app.cases.models import Queue
from app.cases.queues import queue_named
from app.controls.models import Pause, What
from app.errors import Conflict, Invalid, NotFound
from app.execution.jobs import release_executions
from app.jobs import Work, after_commit

MAX_REASON_LENGTH = 2000
HISTORY_LIMIT = 20
RELEASES = {What.AI: release_analyses, What.EXECUTIONS: release_executions}


def pause(session: Session, what: str, queue_name: str | None, reason: str, actor: Actor) -> Pause:
    """Stop ``what`` for queue ``queue_name`` (every queue: None or blank); flushed with its
    ``control.paused`` event, not committed."""
    kind, queue, reason = _what(what), _queue(session, queue_name), _reason(reason, required=True)
    current = _pause_of(session, kind, queue)
    if current is not None:
        raise Conflict(f"{kind.label} is already paused for {current.where}, since "
                       f"{current.paused_at:%Y-%m-%d %H:%M} UTC by {current.paused_by}")
    paused = Pause(what=kind.value, queue=queue, reason=reason, paused_by=_who(actor))
    try:
        with session.begin_nested():
            session.add(paused)
    except IntegrityError:  # another admin paused the same at the same moment
        raise Conflict(f"{kind.label} was paused for {paused.where} meanwhile") from None
    chain.record(session, AuditAction.CONTROL_PAUSED, actor, data={
        **_scope(kind, queue), "by": paused.paused_by, "reason": reason, "paused": [False, True]})
    return paused


def resume(session: Session, what: str, queue_name: str | None, actor: Actor, reason: str | None = None) -> Pause:
    """Lift the pause of ``what`` for queue ``queue_name`` (every queue: None or blank); flushed with
    its ``control.resumed`` event, not committed. The work that waited is enqueued once the caller
    commits. Returns the pause lifted."""
    kind, queue, reason = _what(what), _queue(session, queue_name), _reason(reason, required=False)
    lifted = _pause_of(session, kind, queue)
    if lifted is None:
        raise Conflict(f"{kind.label} is not paused for {'queue ' + queue.name if queue else 'every queue'}")
    session.delete(lifted)
    session.flush()
    chain.record(session, AuditAction.CONTROL_RESUMED, actor, data={
        **_scope(kind, queue), "by": _who(actor), "reason": reason, "paused": [True, False],
        "paused_by": lifted.paused_by, "paused_at": lifted.paused_at, "paused_reason": lifted.reason})
    after_commit(session, release_work(kind, queue.id if queue else None, lifted.id))
    return lifted


def release_work(what: What, queue_id: int | None, pause_id: int) -> Work:
    """The job that enqueues what waited for pause ``pause_id`` (one per pause: resuming twice in a
    row enqueues twice, and the work's own job ids keep it from running twice)."""
    return Work(RELEASES[what], f"release-{what.value}-{pause_id}", (queue_id,), "default")


def recent_changes(session: Session) -> list[AuditEvent]:
    """The latest pauses and resumes, newest first, from the audit log."""
    return list(session.scalars(
        select(AuditEvent).where(AuditEvent.action.in_([AuditAction.CONTROL_PAUSED, AuditAction.CONTROL_RESUMED]))
        .order_by(AuditEvent.id.desc()).limit(HISTORY_LIMIT)))


def _pause_of(session: Session, what: What, queue: Queue | None) -> Pause | None:
    scope = Pause.queue_id.is_(None) if queue is None else Pause.queue_id == queue.id
    return session.scalar(select(Pause).where(Pause.what == what, scope))


def _scope(what: What, queue: Queue | None) -> dict[str, str | None]:
    return {"what": what.value, "queue": queue.name if queue is not None else None}


def _who(actor: Actor) -> str:
    """An admin by email; the command line as ``cli``."""
    return actor.name or str(actor)


def _what(value: str) -> What:
    try:
        return What((value or "").strip())
    except ValueError:
        choices = ", ".join(w.value for w in What)
        raise Invalid(f"unknown kind of work {value!r}: choose {choices}", {"what": f"choose {choices}"}) from None


def _queue(session: Session, name: str | None) -> Queue | None:
    if name is None or not name.strip():
        return None
    try:
        return queue_named(session, name)
    except NotFound as exc:
        raise NotFound(exc.message, {"queue": exc.message}) from None


def _reason(value: str | None, *, required: bool) -> str | None:
    reason = (value or "").strip()
    if not reason:
        if required:
            raise Invalid("say why: a pause needs a reason", {"reason": "required"})
        return None
    if len(reason) > MAX_REASON_LENGTH:
        raise Invalid(f"the reason is longer than {MAX_REASON_LENGTH} characters", {"reason": "too long"})
    return reason
