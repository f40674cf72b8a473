"""Review queues (inboxes): the one place their settings are validated, changed and audited.

The rules, for creating and for changing a queue alike:

- a name of 1 to 80 characters, unique; a known domain; ``sla_minutes`` a positive whole number.
  Name and domain are fixed once the queue exists: escalation rules route to queues by name and
  check their domain, and the cases a queue holds are of its domain.
- a domain has at most one default queue (where intake files its new cases). Making a queue the
  default while another queue of the domain is refuses, naming it, unless ``move_default`` is given:
  then the other queue stops being the default, with its own ``queue.updated`` event.
- a queue escalates only to another queue of its own domain, and escalation targets never form
  a cycle (a → b → a).
- the lead is an active reviewer or senior reviewer; members are active users (when added:
  a member who was deactivated later may stay, or be removed).
- business hours are validated by `BusinessHours` (field by field) and stored normalised.
- the dual-approval threshold is a positive amount (at most 4 decimals) or None (the global
  DUAL_APPROVAL_THRESHOLDS apply); the required role is reviewer (any decider) or senior_reviewer.
- ``qa_share``, the share of approved decisions drawn for QA (app.oversight.qa), is a number from
  0 (none) to 1 (every one).
- an archived queue receives no new cases (`route` and escalation rules skip it) and keeps its
  history; its open cases stay workable. A domain's default queue cannot be archived, nor a queue
  other queues escalate to; an archived queue cannot be made the default or an escalation target.

Every change is audited: ``queue.created`` with the settings, ``queue.updated`` with
``{"changes": {field: [old, new]}}``, ``queue.archived`` and ``queue.unarchived`` likewise.
A refusal raises before anything is changed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from app.actors import Actor
from app.audit import chain
from app.audit.actions import AuditAction
from app.cases.business_hours import BusinessHours
from app.cases.models import Queue
from app.cases.permissions import DECIDERS, QUEUE_DECIDERS, Role
from app.cases.types import DOMAINS, REGISTRY
from app.db import utcnow
from app.errors import Conflict, DomainError, Invalid, NotFound, Unavailable, field_errors
from app.users import User

T = TypeVar("T")
MAX_NAME_LENGTH = 80
MAX_THRESHOLD = Decimal("1e14")  # what the Numeric(18, 4) column holds
# What update_queue accepts; a key left out is left unchanged, None clears (lead, escalation_target,
# business_hours, dual_approval_threshold). members replaces the set; add_members / remove_members change it.
UPDATABLE = ("sla_minutes", "is_default", "case_types", "escalation_target", "lead", "blind_review", "business_hours",
             "dual_approval_threshold", "required_role", "qa_share", "members")
UPDATE_KEYS = frozenset(UPDATABLE) | {"add_members", "remove_members", "move_default"}


def create_queue(
    session: Session,
    name: str,
    domain: str,
    sla_minutes: int,
    *,
    is_default: bool = False,
    move_default: bool = False,
    escalation_target: Queue | str | None = None,
    lead: str | None = None,
    blind_review: bool = False,
    business_hours: Mapping[str, Any] | str | None = None,
    members: Iterable[str] = (),
    case_types: Iterable[str] = (),
    dual_approval_threshold: Decimal | int | str | None = None,
    required_role: str = Role.REVIEWER.value,
    qa_share: float | str = 0.0,
    actor: Actor | None = None,
) -> Queue:
    """Create a queue; flushed with its ``queue.created`` audit event, not committed.
    ``escalation_target`` is a queue or its name, ``lead`` and ``members`` are emails."""
    actor = actor or Actor.system("seed")
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise Invalid(f"a queue name must be 1 to {MAX_NAME_LENGTH} characters",
                      {"name": f"1 to {MAX_NAME_LENGTH} characters"})
    if domain not in DOMAINS:
        raise Invalid(f"unknown domain {domain!r}: choose one of {', '.join(DOMAINS)}",
                      {"domain": f"one of {', '.join(DOMAINS)}"})
    if session.scalar(select(Queue.id).where(Queue.name == name)):
        raise Conflict(f"a queue named {name!r} already exists", {"name": "already taken"})
    values = {
        "sla_minutes": _checked("sla_minutes", _sla_minutes, sla_minutes),
        "escalation_target": _checked("escalation_target", _target, session, escalation_target, None, domain),
        "lead": _checked("lead", _lead, session, lead),
        "blind_review": _flag("blind_review", blind_review),
        "business_hours": parse_business_hours(business_hours),
        "members": _checked("members", _users, session, members, "a member"),
        "case_types": _checked("case_types", _case_types, session, None, domain, case_types),
        "dual_approval_threshold": _threshold(dual_approval_threshold),
        "required_role": _required_role(required_role),
        "qa_share": _qa_share(qa_share),
    }
    previous = _checked("is_default", _default_to_move, session, None, domain, _flag("is_default", is_default),
                        move_default)

    _take_default(session, previous, name, actor)
    queue = Queue(name=name, domain=domain, is_default=is_default, **values)
    session.add(queue)
    session.flush()
    chain.record(session, AuditAction.QUEUE_CREATED, actor,
                 data={"queue_id": queue.id, "name": name, "domain": domain, **settings_of(queue)})
    return queue


def update_queue(session: Session, queue: Queue, changes: Mapping[str, Any], actor: Actor) -> dict[str, list[Any]]:
    """Change some settings of ``queue`` (keys of `UPDATE_KEYS`); flushed with a ``queue.updated``
    audit event, not committed. Returns ``{field: [old, new]}`` of what changed (empty: nothing did,
    and nothing was recorded)."""
    unknown = sorted(set(changes) - UPDATE_KEYS)
    if unknown:
        raise Invalid(f"cannot change {', '.join(unknown)} of a queue (name and domain are fixed)")
    if "members" in changes and ({"add_members", "remove_members"} & set(changes)):
        raise Invalid("give either the whole member list or members to add and remove, not both")
    if changes.get("move_default") and not changes.get("is_default"):
        raise Invalid("moving the default needs is_default (--default)")

    values: dict[str, Any] = {}
    if "sla_minutes" in changes:
        values["sla_minutes"] = _checked("sla_minutes", _sla_minutes, changes["sla_minutes"])
    if "escalation_target" in changes:
        values["escalation_target"] = _checked("escalation_target", _target, session, changes["escalation_target"],
                                               queue, queue.domain)
    if "lead" in changes:
        values["lead"] = _checked("lead", _lead, session, changes["lead"])
    if "blind_review" in changes:
        values["blind_review"] = _flag("blind_review", changes["blind_review"])
    if "business_hours" in changes:
        values["business_hours"] = parse_business_hours(changes["business_hours"])
    if "case_types" in changes:
        values["case_types"] = _checked("case_types", _case_types, session, queue, queue.domain,
                                        changes["case_types"] or ())
    if "dual_approval_threshold" in changes:
        values["dual_approval_threshold"] = _threshold(changes["dual_approval_threshold"])
    if "required_role" in changes:
        values["required_role"] = _required_role(changes["required_role"])
    if "qa_share" in changes:
        values["qa_share"] = _qa_share(changes["qa_share"])
    if {"members", "add_members", "remove_members"} & set(changes):
        values["members"] = _checked("members", _new_members, session, queue, changes)
    previous = None
    if "is_default" in changes:
        values["is_default"] = _flag("is_default", changes["is_default"])
        if values["is_default"] and queue.archived_at is not None:
            raise Invalid(f"queue {queue.name!r} is archived and cannot be the default: unarchive it first",
                          {"is_default": "an archived queue cannot be the default"})
        if values["is_default"] and not queue.is_default:
            previous = _checked("is_default", _default_to_move, session, queue, queue.domain, True,
                                bool(changes.get("move_default")))

    _take_default(session, previous, queue.name, actor)
    return _changed(session, queue, values, AuditAction.QUEUE_UPDATED, actor)


def archive_queue(session: Session, queue: Queue, actor: Actor) -> dict[str, list[Any]]:
    """Stop routing new cases to ``queue`` (flushed with ``queue.archived``, not committed); its
    cases and history stay. Already archived: nothing changes (an empty diff)."""
    if queue.archived_at is None and queue.is_default:
        raise Conflict(f"queue {queue.name!r} is the default of the {queue.domain} domain and cannot be archived: "
                       f"make another {queue.domain} queue the default first (it takes over with --move-default)",
                       slug="default-queue")
    escalating = sorted(session.scalars(select(Queue.name).where(Queue.escalation_target_id == queue.id,
                                                                 Queue.archived_at.is_(None))))
    if queue.archived_at is None and escalating:
        raise Conflict(f"queue {queue.name!r} cannot be archived while {', '.join(escalating)} escalate(s) to it: "
                       "change their escalation target first", slug="escalation-target")
    return _changed(session, queue, {"archived_at": queue.archived_at or utcnow()}, AuditAction.QUEUE_ARCHIVED,
                    actor)


def unarchive_queue(session: Session, queue: Queue, actor: Actor) -> dict[str, list[Any]]:
    """Route new cases to ``queue`` again (flushed with ``queue.unarchived``, not committed)."""
    return _changed(session, queue, {"archived_at": None}, AuditAction.QUEUE_UNARCHIVED, actor)


def _changed(session: Session, queue: Queue, values: Mapping[str, Any], action: AuditAction,
             actor: Actor) -> dict[str, list[Any]]:
    """Set ``values`` on the queue and record ``{field: [old, new]}`` of what changed (nothing
    recorded when nothing did)."""
    before = settings_of(queue)
    for field, value in values.items():
        setattr(queue, field, value)
    after = settings_of(queue)
    diff = {field: [old, after[field]] for field, old in before.items() if old != after[field]}
    if not diff:
        return diff
    session.flush()
    chain.record(session, action, actor, data={"queue_id": queue.id, "name": queue.name, "changes": diff})
    return diff


def list_queues(session: Session, domain: str | None = None) -> list[Queue]:
    """Every queue (of ``domain``), by domain then name, with lead, target and members loaded."""
    stmt = (select(Queue).options(selectinload(Queue.members), selectinload(Queue.lead),
                                  selectinload(Queue.escalation_target))
            .order_by(Queue.domain, Queue.name))
    if domain is not None:
        stmt = stmt.where(Queue.domain == domain)
    return list(session.scalars(stmt))


def queue_named(session: Session, name: str) -> Queue:
    queue = session.scalar(select(Queue).where(Queue.name == name.strip()))
    if queue is None:
        raise NotFound(f"no queue named {name.strip()!r}")
    return queue


def settings_of(queue: Queue) -> dict[str, Any]:
    """The queue's settings as JSON values (queues by name, users by email), as audit events record them."""
    return {
        "sla_minutes": queue.sla_minutes,
        "is_default": queue.is_default,
        "case_types": list(queue.case_types or []),
        "escalation_target": queue.escalation_target.name if queue.escalation_target else None,
        "lead": queue.lead.email if queue.lead else None,
        "blind_review": queue.blind_review,
        "business_hours": queue.business_hours,
        "dual_approval_threshold": amount_text(queue.dual_approval_threshold),
        "required_role": queue.required_role,
        "qa_share": queue.qa_share,
        "members": sorted(user.email for user in queue.members),
        "archived": queue.archived_at is not None,
    }


def describe(queue: Queue) -> dict[str, Any]:
    """What ``queues list --json`` prints of a queue."""
    hours = business_hours_of(queue)
    return {"name": queue.name, "domain": queue.domain, **settings_of(queue),
            "business_hours_summary": hours.summary() if hours else None, "member_count": len(queue.members)}


def route(session: Session, domain: str, case_type: str) -> Queue | None:
    """The queue a new case goes to: the one its case type is routed to, else its domain's default
    (else the domain's oldest queue), archived queues left out; None when no queue receives it."""
    queues = list(session.scalars(select(Queue).where(Queue.domain == domain, Queue.archived_at.is_(None))
                                  .order_by(Queue.is_default.desc(), Queue.id)))
    return next((q for q in queues if case_type in (q.case_types or ())), queues[0] if queues else None)


def receiving(session: Session, domain: str, case_type: str) -> Queue:
    """`route`, refusing (Unavailable) when no queue receives the case: a case is never accepted into nowhere."""
    queue = route(session, domain, case_type)
    if queue is None:
        raise Unavailable(f"no queue receives {domain} cases of type {case_type}; an admin must create one: "
                          f"flask --app wsgi queues create --name {domain} --domain {domain} --sla-minutes 240 "
                          "--default, or at /admin/queues",
                          slug="no-queue", title="No queue configured", missing={"domain": domain,
                                                                                 "case_type": case_type})
    return queue


def domains_without_default(session: Session) -> list[str]:
    """The domains no (non-archived) default queue serves: intake refuses some of their cases."""
    served = set(session.scalars(select(Queue.domain).where(Queue.is_default.is_(True),
                                                            Queue.archived_at.is_(None))))
    return [domain for domain in DOMAINS if domain not in served]


def _case_types(session: Session, queue: Queue | None, domain: str, names: Iterable[str]) -> list[str]:
    """Case types of ``domain``, each routed to no other queue: sorted, without repeats."""
    chosen = sorted({name.strip() for name in names if name.strip()})
    known = sorted(name for of_domain, name in REGISTRY if of_domain == domain)
    unknown = [name for name in chosen if name not in known]
    if unknown:
        raise Invalid(f"unknown case type(s) {', '.join(unknown)} for the {domain} domain: choose from "
                      f"{', '.join(known)}")
    for other in session.scalars(select(Queue).where(Queue.domain == domain)):
        taken = sorted(set(chosen) & set(other.case_types or ()))
        if other is not queue and taken:
            raise Conflict(f"{', '.join(taken)} already routed to queue {other.name!r}: remove it there first")
    return chosen


def business_hours_of(queue: Queue) -> BusinessHours | None:
    """The queue's business hours, or None when it has none (or they no longer validate)."""
    if not queue.business_hours:
        return None
    try:
        return BusinessHours.model_validate(queue.business_hours)
    except ValidationError:
        return None


def parse_business_hours(value: Mapping[str, Any] | str | None) -> dict[str, Any] | None:
    """Business hours (a mapping, or its JSON text) validated and normalised for storage; None or an
    empty text clears them. Refusals name the field at fault (``business_hours.days[0]``)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise Invalid(f"business_hours is not valid JSON: {exc}",
                          {"business_hours": f"not valid JSON: {exc}"}) from None
    if not isinstance(value, Mapping):
        raise Invalid("business_hours must be a JSON object such as "
                      '{"timezone": "Europe/London", "days": [0, 1, 2, 3, 4], "start": "09:00", "end": "17:30"}',
                      {"business_hours": "must be an object"})
    try:
        return BusinessHours.model_validate(dict(value)).stored()
    except ValidationError as exc:
        errors = [{**e, "message": e["message"].removeprefix("Value error, ")}
                  for e in field_errors(exc, prefix=("business_hours",))]
        raise Invalid("invalid business hours: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors),
                      errors) from None


# --- the rules ------------------------------------------------------------------------------------


def _checked(field: str, check: Callable[..., T], *args: Any) -> T:
    """``check(*args)``, a refusal of it naming ``field`` (where the admin form shows it)."""
    try:
        return check(*args)
    except DomainError as exc:
        exc.errors = exc.errors or [{"field": field, "message": exc.message}]
        raise


def _sla_minutes(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise Invalid(f"sla_minutes must be a positive whole number of minutes (got {value!r})")
    return value


def _threshold(value: Any) -> Decimal | None:
    """A positive amount with at most 4 decimals, or None (empty: the global thresholds apply)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except (InvalidOperation, TypeError, ValueError):
        amount = None
    if isinstance(value, bool | float) or amount is None or not amount.is_finite() or not 0 < amount < MAX_THRESHOLD \
            or amount != amount.quantize(Decimal("0.0001")):
        raise Invalid(f"dual_approval_threshold must be a positive amount with at most 4 decimals (got {value!r})",
                      {"dual_approval_threshold": "a positive amount, such as 250000"})
    return amount


def amount_text(amount: Decimal | None) -> str | None:
    """250000.0000 → ``"250000"``, 1500.5 → ``"1500.5"``."""
    if amount is None:
        return None
    text = format(amount, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _required_role(value: Any) -> str:
    if value not in QUEUE_DECIDERS:
        raise Invalid(f"required_role must be one of {', '.join(QUEUE_DECIDERS)} (got {value!r})",
                      {"required_role": f"one of {', '.join(QUEUE_DECIDERS)}"})
    return str(value)


def _qa_share(value: Any) -> float:
    """A share from 0 to 1 (a number, or its text)."""
    try:
        share = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        share = None
    if isinstance(value, bool) or share is None or not 0 <= share <= 1:
        raise Invalid(f"qa_share must be a number from 0 to 1 (got {value!r})",
                      {"qa_share": "a number from 0 (no QA sample) to 1 (every approval)"})
    return share


def _flag(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"{field} must be true or false (got {value!r})")
    return value


def _user(session: Session, email: str, what: str) -> User:
    email = email.strip().lower()
    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        raise NotFound(f"no user with email {email} (for {what})")
    if not user.active:
        raise Invalid(f"user {email} is deactivated and cannot be {what}")
    return user


def _users(session: Session, emails: Iterable[str], what: str) -> list[User]:
    found: dict[str, User] = {}
    for email in emails:
        if email.strip():
            user = _user(session, email, what)
            found[user.email] = user
    return list(found.values())


def _lead(session: Session, email: str | None) -> User | None:
    if email is None or not email.strip():
        return None
    user = _user(session, email, "the lead")
    if user.role not in DECIDERS:
        raise Invalid(f"the lead must be a reviewer or senior reviewer; {user.email} is {user.role}")
    return user


def _new_members(session: Session, queue: Queue, changes: Mapping[str, Any]) -> list[User]:
    current = {user.email: user for user in queue.members}
    if "members" in changes:
        wanted = {email.strip().lower() for email in changes["members"] or () if email.strip()}
        kept = {email: user for email, user in current.items() if email in wanted}
        added = _users(session, sorted(wanted - set(kept)), "a member")
        return [*kept.values(), *added]
    adding = {email.strip().lower() for email in changes.get("add_members") or () if email.strip()}
    removing = {email.strip().lower() for email in changes.get("remove_members") or () if email.strip()}
    both = sorted(adding & removing)
    if both:
        raise Invalid(f"both added and removed: {', '.join(both)}")
    strangers = sorted(removing - set(current))
    if strangers:
        raise Invalid(f"not a member of queue {queue.name!r}: {', '.join(strangers)}")
    added = _users(session, sorted(adding - set(current)), "a member")
    return [user for email, user in current.items() if email not in removing] + added


def _target(session: Session, value: Queue | str | None, queue: Queue | None, domain: str) -> Queue | None:
    """The escalation target: another queue of ``domain`` that does not lead back to ``queue``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    target = value if isinstance(value, Queue) else queue_named(session, value)
    if target is queue:
        raise Invalid(f"queue {target.name!r} cannot escalate to itself")
    if target.archived_at is not None and (queue is None or target is not queue.escalation_target):
        raise Invalid(f"escalation target {target.name!r} is archived")
    if target.domain != domain:
        raise Invalid(f"escalation target {target.name!r} is in domain {target.domain!r}, not {domain!r}")
    path, step = [target], target.escalation_target
    while step is not None and step not in path:
        if step is queue:
            names = [queue.name, *(q.name for q in path), queue.name]
            raise Conflict(f"escalation cycle: {' → '.join(names)}")
        path.append(step)
        step = step.escalation_target
    return target


def _default_to_move(session: Session, queue: Queue | None, domain: str, is_default: bool,
                     move_default: bool) -> Queue | None:
    """The other default queue of ``domain`` that ``queue`` takes over from (with ``move_default``)."""
    if move_default and not is_default:
        raise Invalid("moving the default needs is_default (--default)")
    if not is_default:
        return None
    stmt = select(Queue).where(Queue.domain == domain, Queue.is_default.is_(True))
    if queue is not None:
        stmt = stmt.where(Queue.id != queue.id)
    current = session.scalar(stmt.order_by(Queue.id).limit(1))
    if current is not None and not move_default:
        raise Conflict(f"domain {domain!r} already has a default queue ({current.name!r}); "
                       "move it explicitly with --move-default")
    return current


def _take_default(session: Session, previous: Queue | None, successor: str, actor: Actor) -> None:
    """The previous default stops being one, audited on its own."""
    if previous is None:
        return
    previous.is_default = False
    session.flush()
    chain.record(session, AuditAction.QUEUE_UPDATED, actor, data={
        "queue_id": previous.id, "name": previous.name, "changes": {"is_default": [True, False]},
        "default_moved_to": successor})
