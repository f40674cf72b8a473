"""Review queues (inboxes): creating them, with an audit event."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.actors import Actor
from app.audit import chain
from app.audit.actions import AuditAction
from app.cases.models import Queue
from app.cases.types import DOMAINS
from app.errors import Conflict, Invalid

MAX_NAME_LENGTH = 80


def create_queue(
    session: Session,
    name: str,
    domain: str,
    sla_minutes: int,
    *,
    is_default: bool = False,
    escalation_target: Queue | None = None,
    actor: Actor | None = None,
) -> Queue:
    """Create a queue; flushed with its ``queue.created`` audit event, not committed.

    A domain has at most one default queue (where intake files new cases), and a
    queue escalates only to another queue of its own domain.
    """
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise Invalid(f"a queue name must be 1 to {MAX_NAME_LENGTH} characters")
    if domain not in DOMAINS:
        raise Invalid(f"unknown domain {domain!r}: choose one of {', '.join(DOMAINS)}")
    if isinstance(sla_minutes, bool) or not isinstance(sla_minutes, int) or sla_minutes <= 0:
        raise Invalid(f"sla_minutes must be a positive whole number of minutes (got {sla_minutes!r})")
    if session.scalar(select(Queue.id).where(Queue.name == name)):
        raise Conflict(f"a queue named {name!r} already exists")
    if is_default:
        current = session.scalar(select(Queue.name).where(Queue.domain == domain, Queue.is_default.is_(True)))
        if current:
            raise Conflict(f"domain {domain!r} already has a default queue ({current!r})")
    if escalation_target is not None and escalation_target.domain != domain:
        raise Invalid(
            f"escalation target {escalation_target.name!r} is in domain {escalation_target.domain!r}, not {domain!r}"
        )
    queue = Queue(name=name, domain=domain, sla_minutes=sla_minutes, is_default=is_default,
                  escalation_target=escalation_target)
    session.add(queue)
    session.flush()
    chain.record(session, AuditAction.QUEUE_CREATED, actor or Actor.system("seed"), data={
        "queue_id": queue.id, "name": name, "domain": domain, "sla_minutes": sla_minutes,
        "is_default": is_default, "escalation_target": escalation_target.name if escalation_target else None,
    })
    return queue
