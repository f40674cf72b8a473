"""Administering user accounts: create with a one-time password, change role and queues,
deactivate and reactivate, reset a password. Every change is audited with its before and after
(never a password or its hash).

A one-time password is generated here, shown once to whoever asked for it and stored only
hashed; the account must choose its own password at the next sign-in (``must_change_password``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, selectinload

from app.actors import Actor
from app.audit import chain
from app.audit.actions import AuditAction
from app.auth import services
from app.cases.permissions import Role
from app.db import sqlite_write_lock, utcnow
from app.errors import Conflict, Invalid, NotFound
from app.users import ApiToken, User, UserSession


@dataclass(frozen=True)
class Account:
    """A user as the admin pages and ``users list`` show them."""

    user: User
    last_sign_in: datetime | None


def list_accounts(session: Session) -> list[Account]:
    """Every user, active ones first, with their last sign-in (the newest browser session)."""
    last = (select(UserSession.user_id, func.max(UserSession.created_at).label("at"))
            .group_by(UserSession.user_id).subquery())
    rows = session.execute(select(User, last.c.at).outerjoin(last, last.c.user_id == User.id)
                           .options(selectinload(User.queues)).order_by(User.active.desc(), User.email))
    return [Account(user, at) for user, at in rows]


def user_by_email(session: Session, email: str) -> User:
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise NotFound(f"no user with email {email.strip()}")
    return user


def one_time_password() -> str:
    return secrets.token_urlsafe(12)  # 16 characters, 96 random bits


def create_account(session: Session, email: str, role: str, actor: Actor, *, name: str | None = None,
                   queues: Iterable[str] = ()) -> tuple[User, str]:
    """A new user with a one-time password, returned once, to change at the first sign-in."""
    password = one_time_password()
    user = services.create_user(session, email, password, role, name=name, queues=list(queues), actor=actor)
    user.must_change_password = True
    session.flush()
    return user, password


def update_account(session: Session, user: User, actor: Actor, *, name: str | None = None, role: str | None = None,
                   queues: Iterable[str] | None = None, qa_all: bool | None = None) -> dict[str, list[Any]]:
    """Change the name, role, queues or QA flag (every approval of theirs drawn for QA); returns
    ``{field: [old, new]}``, audited when not empty."""
    values: dict[str, Any] = {}
    if name is not None:
        values["name"] = _name(name)
    if role is not None:
        values["role"] = services.validated_role(role)
        if values["role"] != Role.ADMIN:
            _keep_an_admin(session, user, "demote")
    if queues is not None:
        values["queues"] = services.queues_named(session, queues)
    if qa_all is not None:
        values["qa_all"] = bool(qa_all)
    return _apply(session, user, values, AuditAction.USER_UPDATED, actor)


def deactivate(session: Session, user: User, actor: Actor) -> dict[str, Any]:
    """The account stops working at once: every browser session ends and every API token is
    revoked. The user and their history stay."""
    if not user.active:
        raise Conflict(f"{user.email} is already deactivated", slug="already-deactivated")
    _keep_an_admin(session, user, "deactivate")
    now = utcnow()
    sessions = session.execute(update(UserSession).where(UserSession.user_id == user.id,
                                                         UserSession.ended_at.is_(None)).values(ended_at=now)).rowcount
    tokens = session.execute(update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
                             .values(revoked_at=now)).rowcount
    _apply(session, user, {"active": False}, AuditAction.USER_DEACTIVATED, actor,
           extra={"sessions_ended": sessions, "tokens_revoked": tokens})
    return {"sessions_ended": sessions, "tokens_revoked": tokens}


def reactivate(session: Session, user: User, actor: Actor) -> None:
    """The account may sign in again with its password; revoked tokens stay revoked."""
    if user.active:
        raise Conflict(f"{user.email} is active already", slug="already-active")
    _apply(session, user, {"active": True}, AuditAction.USER_REACTIVATED, actor)


def reset_password(session: Session, user: User, actor: Actor) -> str:
    """A new one-time password (returned once); the old password stops working and every browser
    session ends. API tokens are separate credentials: they are kept (deactivate to stop them)."""
    password = one_time_password()
    user.set_password(password)
    user.must_change_password = True
    session.flush()
    chain.record(session, AuditAction.USER_PASSWORD_RESET, actor, data={"user_id": user.id, "email": user.email})
    services.end_all_sessions(session, user, actor)
    return password


def change_own_password(session: Session, user: User, current: str, new: str) -> None:
    """The user's own change (after a one-time password, or any time): the current password first."""
    if not user.check_password(current):
        raise Invalid("the current password is not right", {"current_password": "not right"})
    services.check_password_strength(new)
    if new == current:
        raise Invalid("choose a password other than the current one", {"password": "same as the current one"})
    user.set_password(new)
    user.must_change_password = False
    session.flush()
    chain.record(session, AuditAction.USER_PASSWORD_CHANGED, Actor.user(user), data={"user_id": user.id})


def settings_of(user: User) -> dict[str, Any]:
    """What the audit log shows of a user, before and after a change."""
    return {"email": user.email, "name": user.name, "role": user.role,
            "queues": sorted(q.name for q in user.queues), "active": user.active, "qa_all": user.qa_all}


def _apply(session: Session, user: User, values: dict[str, Any], action: AuditAction, actor: Actor, *,
           extra: dict[str, Any] | None = None) -> dict[str, list[Any]]:
    before = settings_of(user)
    for field, value in values.items():
        setattr(user, field, value)
    after = settings_of(user)
    diff = {field: [before[field], after[field]] for field in before if before[field] != after[field]}
    if diff:
        session.flush()
        chain.record(session, action, actor, data={"user_id": user.id, "email": user.email, "before": before,
                                                   "after": after, **(extra or {})})
    return diff


def _keep_an_admin(session: Session, user: User, what: str) -> None:
    """Refuse to leave no active admin (who else could undo it?). Every active admin's row is
    locked, in one order (on SQLite, the database's write lock), so two admins demoting each other
    at once cannot both succeed: the second waits for the first and then no longer counts it."""
    if user.role != Role.ADMIN or not user.active:
        return
    sqlite_write_lock(session)
    admins = session.scalars(select(User.id).where(User.role == Role.ADMIN.value, User.active.is_(True))
                             .order_by(User.id).with_for_update()).all()
    if set(admins) <= {user.id}:
        raise Conflict(f"cannot {what} {user.email}: they are the last active admin; make another user admin first",
                       {"role": "the last active admin"} if what == "demote" else None, slug="last-admin")


def _name(name: str) -> str:
    name = " ".join(name.split())
    if not name or len(name) > services.MAX_NAME_LENGTH:
        raise Invalid(f"a name must be 1 to {services.MAX_NAME_LENGTH} characters",
                      {"name": f"1 to {services.MAX_NAME_LENGTH} characters"})
    return name
