"""What every form page shares: the services' refusals shown on the form they refused."""

from __future__ import annotations

from flask_wtf import FlaskForm

from app.errors import DomainError
from app.problems import sentence


def show_errors(form: FlaskForm, exc: DomainError) -> None:
    """Each field error under its field; the message at the top of the form when no field of
    the form is named."""
    shown = False
    for name, message in exc.by_field.items():
        field = form._fields.get(name)
        if field is not None:
            field.errors = [*field.errors, sentence(message)]
            shown = True
    if not shown:
        form.form_errors.append(sentence(exc.message))
