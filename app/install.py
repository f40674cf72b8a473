"""First install (``flask --app wsgi setup``): the first admin and one default queue per domain.

Safe to run again: what exists is left alone and only what is missing is created. An
installation has one first admin: when an admin already exists, setup accepts only that admin's
email (and changes nothing about them, password included); other admins are added with
``users create --role admin`` or the admin pages. Never seeds demo data. Everything created is
audited (``user.created``, ``queue.created``) with the actor ``system:setup``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.actors import Actor
from app.auth.services import create_user
from app.cases import queues
from app.cases.permissions import Role
from app.errors import Conflict
from app.users import User

SETUP_ACTOR = Actor.system("setup")
# A first default queue per domain, as `queues create` would make it: a payment waits hours,
# a compliance alert a day, a contract two.
DEFAULT_SLA_MINUTES = {"finance": 240, "compliance": 1440, "legal": 2880}


@dataclass
class InstallPlan:
    admin_email: str
    create_admin: bool
    queues: dict[str, int] = field(default_factory=dict)  # name (= domain) → SLA minutes

    @property
    def nothing_to_do(self) -> bool:
        return not self.create_admin and not self.queues


def admin_emails(session: Session) -> list[str]:
    """The active admins' emails: none means nobody can configure the installation."""
    return list(session.scalars(select(User.email).where(User.role == Role.ADMIN.value, User.active.is_(True))
                                .order_by(User.email)))


def plan_install(session: Session, admin_email: str) -> InstallPlan:
    """What setup would create for ``admin_email``; Conflict when another admin exists or the email
    belongs to a user who is no admin. Reads only."""
    email = admin_email.strip().lower()
    admins = admin_emails(session)
    if admins and email not in admins:
        raise Conflict(f"this installation already has an admin ({', '.join(admins)}); setup creates only the first "
                       "one: add others with flask --app wsgi users create --role admin", slug="already-set-up")
    user = session.scalar(select(User).where(User.email == email))
    if user is not None and email not in admins:
        raise Conflict(f"{email} is already a user with role {user.role}{'' if user.active else ' (deactivated)'}: "
                       "choose another email for the first admin")
    missing = queues.domains_without_default(session)
    return InstallPlan(email, create_admin=not admins, queues={d: DEFAULT_SLA_MINUTES[d] for d in missing})


def install(session: Session, plan: InstallPlan, admin_password: str | None) -> list[str]:
    """Create what ``plan`` lists (flushed, audited, not committed); returns a line per thing created.
    A refusal (a short password, a queue name taken) raises before the caller commits anything."""
    done = []
    if plan.create_admin:
        admin = create_user(session, plan.admin_email, admin_password or "", Role.ADMIN.value, actor=SETUP_ACTOR)
        done.append(f"created admin {admin.email}")
    for domain, sla_minutes in plan.queues.items():
        queue = queues.create_queue(session, domain, domain, sla_minutes, is_default=True, actor=SETUP_ACTOR)
        done.append(f"created queue {queue.name}: default of the {domain} domain, SLA {sla_minutes} minutes")
    return done
