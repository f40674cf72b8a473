"""The audit page's search form (GET, no CSRF) and the choices of its export form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask_wtf import FlaskForm
from wtforms import DateField, IntegerField, SearchField, SelectField
from wtforms.validators import Length, NumberRange, Optional, StopValidation, ValidationError

from app.audit.actions import AuditAction
from app.auditor.export import OUTCOMES
from app.auditor.search import AuditFilters
from app.forms import choices

LARGEST_CASE_ID = 2**31 - 1  # cases.id is a 32-bit integer on PostgreSQL
LARGEST_EVENT_ID = 2**63 - 1
FILTER_FIELDS = ("case", "actor", "action", "since", "until")


def _read(form: FlaskForm, field: IntegerField) -> None:
    """Stop at a value that could not be read as a number: its own error says why."""
    if field.process_errors:
        raise StopValidation()


class AuditFilterForm(FlaskForm):
    class Meta:
        csrf = False

    case = IntegerField("Case", validators=[Optional(), _read, NumberRange(min=1, max=LARGEST_CASE_ID)])
    actor = SearchField("Actor", validators=[Optional(), Length(max=254)],
                        description="A user's email, or user:12, client:3, system:sla")
    action = SelectField("Action", default="",
                         choices=choices([("", "Any action"), *((a.value, a.value) for a in AuditAction)]))
    since = DateField("From", validators=[Optional()])
    until = DateField("To", validators=[Optional()])
    # the page: events older than ``before``, or newer than ``after``
    before = IntegerField(validators=[Optional(), _read, NumberRange(min=1, max=LARGEST_EVENT_ID)])
    after = IntegerField(validators=[Optional(), _read, NumberRange(min=0, max=LARGEST_EVENT_ID)])

    def validate_until(self, field: DateField) -> None:
        if field.data and self.since.data and field.data < self.since.data:
            raise ValidationError("The end of the range comes before its start.")

    def validate_after(self, field: IntegerField) -> None:
        if field.data is not None and self.before.data is not None:
            raise ValidationError("A page link gives “before” or “after”, not both.")

    @property
    def page_errors(self) -> list[str]:
        """Errors of the fields the page does not show (the paging links')."""
        return [*self.before.errors, *self.after.errors]

    def link_args(self, **changes: Any) -> dict[str, Any]:
        """The filters as they were typed, with ``changes``, blanks left out: the arguments of a
        link to another page of the same search."""
        typed = {name: (self[name].raw_data or [""])[0].strip() for name in FILTER_FIELDS}
        return {name: value for name, value in {**typed, **changes}.items() if value not in (None, "")}

    def filters(self, actor: str) -> AuditFilters:
        """The filters of a validated form, with the actor as stored (see ``search.actor_of``)."""
        return AuditFilters(case_id=self.case.data, actor=actor, action=self.action.data or "",
                            since=self.since.data, until=self.until.data, before=self.before.data,
                            after=self.after.data)


# --- the decision-log export (a GET form to /audit/export) -----------------------------------------------


@dataclass(frozen=True)
class ExportChoices:
    domains: tuple[str, ...]
    queues: tuple[str, ...]
    case_types: tuple[str, ...]
    # The values the export understands (app.auditor.export.OUTCOMES), as people read them.
    outcomes: tuple[tuple[str, str], ...] = tuple(
        (value, value.replace("_", " ").capitalize()) for value in OUTCOMES.values())
    formats: tuple[tuple[str, str], ...] = (("jsonl", "JSON Lines"), ("csv", "CSV"))
