"""Forms of the admin's execution failures page (CSRF on every POST)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import TextAreaField
from wtforms.validators import InputRequired, Length

MAX_REASON_LENGTH = 2000


class RetryForm(FlaskForm):
    """Retry a failed execution: nothing but the CSRF token."""


class MarkHandledForm(FlaskForm):
    reason = TextAreaField("How was it handled?", validators=[InputRequired(), Length(max=MAX_REASON_LENGTH)])
