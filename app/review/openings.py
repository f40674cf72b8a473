"""The first time each reviewer opens each case: one indexed look-up per case view, and one insert
the first time only."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.cases.models import Case
from app.cases.permissions import can
from app.db import utcnow
from app.review.models import CaseOpening
from app.users import User


def record_first_open(session: Session, user: User, case: Case) -> None:
    """Remember when ``user`` first opened ``case``, if they may decide cases (the others' views
    time no decision). The caller commits; a twin request inserting first is no error."""
    if not can(user, "decide"):
        return
    seen = session.scalar(select(CaseOpening.opened_at).where(CaseOpening.case_id == case.id,
                                                              CaseOpening.user_id == user.id))
    if seen is not None:
        return
    try:
        with session.begin_nested():
            session.add(CaseOpening(case_id=case.id, user_id=user.id, opened_at=utcnow()))
    except IntegrityError:
        pass  # another request of the same reviewer recorded it a moment earlier
