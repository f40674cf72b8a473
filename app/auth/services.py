"""User accounts: creating them, signing in with a password, personal API tokens."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import cache

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from app.actors import Actor
from app.audit import chain
from app.audit.actions import AuditAction
from app.cases.models import Queue
from app.cases.permissions import Role
from app.db import sha256_hex, utcnow
from app.errors import Conflict, Invalid, NotFound
from app.users import ApiToken, User, UserSession

MIN_PASSWORD_LENGTH = 10
TOKEN_PREFIX = "cst_"  # noqa: S105 (a public marker, not a secret)
MAX_TOKEN_LABEL = 80
MAX_NAME_LENGTH = 120


def create_user(
    session: Session, email: str, password: str, role: str, *, name: str | None = None, queues: list[str] = (),
    actor: Actor | None = None,
) -> User:
    role = validated_role(role)
    email = validated_email(email)
    check_password_strength(password)
    if session.scalar(select(User.id).where(User.email == email)):
        raise Conflict(f"a user with email {email} already exists", {"email": "already in use"})
    found = queues_named(session, queues)
    name = " ".join((name or "").split()) or email.split("@")[0].replace(".", " ").title()
    if len(name) > MAX_NAME_LENGTH:
        raise Invalid(f"a name is at most {MAX_NAME_LENGTH} characters",
                      {"name": f"at most {MAX_NAME_LENGTH} characters"})
    user = User(email=email, name=name, role=role, queues=found)
    user.set_password(password)
    session.add(user)
    session.flush()
    chain.record(session, AuditAction.USER_CREATED, actor or Actor.system("cli"),
                 data={"user_id": user.id, "email": email, "role": role, "queues": sorted(q.name for q in found)})
    return user


def validated_role(role: str) -> str:
    roles = [r.value for r in Role]
    if role not in roles:
        message = f"unknown role {role!r}: choose one of {', '.join(roles)}"
        raise Invalid(message, {"role": message})
    return role


def validated_email(email: str) -> str:
    try:  # syntax only: no DNS look-up, users may be created offline
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        message = f"{email.strip()!r} is not an email address: {exc}"
        raise Invalid(message, {"email": message}) from None


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        message = f"the password must be at least {MIN_PASSWORD_LENGTH} characters"
        raise Invalid(message, {"password": message})


def queues_named(session: Session, names: Iterable[str]) -> list[Queue]:
    """The queues of these names, by name; Invalid naming any that does not exist."""
    names = sorted(set(names))
    found = list(session.scalars(select(Queue).where(Queue.name.in_(names)).order_by(Queue.name))) if names else []
    missing = sorted(set(names) - {q.name for q in found})
    if missing:
        message = f"unknown queue(s): {', '.join(missing)}"
        raise Invalid(message, {"queues": message})
    return found


@cache
def _dummy_hash() -> str:
    return generate_password_hash(secrets.token_hex(16), method="scrypt")


def authenticate_password(session: Session, email: str, password: str) -> User | None:
    """The active user with this email and password (audited), else None, in about the same time either way."""
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        check_password_hash(_dummy_hash(), password)  # an unknown email costs as much as a wrong password
        return None
    if not user.check_password(password) or not user.active:
        return None
    chain.record(session, AuditAction.USER_LOGIN, Actor.user(user), data={"user_id": user.id})
    return user


def create_api_token(session: Session, user: User, label: str, *, actor: Actor | None = None) -> tuple[ApiToken, str]:
    """A new personal token; the raw ``cst_…`` value is returned once and only its hash is stored."""
    label = label.strip()
    if not label or len(label) > MAX_TOKEN_LABEL:
        raise Invalid(f"a token label must be 1 to {MAX_TOKEN_LABEL} characters")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, label=label, token_hash=sha256_hex(raw), token_prefix=raw[:12])
    session.add(token)
    session.flush()
    chain.record(session, AuditAction.API_TOKEN_CREATED, actor or Actor.user(user),
                 data={"user_id": user.id, "token_id": token.id, "label": label, "prefix": token.token_prefix})
    return token, raw


def api_tokens_of(session: Session, user: User) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())))


def revoke_api_token(session: Session, user: User, token_id: int) -> ApiToken:
    """Revoke one of the user's own tokens (NotFound for anyone else's); revoking twice is harmless."""
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id:
        raise NotFound(f"no token {token_id} of yours")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()
        chain.record(session, AuditAction.API_TOKEN_REVOKED, Actor.user(user),
                     data={"user_id": user.id, "token_id": token.id, "label": token.label})
    return token


def user_for_token(session: Session, raw: str | None) -> User | None:
    """The active user a live token belongs to (noting its use), else None."""
    if not raw or not raw.startswith(TOKEN_PREFIX):
        return None
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == sha256_hex(raw)))
    if token is None or token.revoked_at is not None or not token.user.active:
        return None
    token.last_used_at = utcnow()
    session.flush()
    return token.user


# --- browser sessions -------------------------------------------------------------------------------

SESSION_TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often


def start_session(session: Session, user: User) -> str:
    """A new server-side session for ``user``; the raw token goes in the signed cookie, once."""
    raw = secrets.token_urlsafe(32)
    session.add(UserSession(user_id=user.id, token_hash=sha256_hex(raw)))
    session.flush()
    return raw


def user_for_session(session: Session, raw: str | None, *, idle: timedelta, longest: timedelta,
                     now: datetime | None = None) -> User | None:
    """The active user of a live session, else None: unknown, ended, idle for longer than
    ``idle``, or older than ``longest``. Its use is noted (and an expired session ended) in a
    transaction of its own, so that a read-only request keeps the session alive and nothing else
    of the request is committed with it."""
    found = _session_of(session, raw)
    if found is None or found.ended_at is not None or not found.user.active:
        return None
    now = now or utcnow()
    expired = now - found.last_seen_at > idle or now - found.created_at > longest
    if expired or now - found.last_seen_at > SESSION_TOUCH_EVERY:
        changes = {"ended_at": now} if expired else {"last_seen_at": now}
        with session.get_bind().begin() as own:
            own.execute(update(UserSession).where(UserSession.id == found.id).values(**changes))
    return None if expired else found.user


def _session_of(session: Session, raw: str | None) -> UserSession | None:
    if not raw:
        return None
    return session.scalar(select(UserSession).where(UserSession.token_hash == sha256_hex(raw)))


def end_session(session: Session, raw: str | None) -> None:
    """Sign-out: this browser's session ends (audited); an unknown or ended one is ignored."""
    found = _session_of(session, raw)
    if found is not None and found.ended_at is None:
        found.ended_at = utcnow()
        chain.record(session, AuditAction.USER_LOGOUT, Actor.user(found.user), data={"user_id": found.user_id})


def end_all_sessions(session: Session, user: User, actor: Actor) -> int:
    """Sign ``user`` out everywhere (audited); returns how many sessions were live."""
    ended = session.execute(update(UserSession).where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
                            .values(ended_at=utcnow())).rowcount
    chain.record(session, AuditAction.USER_SESSIONS_ENDED, actor, data={"user_id": user.id, "sessions": ended})
    return ended
