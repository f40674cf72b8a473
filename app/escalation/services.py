"""Escalation rules: managing them (ordered, versioned, audited) and applying them to cases.

Rules are evaluated in order at intake, after each recommendation and by the periodic sweep;
every rule whose conditions all hold fires, and each fires at most once per case and rule
version: a firing is a ``rule_firings`` row (unique per case, rule and version), with its
``rule.fired`` audit event as evidence. The built-in rules (``rules.BUILTIN_RULES``) are part of
the code: they run after each recommendation, before the stored ones, once for each recommendation,
with a ``rule.fired`` event marked ``builtin`` and no firing row. Functions flush; callers commit.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Protocol

import yaml
from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from app.actors import Actor
from app.audit import chain
from app.audit.actions import AuditAction
from app.cases import lifecycle
from app.cases.models import Case, Queue, Recommendation, Status
from app.cases.permissions import SEE_ALL, Role
from app.db import canonical_json, sqlite_write_lock, utcnow
from app.escalation import rules as schema
from app.escalation import sla
from app.escalation.models import EscalationRule, RuleFiring
from app.escalation.rules import Catalog, FieldError, RuleInvalid, RuleSpec
from app.notifications.services import notify
from app.oversight import calibration
from app.users import User

log = logging.getLogger(__name__)

RULES_ACTOR = Actor.system("rules")
TRIGGERS = ("intake", "recommendation", "sweep")
UNDECIDED = tuple(s.value for s in lifecycle.BEFORE_APPROVAL)  # where rules may still act
NOT_YET_ANALYSED = (Status.RECEIVED.value, Status.ANALYZING.value)


# --- reading and validating --------------------------------------------------------------------------


def catalog(session: Session) -> Catalog:
    return Catalog(queues={name: domain for name, domain in session.execute(select(Queue.name, Queue.domain))},
                   users=frozenset(session.scalars(select(User.email))))


def parse_text(source: str, max_length: int = schema.MAX_TEXT_LENGTH) -> Any:
    """YAML (or JSON, which is YAML) text → data; RuleInvalid with the line and column of a syntax error."""
    if len(source) > max_length:
        raise RuleInvalid([FieldError("", f"the text is longer than {max_length} characters")])
    try:
        return yaml.safe_load(source)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise RuleInvalid([FieldError("", f"not valid YAML or JSON: {where}{exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise RuleInvalid([FieldError("", f"not valid YAML or JSON: {exc}")]) from None


def ordered_rules(session: Session) -> list[EscalationRule]:
    return list(session.scalars(select(EscalationRule).order_by(EscalationRule.position, EscalationRule.id)))


def document_of(rule: EscalationRule) -> dict[str, Any]:
    """The rule as an admin writes it, and as ``rules export`` prints it."""
    return {"name": rule.name, "enabled": rule.enabled, "conditions": rule.conditions, "actions": rule.actions}


def yaml_of(documents: dict[str, Any] | list[dict[str, Any]]) -> str:
    return yaml.safe_dump(documents, sort_keys=False, allow_unicode=True)


# --- changing rules ----------------------------------------------------------------------------------


def _check_name(session: Session, name: str, rule_id: int | None = None) -> None:
    if name in schema.BUILTIN_NAMES:
        raise RuleInvalid([FieldError("name", f"{name!r} is the name of a built-in rule")])
    clash = session.scalar(select(EscalationRule.id).where(EscalationRule.name == name))
    if clash is not None and clash != rule_id:
        raise RuleInvalid([FieldError("name", f"a rule named {name!r} already exists")])


def _audit(session: Session, action: AuditAction, rule: EscalationRule, actor: Actor, **extra: Any) -> None:
    chain.record(session, action, actor, data={"rule_id": rule.id, "name": rule.name, "version": rule.version,
                                               "position": rule.position, **extra})


def create_rule(session: Session, spec: RuleSpec, actor: Actor) -> EscalationRule:
    _check_name(session, spec.name)
    position = (session.scalar(select(func.max(EscalationRule.position))) or 0) + 1
    document = spec.to_document()
    rule = EscalationRule(name=spec.name, position=position, version=1, enabled=spec.enabled,
                          conditions=document["conditions"], actions=document["actions"])
    session.add(rule)
    session.flush()
    _audit(session, AuditAction.RULE_CREATED, rule, actor, enabled=rule.enabled, conditions=rule.conditions,
           actions=rule.actions)
    return rule


def _content(document: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in document.items() if key != "enabled"}


def update_rule(session: Session, rule: EscalationRule, spec: RuleSpec, actor: Actor) -> bool:
    """Apply an edited document; a change of name, conditions or actions bumps the version
    (so the rule may fire again on cases it fired on). Returns whether anything changed."""
    _check_name(session, spec.name, rule.id)
    document = spec.to_document()
    if document == document_of(rule):
        return False
    if _content(document) != _content(document_of(rule)):
        rule.version += 1
    rule.name, rule.enabled = spec.name, spec.enabled
    rule.conditions, rule.actions = document["conditions"], document["actions"]
    session.flush()
    _audit(session, AuditAction.RULE_UPDATED, rule, actor, enabled=rule.enabled, conditions=rule.conditions,
           actions=rule.actions)
    return True


def save_rule(session: Session, source: str, actor: Actor, rule: EscalationRule | None = None) -> EscalationRule:
    """Create a rule from YAML/JSON text, or replace ``rule`` with it; RuleInvalid names each field at fault."""
    spec = schema.validate(parse_text(source), catalog(session))
    if rule is None:
        return create_rule(session, spec, actor)
    update_rule(session, rule, spec, actor)
    return rule


def set_enabled(session: Session, rule: EscalationRule, enabled: bool, actor: Actor) -> None:
    if rule.enabled == enabled:
        return
    rule.enabled = enabled
    session.flush()
    _audit(session, AuditAction.RULE_ENABLED if enabled else AuditAction.RULE_DISABLED, rule, actor)


def move_rule(session: Session, rule: EscalationRule, offset: int, actor: Actor) -> None:
    """Move the rule ``offset`` places (-1: up, earlier; +1: down) and number the rules 1..n."""
    ordered = ordered_rules(session)
    index = ordered.index(rule)
    target = min(max(index + offset, 0), len(ordered) - 1)
    if target == index:
        return
    ordered.insert(target, ordered.pop(index))
    _renumber(session, ordered)
    _audit(session, AuditAction.RULE_MOVED, rule, actor)


def _renumber(session: Session, ordered: list[EscalationRule]) -> None:
    for position, each in enumerate(ordered, start=1):
        each.position = position
    session.flush()


@dataclass(frozen=True)
class Loaded:
    name: str
    outcome: str  # "created", "updated to version N", "unchanged"


def validate_file(session: Session, data: Any) -> list[RuleSpec]:
    """Every rule of a rules file (a list, or a mapping with ``rules``), all valid, or RuleInvalid
    listing every problem with the index and name of its rule."""
    documents = data.get("rules") if isinstance(data, dict) else data
    if not isinstance(documents, list) or not documents:
        raise RuleInvalid([FieldError("", "a rules file is a non-empty list of rules (or a mapping with 'rules')")])
    known, specs, errors, seen = catalog(session), [], [], set()
    for i, document in enumerate(documents):
        name = document.get("name") if isinstance(document, dict) else None
        where = f"rules[{i}]" + (f" ({name})" if name else "")
        try:
            specs.append(schema.validate(document, known))
        except RuleInvalid as exc:
            errors += [FieldError(f"{where}.{e.field}" if e.field else where, e.message) for e in exc.errors]
        if name in seen:
            errors.append(FieldError(f"{where}.name", f"{name!r} appears more than once in the file"))
        seen.add(name)
    if errors:
        raise RuleInvalid(errors)
    return specs


def load_rules(session: Session, specs: list[RuleSpec], actor: Actor,
               progress: Callable[[int, int, Loaded], None] = lambda *_: None) -> list[Loaded]:
    """Upsert validated rules by name, in the file's order, ahead of the rules the file does not
    name (which keep their order). Flushed together: the caller commits all or nothing."""
    by_name = {rule.name: rule for rule in ordered_rules(session)}
    results = []
    for spec in specs:
        existing = by_name.get(spec.name)
        if existing is None:
            create_rule(session, spec, actor)
            result = Loaded(spec.name, "created")
        else:
            changed = update_rule(session, existing, spec, actor)
            result = Loaded(spec.name, f"updated to version {existing.version}" if changed else "unchanged")
        results.append(result)
        progress(len(results), len(specs), result)
    named = {spec.name for spec in specs}
    ordered = ordered_rules(session)
    _renumber(session, [r for r in ordered if r.name in named] + [r for r in ordered if r.name not in named])
    return results


# --- applying rules to a case ------------------------------------------------------------------------


@dataclass(frozen=True)
class ActiveRule:
    id: int | None  # None: a built-in rule (schema.BUILTIN_RULES)
    name: str
    version: int
    spec: RuleSpec


@dataclass(frozen=True)
class Firing:
    rule_id: int | None
    name: str
    version: int
    actions: list[dict[str, Any]]


@lru_cache(maxsize=512)
def _spec(stored: str) -> RuleSpec | None:
    try:
        return schema.validate(json.loads(stored))
    except RuleInvalid as exc:
        log.error("stored escalation rule is invalid and is skipped: %s", exc)
        return None


def active_rules(session: Session) -> list[ActiveRule]:
    """The enabled rules, in order (each parsed once per version)."""
    found = []
    for rule in ordered_rules(session):
        spec = _spec(canonical_json(document_of(rule))) if rule.enabled else None
        if spec is not None:
            found.append(ActiveRule(rule.id, rule.name, rule.version, spec))
    return found


def apply_rules(session: Session, case: Case, trigger: str, *, now: datetime | None = None,
                active: list[ActiveRule] | None = None) -> list[Firing]:
    """Evaluate the enabled rules (``active``, or read now) on ``case`` (already in the session) and
    take any SLA step due. (At intake the SLA clock started with the case: `sla.start_clock`.)

    At intake the case is new in this transaction: no other transaction can see it, so it needs
    no lock, and no rule has fired on it yet."""
    if trigger not in TRIGGERS:
        raise ValueError(f"unknown trigger {trigger!r}; one of {', '.join(TRIGGERS)}")
    now = now or utcnow()
    if trigger != "intake":
        _lock(session, case.id)
    fired = set() if trigger == "intake" else _fired(session, case.id)
    rec = _recommendation(session, case)
    builtin = _apply_builtin(session, case, rec, now) if trigger == "recommendation" else []
    rules = active_rules(session) if active is None else active
    return builtin + _apply(session, case, rec, rules, trigger, now, fired)


BUILTIN = tuple(ActiveRule(None, spec.name, 1, spec) for spec in schema.BUILTIN_RULES)


def _apply_builtin(session: Session, case: Case, rec: Row[Any] | None, now: datetime) -> list[Firing]:
    """The built-in rules look at the recommendation just stored: they fire once for each one."""
    return [_act(session, case, rule, "recommendation", now) for rule in BUILTIN
            if schema.matches(rule.spec.conditions, _facts(session, case, rec, now))]


def _lock(session: Session, case_id: int) -> None:
    """Serialise evaluations of one case, so two never both see a rule as not yet fired (the
    unique key of rule_firings is the backstop: see `_fire`)."""
    if not sqlite_write_lock(session):
        session.execute(select(Case.id).where(Case.id == case_id).with_for_update())


def _would_fire(session: Session, case: Case, active: list[ActiveRule], now: datetime) -> bool:
    """Whether any rule fires on the case as it is (if none does, nothing changes, so none can)."""
    done, rec = _fired(session, case.id), _recommendation(session, case)
    return any((rule.id, rule.version) not in done and schema.matches(rule.spec.conditions,
                                                                      _facts(session, case, rec, now))
               for rule in active)


def _apply(session: Session, case: Case, rec: Row[Any] | None, active: list[ActiveRule], trigger: str,
           now: datetime, done: set[tuple[int, int]]) -> list[Firing]:
    firings = []
    for rule in active:  # the facts are read afresh for each rule: an earlier one may have changed the case
        if (rule.id, rule.version) in done:
            continue
        if schema.matches(rule.spec.conditions, _facts(session, case, rec, now)):
            firings.append(_fire(session, case, rule, trigger, now))
    sla.check_case(session, case, now)
    return firings


def _fired(session: Session, case_id: int) -> set[tuple[int, int]]:
    """(rule id, version) of every rule that fired on the case."""
    rows = session.execute(select(RuleFiring.rule_id, RuleFiring.rule_version).where(RuleFiring.case_id == case_id))
    return {(rule_id, version) for rule_id, version in rows}


def _recommendation(session: Session, case: Case) -> Row[Any] | None:
    if case.recommendation_id is None:
        return None
    return session.execute(select(Recommendation.confidence, Recommendation.flags, Recommendation.model)
                           .where(Recommendation.id == case.recommendation_id)).first()


def _facts(session: Session, case: Case, rec: Row[Any] | None, now: datetime) -> schema.Facts:
    def sla_reached(fraction: float) -> bool:
        return sla.running(case) and sla.past(case.sla_due_at, sla.window_of(case), fraction,
                                              sla.hours_of(case.queue), now)

    return schema.Facts(
        domain=case.domain, case_type=case.case_type, amount=case.amount, currency=case.currency,
        risk_score=case.risk_score, confidence=rec.confidence if rec else None,
        flags=frozenset(rec.flags if rec else ()), status=case.status, reopen_count=case.reopen_count,
        ai_failed=case.recommendation_id is None and case.status not in NOT_YET_ANALYSED,
        age_minutes=(now - case.created_at).total_seconds() / 60, sla_reached=sla_reached,
        calibrated_agreement=lambda: None if rec is None else calibration.agreement_for(
            session, case.case_type, rec.model, float(rec.confidence)).rate,
    )


@dataclass
class _Firing:
    session: Session
    case: Case
    rule: ActiveRule
    now: datetime
    audit: dict[str, Any] = field(default_factory=dict)  # extra keys of the rule.fired event


def _fire(session: Session, case: Case, rule: ActiveRule, trigger: str, now: datetime) -> Firing:
    # The firing is recorded first, so a second firing of this rule version on this case fails on
    # the unique key before any action applies. The per-case lock (`_lock`) is what keeps two
    # evaluations from both trying; should one ever get past it, the IntegrityError rolls the
    # whole transaction back (defence in depth, not a path that is handled).
    session.add(RuleFiring(case_id=case.id, rule_id=rule.id, rule_version=rule.version, fired_at=now,
                           trigger=trigger))
    session.flush()
    return _act(session, case, rule, trigger, now)


def _act(session: Session, case: Case, rule: ActiveRule, trigger: str, now: datetime) -> Firing:
    """Apply the rule's actions in order and audit them."""
    firing = _Firing(session, case, rule, now)
    applied = [{action.name: APPLY[action.name](firing, action.params)} for action in rule.spec.parsed_actions]
    builtin = {"builtin": True} if rule.id is None else {}
    chain.record(session, AuditAction.RULE_FIRED, RULES_ACTOR, case_id=case.id, data={
        "rule_id": rule.id, "rule": rule.name, "version": rule.version, "trigger": trigger, "actions": applied,
        **builtin, **firing.audit})
    return Firing(rule.id, rule.name, rule.version, applied)


def _route(f: _Firing, params: schema.RouteToQueue) -> dict[str, Any]:
    case = f.case
    target = f.session.scalar(select(Queue).where(Queue.name == params.queue))
    if target is None or target.archived_at is not None or target.id == case.queue_id:  # archived: receives nothing
        return {"queue": params.queue, "moved": False}
    source = case.queue.name if case.queue else None
    case.queue = target
    sla.refresh(case)  # the target's business hours (the case keeps its window and due time)
    if case.status in sla.ESCALATABLE:  # in an inbox: the lifecycle moves it to the target's inbox
        case.assignee_id = None
        case.claim_expires_at = None
        f.session.expire(case, ["recommendation"])  # see sla._escalate
        lifecycle.transition(f.session, case, "escalated", RULES_ACTOR, data={
            "reason": "rule", "rule": f.rule.name, "from_queue": source, "to_queue": target.name})
    return {"queue": target.name, "from_queue": source, "moved": True}


def _priority(f: _Firing, params: schema.SetPriority) -> dict[str, Any]:
    """Raises the priority to at least the given level; never lowers it."""
    changed = f.case.priority < params.level
    if changed:
        f.case.priority = params.level
    return {"priority": f.case.priority_label, "changed": changed}


def _second_approval(role: str) -> Callable[[_Firing, Any], dict[str, Any]]:
    def apply(f: _Firing, params: Any) -> dict[str, Any]:
        f.case.requires_dual_approval = True
        f.case.second_approval_role = getattr(params, "role", role)
        return {"second_approval_role": f.case.second_approval_role}

    return apply


def _set_sla(f: _Firing, params: schema.SetSla) -> dict[str, Any]:
    sla.set_window(f.case, params.minutes, f.now)
    f.audit[sla.WINDOW_KEY] = params.minutes
    return {"minutes": params.minutes, "due": f.case.sla_due_at.isoformat()}


def _notify(f: _Firing, params: schema.Notify) -> dict[str, Any]:
    case = f.case
    rows = notify(f.session, _recipients(f.session, case, params), "rule", case,
                  f"Case {case.id} “{case.title}”: {params.message}")
    return {"user_ids": [row.user_id for row in rows]}


def _recipients(session: Session, case: Case, params: schema.Notify) -> Iterable[User | None]:
    """queue_lead / queue_members of the case's queue; a user by email; a role: its members of the
    case's queue (admins and auditors work no queue: every one of them)."""
    queue = case.queue
    if params.queue_lead:
        return [queue.lead if queue else None]
    if params.queue_members:
        return list(queue.members) if queue else []
    if params.user:
        return session.scalars(select(User).where(User.email == params.user)).all()
    if params.role in SEE_ALL:  # they work no queue: every one of them
        return session.scalars(select(User).where(User.role == params.role)).all()
    return [member for member in (queue.members if queue else []) if member.role == params.role]


APPLY: dict[str, Callable[[_Firing, Any], dict[str, Any]]] = {
    "route_to_queue": _route,
    "set_priority": _priority,
    "require_dual_approval": _second_approval(schema.SECOND_APPROVERS[0]),
    # Until cases can require a senior first reviewer, a senior reviewer must give the second approval.
    "require_senior_reviewer": _second_approval(Role.SENIOR_REVIEWER.value),
    "set_sla": _set_sla,
    "notify": _notify,
}


# --- the periodic sweep ------------------------------------------------------------------------------


@dataclass
class RulesSweepReport:
    evaluated: int = 0
    fired: int = 0


UPDATED = "rules:updated"


class Marks(Protocol):
    """Where each line stood at the last sweep (a dict, or Redis in the jobs)."""

    def get(self, key: str) -> datetime | None: ...

    def __setitem__(self, key: str, value: datetime) -> None: ...


def _candidates(session: Session, active: list[ActiveRule], now: datetime, marks: Marks, overlap: timedelta,
                batch: int) -> tuple[set[int], dict[str, datetime]]:
    """The open cases that changed, or crossed an age or SLA line of a rule, since the last sweep,
    with each source's new mark. After the rules themselves changed: every open case, once."""
    ruleset = "rules:set:" + hashlib.sha256(canonical_json(sorted((r.id, r.version) for r in active)).encode()
                                            ).hexdigest()[:16]
    rules_changed = marks.get(ruleset) is None
    lines: list[tuple[str, Any, datetime, tuple[Any, ...]]] = [(UPDATED, Case.updated_at, now, ())]
    for minutes in sorted({r.spec.conditions.age_minutes_gte for r in active} - {None}):
        lines.append((f"rules:age:{minutes}", Case.created_at, now - timedelta(minutes=minutes), ()))
    fractions = sorted({r.spec.conditions.sla_fraction_gte for r in active} - {None})
    if fractions:
        in_use = sla.windows_in_use(session)
        for queue in session.scalars(select(Queue).where(Queue.id.in_(in_use)).order_by(Queue.id)):
            hours = sla.hours_of(queue)
            for window in sorted(in_use[queue.id]):
                where = (*sla.running_in(queue.id), Case.sla_window_minutes == window)
                lines += [(f"rules:sla:{queue.id}:{window}:{x}", Case.sla_due_at,
                           sla.add_business(now, window * (1 - x), hours), where) for x in fractions]
    ids: set[int] = set()
    for key, column, line, where in lines:
        mark = None if rules_changed and key == UPDATED else marks.get(key)
        low = mark - overlap if mark is not None else None
        for rows in sla.pages(session, column, low, line, Case.status.in_(UNDECIDED), *where, batch=batch):
            ids.update(row[0] for row in rows)
    return ids, {ruleset: now, **{key: line for key, _, line, _ in lines}}


def sweep(session: Session, now: datetime, marks: Marks, commit: Callable[[], None], *,
          overlap: timedelta, batch: int = 500) -> RulesSweepReport:
    """Evaluate the rules on the open cases that changed or crossed a time line since the last
    sweep; ``commit`` after each case. The marks move only once every candidate is done."""
    report = RulesSweepReport()
    active = active_rules(session)
    if not active:
        return report
    ids, new_marks = _candidates(session, active, now, marks, overlap, batch)
    for case_id in sorted(ids):
        case = session.get(Case, case_id, populate_existing=True)
        if case is None or case.status not in UNDECIDED:
            continue
        report.evaluated += 1
        if _would_fire(session, case, active, now):  # read first; lock only the cases that need it
            _lock(session, case_id)
            session.refresh(case)
            fired = _apply(session, case, _recommendation(session, case), active, "sweep", now,
                           _fired(session, case_id))
            report.fired += len(fired)
        commit()
    for key, line in new_marks.items():
        marks[key] = line
    return report

