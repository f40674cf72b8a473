"""Notifications: in-app rows (the bell) and, after the commit, email and a signed webhook.

``notify`` adds one ``InAppNotification`` per recipient and flushes; the email and webhook
deliveries (`app.notifications.delivery`) are enqueued only once the transaction has committed
(`app.jobs.after_commit`): a rolled-back change tells nobody.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session, object_session

from app.cases import lifecycle
from app.cases.models import Case, Status
from app.db import utcnow
from app.jobs import after_commit
from app.notifications.delivery import deliveries
from app.notifications.models import KINDS, InAppNotification
from app.users import User

MAX_MESSAGE = 500
UNREAD_CAP = 100


def notify(session: Session, users: Iterable[User | None], kind: str, case: Case | None,
           message: str) -> list[InAppNotification]:
    """One in-app notification per active recipient (None and duplicates skipped)."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}; one of {', '.join(KINDS)}")
    recipients = {user.id: user for user in users if user is not None and user.active}
    rows = [InAppNotification(user_id=user_id, kind=kind, case_id=case.id if case else None,
                              message=message[:MAX_MESSAGE]) for user_id in sorted(recipients)]
    if not rows:
        return []
    session.add_all(rows)
    session.flush()
    for work in deliveries([row.id for row in rows]):
        after_commit(session, work)
    return rows


# Once a case reaches one of these, nobody is asked to act on it any more. (Every way out of
# awaiting_second_approval leads here: a second-approval request never outlives its wait.)
SETTLED = frozenset({Status.APPROVED, Status.REJECTED, Status.EXECUTING, Status.EXECUTED, Status.EXECUTION_FAILED,
                     Status.WITHDRAWN, Status.RESPONDED, Status.EXPIRED})


@lifecycle.on_move
def resolve_with_case(case: Case) -> None:
    """Notifications resolve with their case: once it is settled, every notification about it is
    marked read, so the bell stops counting what nobody can act on."""
    session = object_session(case)
    if session is None or case.id is None or case.status not in SETTLED:
        return
    with session.no_autoflush:
        session.execute(update(InAppNotification)
                        .where(InAppNotification.case_id == case.id, InAppNotification.read_at.is_(None))
                        .values(read_at=utcnow()).execution_options(synchronize_session=False))


# --- the bell -----------------------------------------------------------------------------------------


def unread_count(session: Session, user: User) -> int:
    """Unread notifications of the user, counted up to UNREAD_CAP (the bell shows "99+")."""
    unread = (InAppNotification.user_id == user.id, InAppNotification.read_at.is_(None))
    return len(session.scalars(select(InAppNotification.id).where(*unread).limit(UNREAD_CAP)).all())


def mark_all_read(session: Session, user: User) -> int:
    unread = (InAppNotification.user_id == user.id, InAppNotification.read_at.is_(None))
    return session.execute(update(InAppNotification).where(*unread).values(read_at=utcnow())).rowcount


def inbox_query(user: User) -> Select[tuple[InAppNotification]]:
    return (select(InAppNotification).where(InAppNotification.user_id == user.id)
            .order_by(InAppNotification.created_at.desc(), InAppNotification.id.desc()))
