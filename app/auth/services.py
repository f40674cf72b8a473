"""User accounts."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.actors import Actor
from app.audit import chain
from app.auth.models import Role, User
from app.cases.models import Queue

MIN_PASSWORD_LENGTH = 10


def create_user(
    session: Session, email: str, password: str, role: str, *, name: str | None = None, queues: list[str] = (),
    actor: Actor | None = None,
) -> User:
    email = email.strip().lower()
    roles = [r.value for r in Role]
    if role not in roles:
        raise ValueError(f"unknown role {role!r}: choose one of {', '.join(roles)}")
    if "@" not in email or email.startswith("@") or email.endswith("@"):
        raise ValueError(f"{email!r} is not an email address")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
    if session.scalar(select(User.id).where(User.email == email)):
        raise ValueError(f"a user with email {email} already exists")
    found = session.scalars(select(Queue).where(Queue.name.in_(queues))).all() if queues else []
    missing = sorted(set(queues) - {q.name for q in found})
    if missing:
        raise ValueError(f"unknown queue(s): {', '.join(missing)}")
    user = User(email=email, name=name or email.split("@")[0].replace(".", " ").title(), role=role, queues=list(found))
    user.set_password(password)
    session.add(user)
    session.flush()
    chain.record(session, "user.created", actor or Actor.system("cli"),
                 data={"user_id": user.id, "email": email, "role": role, "queues": sorted(q.name for q in found)})
    return user
