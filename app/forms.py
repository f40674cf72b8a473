"""What every form page shares: select options, and the services' refusals shown on the form they refused."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from flask_wtf import FlaskForm
from wtforms.fields.choices import SelectChoice

from app.errors import DomainError
from app.problems import sentence


def show_errors(form: FlaskForm, exc: DomainError, field_of: Callable[[str], str] = str) -> None:
    """Each field error under its field (``field_of`` maps the service's field name to the form's);
    the others, or the refusal's message when no field is named, at the top of the form."""
    unplaced = []
    for error in exc.errors or [{"field": "", "message": exc.message}]:
        named = str(error.get("field", ""))
        field = form._fields.get(field_of(named))
        if field is not None:
            field.errors = [*field.errors, sentence(error["message"])]
        else:
            unplaced.append(sentence(error["message"] if named and field_of(named) else exc.message))
    form.form_errors = [*form.form_errors, *dict.fromkeys(unplaced)]


def choices(pairs: Iterable[tuple[str, str]]) -> list[SelectChoice]:
    """``(value, label)`` pairs as select options."""
    return [SelectChoice(value, label) for value, label in pairs]
