"""The schema of an escalation rule and the truth of its conditions.

A rule document, as an admin writes it (YAML or JSON) and as ``rules export`` prints it::

    name: large-payments
    enabled: true                # optional, default true
    conditions:                  # every condition given must hold
      domain: finance
      amount_gte: 250000
      currency: EUR
    actions:                     # applied in order; at least one
      - require_dual_approval: {role: senior_reviewer}
      - set_priority: {priority: urgent}

Validation refuses unknown keys, unknown queues, roles, priorities and users, and empty
lists, with the dotted path of the field at fault (``actions[0].route_to_queue.queue``).
Queue and user names are checked against a `Catalog` passed as the validation context;
stored rules are re-read without one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from app.cases import lifecycle
from app.cases.models import Priority, Status
from app.cases.permissions import Role
from app.cases.types import DOMAINS, REGISTRY

PriorityName = Literal[tuple(p.label for p in Priority)]  # type: ignore[valid-type]
RoleName = Literal[tuple(r.value for r in Role)]  # type: ignore[valid-type]
StatusName = Literal[tuple(s.value for s in Status)]  # type: ignore[valid-type]
# Who may give a second approval is the lifecycle's rule: a rule can only ask for one of them.
SECOND_APPROVERS = tuple(sorted(lifecycle.TRANSITIONS["second_approval"].roles))
CASE_TYPES = tuple(sorted({name for _, name in REGISTRY}))
MAX_TEXT_LENGTH = 20_000
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=120)]
Message = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=400)]
Flag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60)]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


@dataclass(frozen=True)
class Catalog:
    """What a rule may name: queues (name → domain) and user emails."""

    queues: dict[str, str] = field(default_factory=dict)
    users: frozenset[str] = frozenset()


def _catalog(info: ValidationInfo) -> Catalog | None:
    return info.context if isinstance(info.context, Catalog) else None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- conditions ------------------------------------------------------------------------------------


class Conditions(_Strict):
    domain: Literal[DOMAINS] | None = None  # type: ignore[valid-type]
    case_type: Literal[CASE_TYPES] | None = None  # type: ignore[valid-type]
    amount_gte: Annotated[Decimal, Field(ge=0, max_digits=18, decimal_places=4, allow_inf_nan=False)] | None = None
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None
    risk_gte: Fraction | None = None
    confidence_lt: Fraction | None = None
    # the agreement rate calibrated from reviewers' decisions (app.oversight.calibration); a case
    # whose model lacks enough decided cases has no rate, and the condition does not hold
    calibrated_agreement_below: Fraction | None = None
    flags_any: Annotated[list[Flag], Field(min_length=1)] | None = None
    ai_failed: bool | None = None
    status_in: Annotated[list[StatusName], Field(min_length=1)] | None = None
    age_minutes_gte: Annotated[int, Field(gt=0, le=10 * 366 * 24 * 60)] | None = None
    sla_fraction_gte: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] | None = None
    reopen_count_gte: Annotated[int, Field(ge=1)] | None = None

    @model_validator(mode="after")
    def _coherent(self) -> Conditions:
        if not self.model_dump(exclude_none=True):
            raise ValueError("give at least one condition (a rule without conditions would match every case)")
        if self.amount_gte is not None and self.currency is None:
            raise ValueError("amount_gte needs currency: amounts in different currencies are not comparable")
        home = next((d for d, name in REGISTRY if name == self.case_type), None)
        if self.domain and home and home != self.domain:
            raise ValueError(f"case_type {self.case_type!r} belongs to domain {home!r}, not {self.domain!r}")
        return self


@dataclass(frozen=True)
class Facts:
    """What the conditions look at, read from a case at one moment."""

    domain: str
    case_type: str
    amount: Decimal | None
    currency: str | None
    risk_score: float | None
    confidence: float | None
    flags: frozenset[str]
    ai_failed: bool
    status: str
    age_minutes: float
    reopen_count: int
    sla_reached: Callable[[float], bool]  # whether the SLA clock has used this fraction of its window
    # read only when a rule asks: the calibrated agreement rate of the recommendation, None when unknown
    calibrated_agreement: Callable[[], float | None] = lambda: None


def _amount_holds(c: Conditions, f: Facts) -> bool:
    return f.amount is not None and f.currency == c.currency and f.amount >= c.amount_gte


def _below(value: float | None, limit: float) -> bool:
    return value is not None and value < limit


# Each condition given must hold; a condition left out (None) is not checked.
CHECKS: dict[str, Callable[[Conditions, Facts], bool]] = {
    "domain": lambda c, f: f.domain == c.domain,
    "case_type": lambda c, f: f.case_type == c.case_type,
    "amount_gte": _amount_holds,
    "currency": lambda c, f: f.currency == c.currency,
    "risk_gte": lambda c, f: f.risk_score is not None and f.risk_score >= c.risk_gte,
    "confidence_lt": lambda c, f: f.confidence is not None and f.confidence < c.confidence_lt,
    "calibrated_agreement_below": lambda c, f: _below(f.calibrated_agreement(), c.calibrated_agreement_below),
    "flags_any": lambda c, f: bool(f.flags.intersection(c.flags_any)),
    "ai_failed": lambda c, f: f.ai_failed == c.ai_failed,
    "status_in": lambda c, f: f.status in c.status_in,
    "age_minutes_gte": lambda c, f: f.age_minutes >= c.age_minutes_gte,
    "sla_fraction_gte": lambda c, f: f.sla_reached(c.sla_fraction_gte),
    "reopen_count_gte": lambda c, f: f.reopen_count >= c.reopen_count_gte,
}


def matches(conditions: Conditions, facts: Facts) -> bool:
    return all(check(conditions, facts) for name, check in CHECKS.items() if getattr(conditions, name) is not None)


# --- actions ---------------------------------------------------------------------------------------


class RouteToQueue(_Strict):
    queue: Name

    @field_validator("queue")
    @classmethod
    def _known(cls, value: str, info: ValidationInfo) -> str:
        catalog = _catalog(info)
        if catalog is not None and value not in catalog.queues:
            raise ValueError(f"no queue named {value!r} (queues: {', '.join(sorted(catalog.queues)) or 'none'})")
        return value


class SetPriority(_Strict):
    priority: PriorityName

    @property
    def level(self) -> Priority:
        return Priority.from_name(self.priority)


class RequireDualApproval(_Strict):
    role: RoleName = SECOND_APPROVERS[0]

    @field_validator("role")
    @classmethod
    def _can_approve(cls, value: str) -> str:
        if value not in SECOND_APPROVERS:
            raise ValueError(f"a second approval can only be given by: {', '.join(SECOND_APPROVERS)}")
        return value


class RequireSeniorReviewer(_Strict):
    pass


class SetSla(_Strict):
    minutes: Annotated[int, Field(gt=0, le=366 * 24 * 60)]


class Notify(_Strict):
    """Exactly one recipient key: ``role``, ``queue_lead: true``, ``queue_members: true`` or ``user``."""

    role: RoleName | None = None
    queue_lead: Literal[True] | None = None
    queue_members: Literal[True] | None = None
    user: Annotated[str, StringConstraints(strip_whitespace=True, to_lower=True, min_length=3)] | None = None
    message: Message

    @field_validator("user")
    @classmethod
    def _known(cls, value: str | None, info: ValidationInfo) -> str | None:
        catalog = _catalog(info)
        if value is not None and catalog is not None and value not in catalog.users:
            raise ValueError(f"no user with email {value!r}")
        return value

    @model_validator(mode="after")
    def _one_recipient(self) -> Notify:
        given = [key for key in RECIPIENT_KEYS if getattr(self, key) is not None]
        if len(given) != 1:
            raise ValueError(f"name exactly one recipient: one of {', '.join(RECIPIENT_KEYS)} "
                             f"(got {', '.join(given) or 'none'})")
        return self


RECIPIENT_KEYS = ("role", "queue_lead", "queue_members", "user")
ACTIONS: dict[str, type[_Strict]] = {
    "route_to_queue": RouteToQueue,
    "set_priority": SetPriority,
    "require_dual_approval": RequireDualApproval,
    "require_senior_reviewer": RequireSeniorReviewer,
    "set_sla": SetSla,
    "notify": Notify,
}


@dataclass(frozen=True)
class Action:
    name: str
    params: Any  # the model of ACTIONS[name]

    def to_document(self) -> dict[str, Any]:
        return {self.name: self.params.model_dump(mode="json", exclude_none=True)}


# --- the rule document ------------------------------------------------------------------------------


class RuleSpec(_Strict):
    name: Name
    enabled: bool = True
    conditions: Conditions
    actions: list[Any]

    @field_validator("actions")
    @classmethod
    def _actions(cls, value: list[Any], info: ValidationInfo) -> list[dict[str, Any]]:
        if not value:
            raise ValueError("give at least one action")
        parsed, errors = [], []
        for i, item in enumerate(value):
            try:
                parsed.append(_parse_action(i, item, info.context).to_document())
            except RuleInvalid as exc:
                errors += exc.errors
        if errors:
            raise RuleInvalid(errors)
        return parsed

    @model_validator(mode="after")
    def _routes_in_domain(self, info: ValidationInfo) -> RuleSpec:
        catalog = _catalog(info)
        for i, action in enumerate(self.parsed_actions):
            if catalog is None or action.name != "route_to_queue" or self.conditions.domain is None:
                continue
            domain = catalog.queues[action.params.queue]
            if domain != self.conditions.domain:
                raise RuleInvalid([FieldError(f"actions[{i}].route_to_queue.queue",
                                              f"queue {action.params.queue!r} takes {domain} cases, but the rule "
                                              f"matches domain {self.conditions.domain!r}")])
        return self

    @property
    def parsed_actions(self) -> list[Action]:
        return [_parse_action(i, item) for i, item in enumerate(self.actions)]

    def to_document(self) -> dict[str, Any]:
        return {"name": self.name, "enabled": self.enabled,
                "conditions": self.conditions.model_dump(mode="json", exclude_none=True), "actions": self.actions}


def _parse_action(index: int, item: Any, context: Catalog | None = None) -> Action:
    where = f"actions[{index}]"
    if not isinstance(item, dict) or len(item) != 1:
        raise RuleInvalid([FieldError(where, "each action is a mapping with one key naming it, e.g. "
                                             "{set_priority: {priority: high}}")])
    (name, params), = item.items()
    model = ACTIONS.get(name)
    if model is None:
        raise RuleInvalid([FieldError(where, f"unknown action {name!r} (actions: {', '.join(ACTIONS)})")])
    try:
        return Action(name, model.model_validate(params or {}, context=context))
    except ValidationError as exc:
        raise RuleInvalid(field_errors(exc, prefix=f"{where}.{name}")) from None


# --- errors ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class RuleInvalid(ValueError):
    """A refused rule; ``errors`` name each field at fault."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _message(error: dict[str, Any], model: type[BaseModel] | None) -> str:
    if error["type"] == "extra_forbidden" and model is not None:
        return f"unknown key (allowed: {', '.join(model.model_fields)})"
    if error["type"] == "missing":
        return "required"
    if isinstance(error.get("ctx", {}).get("error"), RuleInvalid):
        return str(error["ctx"]["error"])
    return error["msg"].removeprefix("Value error, ")


def _owner(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model whose key ``loc`` names, to list its allowed keys."""
    parents = {(): RuleSpec, ("conditions",): Conditions}
    return parents.get(tuple(loc[:-1]))


def field_errors(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    errors: list[FieldError] = []
    for err in exc.errors(include_url=False):
        nested = err.get("ctx", {}).get("error")
        if isinstance(nested, RuleInvalid):
            errors += nested.errors
            continue
        loc = tuple(err["loc"])
        path = _dotted(loc)
        model = _owner(loc) if not prefix else ACTIONS.get(prefix.rsplit(".", 1)[-1])
        errors.append(FieldError(".".join(p for p in (prefix, path) if p), _message(err, model)))
    return errors


def validate(document: Any, catalog: Catalog | None = None) -> RuleSpec:
    """The rule, or RuleInvalid naming every field at fault."""
    if not isinstance(document, dict):
        raise RuleInvalid([FieldError("", "a rule is a mapping with name, conditions and actions")])
    try:
        return RuleSpec.model_validate(document, context=catalog)
    except RuleInvalid:
        raise
    except ValidationError as exc:
        raise RuleInvalid(field_errors(exc)) from None



# --- built-in rules --------------------------------------------------------------------------------

# Part of the code, not of the rules table: always on, evaluated after each AI recommendation before
# the stored rules, listed on the rules page, never edited, disabled or moved. An answer the screening
# doubts (it contradicts a hard flag of the pre-screen, or the case text addresses the model) is
# decided by a senior reviewer.
BUILTIN_RULES: tuple[RuleSpec, ...] = (
    validate({
        "name": "screening-doubts-the-answer",
        "conditions": {"flags_any": ["contradicts_screening", "prompt_injection"]},
        "actions": [{"require_senior_reviewer": {}}],
    }),
)
BUILTIN_NAMES = frozenset(rule.name for rule in BUILTIN_RULES)
