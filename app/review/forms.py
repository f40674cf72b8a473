"""Forms of the reviewer UI.

The decision forms share hidden ``case_version`` and ``view_hash`` fields (optimistic
locking and proof of what the reviewer saw). The parameters of an action are not a
fixed WTForms class: they are generated from the case type's pydantic schema for that
action (`action_specs`) and read back by `parse_parameters`. The review services are
the one validator of a decision (reason codes, parameters, queues): their field errors
are attached to these forms, so the forms themselves check little beyond CSRF.
"""

from __future__ import annotations

import json
import re
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from flask_wtf import FlaskForm
from pydantic import BaseModel
from werkzeug.datastructures import MultiDict
from wtforms import HiddenField, IntegerField, SearchField, SelectField, TextAreaField
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from app.cases.types import CaseType
from app.forms import choices
from app.review import inbox
from app.review.services import MAX_REASON_LENGTH
from app.users import User

LONG_TEXT_FROM = 257  # strings allowed to be longer than this are free text: a textarea
ParamKind = Literal["text", "textarea", "decimal", "list", "rows", "number", "integer", "boolean", "choice", "json"]
SCHEMA_KINDS: dict[str, ParamKind] = {"string": "text", "number": "number", "integer": "integer", "boolean": "boolean"}


# --- action parameters, generated from the case type's schemas ---------------------------------------


@dataclass(frozen=True)
class ParamSpec:
    name: str
    label: str
    kind: ParamKind
    columns: tuple[ParamSpec, ...] = ()  # the fields of each row, for kind "rows"
    choices: tuple[str, ...] = ()  # the values of kind "choice" (a JSON Schema enum)

    def input_name(self, action: str, column: str | None = None) -> str:
        return f"p.{action}.{self.name}" + (f".{column}" if column else "")


@dataclass(frozen=True)
class ActionSpec:
    name: str
    label: str
    params: tuple[ParamSpec, ...]


def action_specs(case_type: CaseType[Any], data: BaseModel | None = None) -> list[ActionSpec]:
    """Each action's fields: from the JSON Schema the case's ``data`` gives for it, else from its model."""
    specs = []
    for name, schema in case_type.actions.items():
        json_schema = case_type.parameters_schema(data, name) if data is not None else None
        specs.append(ActionSpec(name, _label(name), _params(schema) if json_schema is None
                                else _schema_params(json_schema)))
    return specs


def _schema_params(schema: dict[str, Any]) -> tuple[ParamSpec, ...]:
    """Inputs for a JSON Schema's properties: simple types and enums get their own input, anything
    else (objects, arrays, unions) a JSON text area."""
    return tuple(_schema_param(name, prop if isinstance(prop, dict) else {})
                 for name, prop in schema.get("properties", {}).items())


def _schema_param(name: str, prop: dict[str, Any]) -> ParamSpec:
    if isinstance(prop.get("enum"), list) and all(isinstance(v, str) for v in prop["enum"]):
        return ParamSpec(name, _label(name), "choice", choices=tuple(prop["enum"]))
    return ParamSpec(name, _label(name), SCHEMA_KINDS.get(prop.get("type"), "json"))  # type: ignore[arg-type]


def _params(schema: type[BaseModel]) -> tuple[ParamSpec, ...]:
    return tuple(_param(name, info.annotation, info.metadata) for name, info in schema.model_fields.items())


def _param(name: str, annotation: Any, metadata: list[Any]) -> ParamSpec:
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        if isinstance(item, type) and issubclass(item, BaseModel):
            return ParamSpec(name, _label(name), "rows", _params(item))
        return ParamSpec(name, _label(name), "list")
    if annotation is Decimal:
        return ParamSpec(name, _label(name), "decimal")
    longest = max((getattr(m, "max_length", None) or 0 for m in metadata), default=0)
    return ParamSpec(name, _label(name), "textarea" if longest >= LONG_TEXT_FROM else "text")


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def parse_parameters(spec: ActionSpec, form: MultiDict[str, str]) -> dict[str, Any]:
    """The submitted parameters of ``spec``'s action: blanks dropped, the rest as typed (strings)."""
    params: dict[str, Any] = {}
    for param in spec.params:
        if param.kind == "list":
            params[param.name] = [v.strip() for v in form.getlist(param.input_name(spec.name)) if v.strip()]
        elif param.kind == "rows":
            params[param.name] = _rows(spec.name, param, form)
        elif param.kind == "boolean":
            params[param.name] = form.get(param.input_name(spec.name)) == "true"
        else:
            value = form.get(param.input_name(spec.name), "").strip()
            if value:
                params[param.name] = _typed(param.kind, value)
    return params


def _typed(kind: ParamKind, value: str) -> Any:
    """A schema-built input's text as its JSON type; text that is not one stays text, for the
    schema to refuse with a message under its field."""
    try:
        if kind in ("number", "integer"):
            number = Decimal(value)
            if not number.is_finite():
                return value
            return int(number) if kind == "integer" and number == number.to_integral_value() else float(number)
        if kind == "json":
            return json.loads(value)
        if kind == "decimal":
            return plain_amount(value)
    except (ArithmeticError, ValueError):
        return value
    return value


GROUPED_AMOUNT = re.compile(r"-?\d{1,3}(,\d{3})+(\.\d+)?")


def plain_amount(value: str) -> str:
    """An amount as typed, thousands separators dropped when they group correctly: "1,250,000.00" →
    "1250000.00". Anything else is left for the action's schema to accept or refuse ("1,25" is refused,
    not read as 125)."""
    return value.replace(",", "") if GROUPED_AMOUNT.fullmatch(value) else value


def _rows(action: str, param: ParamSpec, form: MultiDict[str, str]) -> list[dict[str, str]]:
    columns = {c.name: form.getlist(param.input_name(action, c.name)) for c in param.columns}
    count = max((len(values) for values in columns.values()), default=0)
    rows = [{name: (values[i].strip() if i < len(values) else "") for name, values in columns.items()}
            for i in range(count)]
    return [row for row in rows if any(row.values())]


def param_errors(errors: dict[str, str]) -> dict[str, str]:
    """Service field errors by parameter: {"parameters.redlines.0.issue": m} → {"redlines": "Row 1, issue: m"}."""
    found: dict[str, list[str]] = {}
    for key, message in errors.items():
        parts = key.split(".")
        if parts[0] != "parameters" or len(parts) < 2:
            continue
        where = [f"row {int(p) + 1}" if p.isdigit() else p.replace("_", " ") for p in parts[2:]]
        found.setdefault(parts[1], []).append(", ".join([*where, message]) if where else message)
    return {name: "; ".join(messages)[:1].upper() + "; ".join(messages)[1:] for name, messages in found.items()}


# --- the decision forms --------------------------------------------------------------------------------


class DecisionForm(FlaskForm):
    """What every decision carries: the case version and the hash of what was shown."""

    case_version = IntegerField(widget=HiddenField.widget, validators=[InputRequired()])
    view_hash = HiddenField()
    confirmed = HiddenField()  # "1": the reviewer saw and confirmed why this approval is risky

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.param_errors: dict[str, str] = {}  # service errors on action parameters, by parameter name
        # What was sent, action parameters included (they are not fields): the request's form, or
        # a refused form's as kept for the page the browser was sent back to.
        self.sent = kwargs.get("formdata") or MultiDict()


class ReasonedForm(DecisionForm):
    reason_code = SelectField("Reason code", validate_choice=False)
    reason = TextAreaField("Explanation", validators=[Optional(), Length(max=MAX_REASON_LENGTH)])

    def with_reason_codes(self, codes: list[tuple[str, str]]) -> ReasonedForm:
        self.reason_code.choices = choices([("", "Choose a reason…"), *codes])
        return self


class ApproveForm(DecisionForm):
    pass


class EditForm(ReasonedForm):
    action = SelectField("Action", validate_choice=False)


class BlindForm(DecisionForm):
    action = SelectField("Your assessment", validate_choice=False)


class RejectForm(ReasonedForm):
    pass


class RequestInfoForm(ReasonedForm):
    pass


class RespondForm(ReasonedForm):
    """An answer to the agent instead of running its tool: the explanation is the answer."""


class EscalateForm(ReasonedForm):
    target_queue = SelectField("Escalate to", validate_choice=False)


DECISION_FORMS: dict[str, type[DecisionForm]] = {
    "approve": ApproveForm,
    "edit": EditForm,
    "reject": RejectForm,
    "escalate": EscalateForm,
    "request_info": RequestInfoForm,
    "blind": BlindForm,
    "respond": RespondForm,
}


class ActionForm(FlaskForm):
    """Claim, release, retry, next case: nothing but the CSRF token."""


class AssignForm(FlaskForm):
    """A senior reviewer or admin gives the case to a reviewer of its queue (`services.assign`
    checks the choice and the reason)."""

    assignee = SelectField("Assign to", validate_choice=False)
    reason = TextAreaField("Why", validators=[Optional(), Length(max=MAX_REASON_LENGTH)])

    def with_assignees(self, people: Iterable[User]) -> AssignForm:
        self.assignee.choices = choices([("", "Choose a reviewer…"),
                                         *((str(p.id), f"{p.name} ({_label(p.role).lower()})") for p in people)])
        return self

    @property
    def assignee_id(self) -> int | None:
        value = (self.assignee.data or "").strip()
        return int(value) if value.isdigit() else None


# --- the queue page's filters (GET, no CSRF) -------------------------------------------------------------


class InboxFilterForm(FlaskForm):
    class Meta:
        csrf = False

    q = SearchField("Search", validators=[Optional(), Length(max=200)])
    status = SelectField("Status", default="open", choices=choices([
        ("open", "Open"), ("pending_review", "Pending review"), ("ai_failed", "No AI recommendation"),
        ("in_review", "In review"), ("awaiting_second_approval", "Awaiting second approval"),
        ("needs_info", "Waiting for information"), ("processing", "Being analysed"), ("decided", "Decided"),
        ("withdrawn", "Withdrawn"), ("all", "All"),
    ]))
    case_type = SelectField("Case type", default="")
    flag = SelectField("Flag", default="", choices=choices([("", "Any flag"), *((f, _label(f)) for f in inbox.FLAGS)]))
    assignee = SelectField("Assignee", default="anyone",
                           choices=choices([("anyone", "Anyone"), ("me", "Me"), ("unassigned", "Unassigned")]))
    sla = SelectField("SLA", default="any", choices=choices([("any", "Any SLA"), ("at_risk", "At risk"),
                                                             ("overdue", "Overdue")]))
    sort = SelectField("Sort by", default="priority", choices=choices((k, s.label) for k, s in inbox.SORTS.items()))
    dir = SelectField("Direction", default="", choices=choices([("", "Default"), ("asc", "Ascending"),
                                                                ("desc", "Descending")]))
    page = IntegerField(default=1, validators=[Optional(), NumberRange(min=1, max=100_000)])
    per_page = IntegerField("Per page", default=inbox.DEFAULT_PER_PAGE,
                            validators=[Optional(), NumberRange(min=1, max=inbox.MAX_PER_PAGE)])

    def for_queue(self, case_types: list[str], *, blind: bool) -> InboxFilterForm:
        """Offer the queue's case types; on a blind queue, nothing that reveals the AI's view."""
        self.case_type.choices = choices([("", "Any type"), *((n, _label(n)) for n in case_types)])
        if blind:
            self.flag.choices = choices([("", "Any flag")])
            self.sort.choices = [c for c in self.sort.choices if c.value != "confidence"]
        return self

    def filters(self) -> inbox.InboxFilters:
        """The filters asked for; a field with an invalid value falls back to its default."""
        self.validate()
        clean = {name: field.data for name, field in self._fields.items() if not field.errors}
        defaults = inbox.InboxFilters()
        return inbox.InboxFilters(
            status=clean.get("status") or defaults.status,
            case_type=clean.get("case_type") or "",
            flag=clean.get("flag") or "",
            assignee=clean.get("assignee") or defaults.assignee,
            sla=clean.get("sla") or defaults.sla,
            q=(clean.get("q") or "").strip(),
            sort=clean.get("sort") or defaults.sort,
            direction=clean.get("dir") or "",
            page=clean.get("page") or 1,
            per_page=clean.get("per_page") or defaults.per_page,
        )
