"""Forms of the escalation-rule admin pages. The rule itself is validated by the services
(`services.save_rule`), whose field errors are shown under the text area."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, TextAreaField
from wtforms.validators import AnyOf, InputRequired, Length

from app.escalation.rules import MAX_TEXT_LENGTH

EXAMPLE = """name: large-payments
conditions:
  domain: finance
  amount_gte: 250000
  currency: EUR
actions:
  - require_dual_approval: {role: senior_reviewer}
  - set_priority: {priority: urgent}
"""


class RuleForm(FlaskForm):
    text = TextAreaField("Rule (YAML or JSON)", validators=[InputRequired(), Length(max=MAX_TEXT_LENGTH)],
                         description="name, enabled (optional), conditions and actions")


class EnabledForm(FlaskForm):
    enabled = HiddenField(validators=[AnyOf(["0", "1"])])


class MoveForm(FlaskForm):
    direction = HiddenField(validators=[AnyOf(["up", "down"])])
