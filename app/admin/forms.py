"""Forms of the administration pages. The services validate the values (a queue's settings, role,
queues, domains, hosts, codes); these forms read the fields (CSRF, whole numbers) and show the
services' refusals under the field they name."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, IntegerField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from app.cases.models import Queue
from app.cases.permissions import QUEUE_DECIDERS, Role
from app.cases.queues import amount_text
from app.cases.types import DOMAINS, REGISTRY
from app.forms import choices
from app.review.models import DECISION_KINDS
from app.users import User

ROLE_CHOICES = choices((r.value, r.value.replace("_", " ").capitalize()) for r in Role)
KIND_CHOICES = choices((k, k.replace("_", " ")) for k in DECISION_KINDS)
MAX_GRACE_HOURS = 24 * 30


class Checkboxes(SelectMultipleField):
    """Several choices as a list of checkboxes; values outside the choices reach the service, which says why."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, validate_choice=False, **kwargs)


class ConfirmForm(FlaskForm):
    """A button: nothing but the CSRF token."""


class UserForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    role = SelectField("Role", choices=ROLE_CHOICES, validate_choice=False)
    queues = Checkboxes("Queues they work")


class EditUserForm(UserForm):
    qa_all = BooleanField("Send every approval of theirs to QA",
                          description="For a reviewer whose approvals look rubber-stamped: a senior reviewer "
                                      "takes a second look at each one.")


class NewUserForm(UserForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    name = StringField("Name", validators=[Length(max=120)], description="Empty: made from the email.")


class ClientForm(FlaskForm):
    domains = Checkboxes("Domains it may post cases to")
    callback_hosts = TextAreaField("Callback hosts", validators=[Length(max=4000)],
                                   description="One host name a line (or comma-separated): where callbacks may go.")


class NewClientForm(ClientForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])


class RotateForm(FlaskForm):
    grace_hours = IntegerField("Previous secret valid for (hours)", default=24,
                               validators=[InputRequired(), NumberRange(0, MAX_GRACE_HOURS)])


class ReasonCodeForm(FlaskForm):
    label = StringField("Label", validators=[DataRequired(), Length(max=120)])
    kinds = Checkboxes("Offered with", choices=KIND_CHOICES)


class NewReasonCodeForm(ReasonCodeForm):
    code = StringField("Code", validators=[DataRequired(), Length(max=40)],
                       description="Lower-case letters, digits and _: what decisions store. It cannot change later.")


class AgentToolsForm(FlaskForm):
    document = TextAreaField("Tool policies (YAML)", validators=[Length(max=1_000_000)],
                             description="A list of tools; each named tool is created or replaced. Tools not "
                                         "listed stay as they are.")


class ActiveForm(FlaskForm):
    active = BooleanField()


WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
HOURS_FIELDS = ("timezone", "days", "start", "end", "holidays")
ROLE_LABELS = {"reviewer": "Any reviewer", "senior_reviewer": "Senior reviewers only"}


class QueueForm(FlaskForm):
    name = StringField("Name")
    domain = SelectField("Domain", choices=choices((d, d) for d in DOMAINS), validate_choice=False)
    sla_minutes = IntegerField("SLA (business minutes)", validators=[InputRequired()],
                               description="How long a case may wait for a decision, counted in business hours.")
    is_default = BooleanField("Default queue of its domain",
                              description="Receives the domain's cases whose type is routed to no other queue.")
    move_default = BooleanField("Take over as default from the domain's current default queue")
    case_types = Checkboxes("Case types routed here",
                                 choices=choices((name, f"{domain}: {name}") for domain, name in REGISTRY))
    escalation_target = SelectField("Escalates to", validate_choice=False,
                                    description="Where SLA breaches move a case: a queue of the same domain.")
    lead = SelectField("Lead", validate_choice=False, description="An active reviewer or senior reviewer.")
    blind_review = BooleanField("Blind review",
                                description="Reviewers record their own assessment before the AI recommendation shows.")
    dual_approval_threshold = StringField(
        "Dual-approval threshold", validators=[Optional()],
        description="Cases with an amount at or above it need two approvals; empty: the global thresholds apply.")
    required_role = SelectField("Who decides", choices=choices((r, ROLE_LABELS[r]) for r in QUEUE_DECIDERS),
                                validate_choice=False)
    qa_share = StringField("QA share", default="0",
                           description="The share of approved decisions drawn for a senior reviewer's second look: "
                                       "from 0 (none) to 1 (every one), such as 0.05.")
    members = Checkboxes("Members")
    timezone = StringField("Time zone", description="For example Europe/London; leave every business-hours field "
                                                    "empty for a round-the-clock SLA.")
    days = Checkboxes("Working days", choices=choices(enumerate(WEEKDAYS)), coerce=int)
    start = StringField("Opens at", description="HH:MM")
    end = StringField("Closes at", description="HH:MM")
    holidays = TextAreaField("Holidays", description="One date per line, YYYY-MM-DD.")

    def with_choices(self, queues: list[Queue], people: list[User], editing: Queue | None) -> QueueForm:
        """Offer the queues to escalate to, the possible leads and members (keeping the current ones)."""
        target, lead = (editing.escalation_target, editing.lead) if editing else (None, None)
        others = [q for q in queues if q is not editing and (q.archived_at is None or q is target)]
        self.escalation_target.choices = choices([("", "(nowhere: a breach raises the priority in place)")] + [
            (q.name, f"{q.name} ({q.domain})") for q in others])
        offered = {u.email: u for u in [*people, *(editing.members if editing else ())]}
        deciders = [u for u in offered.values() if u.role in QUEUE_DECIDERS]
        leads = {u.email: u for u in [*deciders, *([lead] if lead else [])]}  # the current lead stays selectable
        self.lead.choices = choices([("", "(no lead)")] + [(u.email, f"{u.name} <{u.email}>") for u in leads.values()])
        self.members.choices = choices((u.email, f"{u.name} <{u.email}> ({u.role})") for u in offered.values())
        return self

    def fill(self, queue: Queue) -> QueueForm:
        """The queue's current settings, for a GET of its edit page."""
        hours = queue.business_hours or {}
        values: dict[str, Any] = {
            "name": queue.name, "domain": queue.domain, "sla_minutes": queue.sla_minutes,
            "is_default": queue.is_default, "case_types": list(queue.case_types or ()),
            "escalation_target": queue.escalation_target.name if queue.escalation_target else "",
            "lead": queue.lead.email if queue.lead else "", "blind_review": queue.blind_review,
            "dual_approval_threshold": amount_text(queue.dual_approval_threshold) or "",
            "required_role": queue.required_role, "qa_share": f"{queue.qa_share:g}",
            "members": [u.email for u in queue.members], "timezone": hours.get("timezone", ""),
            "days": hours.get("days", []), "start": hours.get("start", ""), "end": hours.get("end", ""),
            "holidays": "\n".join(hours.get("holidays", [])),
        }
        for name, value in values.items():
            getattr(self, name).data = value
        return self

    def business_hours(self) -> dict[str, Any] | None:
        """The business-hours fields as the service takes them; None when all are empty (round the clock)."""
        holidays = [line.strip() for line in (self.holidays.data or "").splitlines() if line.strip()]
        texts = {name: (getattr(self, name).data or "").strip() for name in ("timezone", "start", "end")}
        if not any(texts.values()) and not self.days.data and not holidays:
            return None
        return {**texts, "days": list(self.days.data or []), "holidays": holidays}

    def settings(self) -> dict[str, Any]:
        """Every setting but name and domain, as `update_queue` takes them (and `create_queue`, by keyword)."""
        return {
            "sla_minutes": self.sla_minutes.data,
            "is_default": self.is_default.data,
            "case_types": list(self.case_types.data or []),
            "escalation_target": self.escalation_target.data or None,
            "lead": self.lead.data or None,
            "blind_review": self.blind_review.data,
            "business_hours": self.business_hours(),
            "dual_approval_threshold": (self.dual_approval_threshold.data or "").strip() or None,
            "required_role": self.required_role.data,
            "qa_share": self.qa_share.data or "",
            "members": list(self.members.data or []),
        }


def form_field(service_field: str) -> str:
    """``business_hours.days[1]`` → ``days``; ``lead`` → ``lead``."""
    head, _, rest = service_field.partition(".")
    if head == "business_hours":
        return rest.split("[")[0] if rest.split("[")[0] in HOURS_FIELDS else ""
    return head

