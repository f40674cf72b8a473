"""Forms of the administration pages. The services validate the values (role, queues, domains,
hosts, codes) and their refusals are shown at these fields (`app.forms.show_errors`)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, IntegerField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange
from wtforms.widgets import CheckboxInput, ListWidget

from app.cases.permissions import Role
from app.review.forms import choices
from app.review.models import DECISION_KINDS

ROLE_CHOICES = choices((r.value, r.value.replace("_", " ").capitalize()) for r in Role)
KIND_CHOICES = choices((k, k.replace("_", " ")) for k in DECISION_KINDS)
MAX_GRACE_HOURS = 24 * 30


class Checkboxes(SelectMultipleField):
    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class ConfirmForm(FlaskForm):
    """A button: nothing but the CSRF token."""


class UserForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    role = SelectField("Role", choices=ROLE_CHOICES, validate_choice=False)
    queues = Checkboxes("Queues they work", validate_choice=False)


class NewUserForm(UserForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    name = StringField("Name", validators=[Length(max=120)], description="Empty: made from the email.")


class ClientForm(FlaskForm):
    domains = Checkboxes("Domains it may post cases to", validate_choice=False)
    callback_hosts = TextAreaField("Callback hosts", validators=[Length(max=4000)],
                                   description="One host name a line (or comma-separated): where callbacks may go.")


class NewClientForm(ClientForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])


class RotateForm(FlaskForm):
    grace_hours = IntegerField("Previous secret valid for (hours)", default=24,
                               validators=[InputRequired(), NumberRange(0, MAX_GRACE_HOURS)])


class ReasonCodeForm(FlaskForm):
    label = StringField("Label", validators=[DataRequired(), Length(max=120)])
    kinds = Checkboxes("Offered with", choices=KIND_CHOICES, validate_choice=False)


class NewReasonCodeForm(ReasonCodeForm):
    code = StringField("Code", validators=[DataRequired(), Length(max=40)],
                       description="Lower-case letters, digits and _: what decisions store. It cannot change later.")


class ActiveForm(FlaskForm):
    active = BooleanField()
