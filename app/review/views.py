"""The reviewer web UI: thin views over the review services and the inbox queries.

Each request loads and authorizes through `app.cases.permissions` (`get_case_for`, `queue_for`),
calls one service, and commits once; a refused request (`DomainError`) rolls back and becomes
a flash message, inline form errors, or a 403/404 page.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.orm import joinedload
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from app.cases import permissions, policy
from app.cases.models import Case, Decision, Queue, Status
from app.cases.types import get_case_type
from app.db import utcnow
from app.errors import ConfirmationRequired, DomainError, Forbidden, Invalid, NotFound, Stale
from app.escalation import sla
from app.extensions import db, login_manager
from app.jobs import redis_connection
from app.oversight import calibration
from app.problems import sentence
from app.review import forms, inbox, openings, presenters, reason_codes
from app.review import services as review
from app.review import signals as signal_words
from app.review.models import ReasonCode
from app.users import User

bp = Blueprint("review", __name__)
UNDO_KEY = "undo_case_id"



@bp.before_request
def _require_login() -> Response | None:
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    return None


@bp.app_context_processor
def _helpers() -> dict[str, Any]:
    return {
        "money": presenters.money,
        "when": presenters.when,
        "relative": presenters.relative,
        "humanize": presenters.humanize,
        "diff_rows": presenters.diff_rows,
        "path_label": presenters.path_label,
        "signal_label": lambda code: signal_words.in_words(code).label,
        "undo_toast": _undo_toast(),
    }


def _undo_toast() -> dict[str, Any] | None:
    """The signed-in reviewer's last approval while they may still undo it, for the toast."""
    case_id = session.get(UNDO_KEY)
    if case_id is None or not current_user.is_authenticated:
        return None
    found = db.session.get(Case, case_id)
    until = review.undo_until(db.session, _user(), found) if found is not None else None
    if until is None:
        session.pop(UNDO_KEY, None)
        return None
    return {"case": found, "seconds": max(1, int((until - utcnow()).total_seconds())),
            "form": forms.ActionForm(formdata=None)}


def _user() -> User:
    return current_user._get_current_object()


def _require(intent: str = "decide") -> User:
    """Auditors (and admins, for decisions) only read: their POSTs are refused outright."""
    user = _user()
    permissions.require(user, intent)
    return user


def _can(user: User, intent: str) -> bool:
    return permissions.can(user, intent)


def _refused(exc: DomainError) -> None:
    """Roll back; 403/404 become error pages (the app's handler), anything else a message on the
    page redirected to."""
    if isinstance(exc, Forbidden | NotFound):
        raise exc
    db.session.rollback()
    flash(sentence(exc.message), "error")


# --- pages ------------------------------------------------------------------------------------------


@bp.get("/")
def index() -> Response:
    return redirect(url_for("review.queues"))


@bp.get("/queues")
def queues() -> str:
    user = _user()
    summaries = inbox.queue_summaries(db.session, user, permissions.visible_queues(db.session, user))
    return render_template("review/queues.html", summaries=summaries, can_decide=_can(user, "decide"),
                           next_form=forms.ActionForm())


@bp.get("/queues/<name>")
def queue(name: str) -> str:
    user = _user()
    found = permissions.queue_for(db.session, user, name)
    blind = found.blind_review and _can(user, "decide")  # the list must not reveal the AI's view
    form = forms.InboxFilterForm(formdata=request.args).for_queue(inbox.case_types_in(found), blind=blind)
    page = inbox.inbox_page(db.session, user, found, form.filters())
    return render_template("review/queue.html", queue=found, page=page, form=form, blind=blind,
                           dual_approval={} if blind else _dual_approval_reasons([r.id for r in page.rows]),
                           flag_codes=inbox.FLAGS, status_empty=presenters.STATUS_EMPTY,
                           empty_messages=presenters.FILTER_EMPTY,
                           can_decide=permissions.can_in(user, "decide", found), next_form=forms.ActionForm())


def _dual_approval_reasons(case_ids: list[int]) -> dict[int, list[str]]:
    """Why each listed case, approved as proposed, would need two approvals (those that would)."""
    cases = db.session.scalars(select(Case).where(Case.id.in_(case_ids))
                               .options(joinedload(Case.recommendation), joinedload(Case.queue))).unique()
    reasons = {c.id: policy.dual_approval_reasons(c, *policy.proposed_action(db.session, c)) for c in cases}
    return {case_id: why for case_id, why in reasons.items() if why}


@bp.get("/cases/<int:case_id>")
def case(case_id: int) -> str:
    user = _user()
    found = permissions.get_case_for(db.session, user, case_id, "view")
    openings.record_first_open(db.session, user, found)  # the start of the time taken to decide it
    db.session.commit()
    unsent = _take_unsent(user, case_id)
    if unsent is None:
        return render_case(user, found)
    panel, form = _rebuilt(found, unsent)
    if panel == "assign":
        return render_case(user, found, assign_form=form, open_panel=panel)
    return render_case(user, found, submitted={panel: form}, open_panel=panel, confirm=unsent.get("confirm"))


# --- Post/Redirect/Get for a refused form -------------------------------------------------------------
# A refused form is not rendered as the answer to its POST (a reload would send it again): what was
# typed and its errors wait in Redis for the case page the browser is sent back to. The version
# fields are left out, so the form comes back bound to the case as it now is (a stale decision keeps
# the reviewer's reason, not their old version). Redis down: the form is rendered in place, as before.

UNSENT_SECONDS = 600
NOT_KEPT = ("csrf_token", "case_version", "view_hash", "confirmed")


def _unsent_key(user: User, case_id: int) -> str:
    return f"countersign:unsent-form:{user.id}:{case_id}"


def _back_with(user: User, case: Case, panel: str, form: FlaskForm,
               confirm: list[str] | None = None) -> Response | tuple[str, int]:
    """Keep the refused ``form`` of ``panel`` for the case page, and go there (to confirm the
    approval it asks for, knowing the ``confirm`` reasons, when given)."""
    unsent = {"panel": panel, "confirm": confirm,
              "errors": {name: list(field.errors) for name, field in form._fields.items() if field.errors},
              "param_errors": getattr(form, "param_errors", {}),
              "pairs": [(key, value) for key, value in request.form.items(multi=True)
                        if key.removeprefix(f"{panel}-") not in NOT_KEPT]}
    try:
        redis_connection().set(_unsent_key(user, case.id), json.dumps(unsent), ex=UNSENT_SECONDS)
    except RedisError:
        if panel == "assign":
            return render_case(user, case, assign_form=form, open_panel=panel), 422
        return render_case(user, case, submitted={panel: form}, open_panel=panel, confirm=confirm), 422
    return redirect(url_for("review.case", case_id=case.id, _anchor=f"panel-{panel}"))


def _take_unsent(user: User, case_id: int) -> dict[str, Any] | None:
    try:
        raw = redis_connection().getdel(_unsent_key(user, case_id))
    except RedisError:
        return None
    return json.loads(raw) if raw else None


def _rebuilt(case: Case, unsent: dict[str, Any]) -> tuple[str, FlaskForm]:
    panel, formdata = unsent["panel"], MultiDict([tuple(pair) for pair in unsent["pairs"]])
    if panel == "assign":
        form: FlaskForm = forms.AssignForm(formdata=formdata, prefix="assign")
    else:
        form = _with_choices(panel, forms.DECISION_FORMS[panel](formdata=formdata, prefix=panel, **_shown(case)),
                             case)
        form.param_errors = unsent["param_errors"]
    for name, errors in unsent["errors"].items():
        if name in form._fields:
            form._fields[name].errors = errors
    return panel, form


# --- actions ----------------------------------------------------------------------------------------


@bp.post("/queues/<name>/next")
def next_case(name: str) -> Response:
    user = _require()
    found = permissions.queue_for(db.session, user, name)
    try:
        claimed = review.claim_next(db.session, user, found.id)
    except DomainError as exc:
        db.session.rollback()
        flash(sentence(exc.message), "error")
        return redirect(url_for("review.queue", name=name))
    if claimed is None:
        db.session.rollback()
        flash("No unclaimed case in this queue", "info")
        return redirect(url_for("review.queue", name=name))
    db.session.commit()
    return redirect(url_for("review.case", case_id=claimed.id))


def _simple_action(case_id: int, service: Callable[[Any, User, int], Case], done: str,
                   intent: str = "decide") -> Case | None:
    """Run a form-less case action (claim, release, retry): CSRF only, then one service call."""
    user = _require(intent)
    try:
        changed = service(db.session, user, case_id)
    except DomainError as exc:
        _refused(exc)
        return None
    db.session.commit()
    flash(done, "success")
    return changed


@bp.post("/cases/<int:case_id>/claim")
def claim(case_id: int) -> Response:
    _simple_action(case_id, review.claim, "Case claimed: it is yours to decide.")
    return redirect(url_for("review.case", case_id=case_id))


@bp.post("/cases/<int:case_id>/release")
def release(case_id: int) -> Response:
    _simple_action(case_id, review.release, "Case unclaimed: it is back in the queue.", "release")
    return redirect(url_for("review.case", case_id=case_id))


@bp.post("/cases/<int:case_id>/retry")
def retry(case_id: int) -> Response:
    _simple_action(case_id, review.retry_analysis, "Analysis queued again.", "retry_analysis")
    return redirect(url_for("review.case", case_id=case_id))


@bp.post("/cases/<int:case_id>/undo")
def undo(case_id: int) -> Response:
    """Take back one's approval within its undo window: the case is back in review, nothing executed."""
    if _simple_action(case_id, review.undo_approval, "Approval undone: nothing was executed, "
                                                     "and the case is yours to decide again.") is not None:
        session.pop(UNDO_KEY, None)
    return redirect(url_for("review.case", case_id=case_id))


@bp.post("/preferences/auto-next")
def auto_next() -> Response:
    """Turn moving on to the next case after a decision on or off."""
    user = _require()
    if not forms.ActionForm().validate():
        abort(400)
    review.set_auto_next(db.session, user, request.form.get("auto_next") == "1")
    db.session.commit()
    flash("After a decision you will " + ("move on to the queue's next case." if user.auto_next
                                          else "stay on the decided case."), "success")
    return redirect(request.referrer if _same_site(request.referrer) else url_for("review.queues"))


def _same_site(url: str | None) -> bool:
    return bool(url) and url.startswith(request.host_url)


@bp.post("/cases/<int:case_id>/assign")
def assign(case_id: int) -> Response | tuple[str, int]:
    """A senior reviewer or admin gives the case to a reviewer of its queue (Post/Redirect/Get)."""
    user = _user()
    found = permissions.get_case_for(db.session, user, case_id, "assign")  # 404 before 403, as everywhere
    form = forms.AssignForm(prefix="assign")
    if not form.validate():
        return _back_with(user, found, "assign", form)
    try:
        changed = review.assign(db.session, user, case_id, form.assignee_id, form.reason.data or "")
    except Invalid as exc:
        db.session.rollback()
        _attach_errors(form, exc.by_field)
        flash(sentence(exc.message), "error")
        return _back_with(user, db.session.get(Case, case_id), "assign", form)
    except DomainError as exc:
        _refused(exc)
        return redirect(url_for("review.case", case_id=case_id))
    db.session.commit()
    flash(f"Case assigned to {changed.assignee.name}.", "success")
    return redirect(url_for("review.case", case_id=case_id))


@bp.post("/cases/<int:case_id>/decide/<kind>")
def decide(case_id: int, kind: str) -> Response | tuple[str, int]:
    user = _require()
    if kind not in forms.DECISION_FORMS:
        abort(404)
    found = permissions.get_case_for(db.session, user, case_id, "decide")
    queue_name = found.queue.name if found.queue else None
    form = _bound_form(kind, found)
    if not form.validate():
        return _back_with(user, found, kind, form)
    if form.view_hash.data and form.view_hash.data != _page_hash(found):
        _refused(Stale(review.STALE))
        return _back_with(user, found, kind, form)
    try:
        decision = review.decide(db.session, user, case_id, _command(kind, form, found))
    except Invalid as exc:
        db.session.rollback()
        _attach_errors(form, exc.by_field)
        form.param_errors = forms.param_errors(exc.by_field)
        flash(sentence(exc.message), "error")
        return _back_with(user, db.session.get(Case, case_id), kind, form)
    except ConfirmationRequired as exc:  # nothing is decided: the page asks to confirm first
        db.session.rollback()
        return _back_with(user, db.session.get(Case, case_id), kind, form, confirm=exc.reasons)
    except Stale as exc:
        _refused(exc)
        return _back_with(user, db.session.get(Case, case_id), kind, form)
    except DomainError as exc:
        _refused(exc)
        return redirect(url_for("review.case", case_id=case_id))
    db.session.commit()
    flash(_decided_message(decision), "success")
    if review.undo_until(db.session, user, db.session.get(Case, case_id)) is not None:
        session[UNDO_KEY] = case_id
    return redirect(_after_decision(user, case_id, queue_name, decision))


def _after_decision(user: User, case_id: int, queue_name: str | None, decision: Decision) -> str:
    """On to the queue's next case (claimed) when the reviewer asked for that and one is waiting;
    else back to the case, unless the decision took it out of the reviewer's reach (escalated to
    a queue they do not work): then to the queue it left, or to their queues."""
    upcoming = _claim_next_after(user, queue_name, decision)
    if upcoming is not None:
        return url_for("review.case", case_id=upcoming.id)
    case = db.session.get(Case, case_id)
    if case is not None and permissions.sees(db.session, user, case):
        return url_for("review.case", case_id=case_id)
    if queue_name and any(q.name == queue_name for q in permissions.visible_queues(db.session, user)):
        return url_for("review.queue", name=queue_name)
    return url_for("review.queues")


def _claim_next_after(user: User, queue_name: str | None, decision: Decision) -> Case | None:
    """The queue's next case, claimed for a reviewer who moves on after each decision (auto_next)."""
    if not user.auto_next or queue_name is None or decision.kind == "blind_assessment":
        return None
    try:
        queue = permissions.queue_for(db.session, user, queue_name)
        upcoming = review.claim_next(db.session, user, queue.id)
    except DomainError:
        db.session.rollback()
        return None
    if upcoming is None:
        db.session.rollback()
        return None
    db.session.commit()
    return upcoming


def _command(kind: str, form: forms.DecisionForm, case: Case) -> review.DecisionCommand:
    action, parameters = None, {}
    if isinstance(form, forms.EditForm | forms.BlindForm):
        spec = _spec(case, form.action.data)
        action = form.action.data or None
        parameters = forms.parse_parameters(spec, request.form) if spec else {}
    return review.DecisionCommand(
        kind=kind,
        action=action,
        parameters=parameters,
        reason_code=_value(form, "reason_code"),
        reason=_value(form, "reason"),
        case_version=form.case_version.data,
        view_hash=_final_hash(kind, case, action, parameters),
        target_queue=_value(form, "target_queue"),
        confirmed=form.confirmed.data == "1",
    )


def _final_hash(kind: str, case: Case, action: str | None, parameters: dict[str, Any]) -> str | None:
    """The page's hash (checked in ``decide``) proves what the reviewer saw; an edit binds the
    approval to the final action too, as the case type's schema normalises it."""
    if kind != "edit" or not action:
        return _page_hash(case)
    try:
        normalised = get_case_type(case.domain, case.case_type).validate_action(action, parameters)
    except ValueError:
        return _page_hash(case)  # invalid: the services refuse it with field errors first
    return policy.view_hash(case, action, normalised.model_dump(mode="json"))


def _page_hash(case: Case) -> str:
    return policy.view_hash(case, *policy.proposed_action(db.session, case))


def _value(form: forms.DecisionForm, name: str) -> str | None:
    """A text field's stripped value; None when blank or when the form has no such field."""
    found = getattr(form, name, None)
    return ((found.data or "").strip() or None) if found is not None else None


def _attach_errors(form: FlaskForm, errors: dict[str, str]) -> None:
    """The services' field errors, shown at the form's fields of the same names."""
    for name, message in errors.items():
        target = form._fields.get(name)
        if target is not None:
            target.errors = [*target.errors, sentence(message)]


def _decided_message(decision: Decision) -> str:
    action = f": {presenters.humanize(decision.action)}" if decision.action else ""
    return f"Decision recorded ({presenters.humanize(decision.kind).lower()}{action})."


# --- the case page ------------------------------------------------------------------------------------


@dataclass
class DecisionPanel:
    """Which decision controls the current user gets on this case, with their forms."""

    can_claim: bool = False
    can_release: bool = False
    can_decide: bool = False
    can_retry: bool = False
    second_approval: bool = False
    claimed_by: str | None = None
    first_approval: Decision | None = None
    waiting_for: str | None = None  # the role a second approval needs
    answerable: bool = False  # the reviewer may answer instead of deciding (respond)
    forms: dict[str, forms.DecisionForm] = field(default_factory=dict)


def render_case(user: User, case: Case, *, submitted: dict[str, forms.DecisionForm] | None = None,
                open_panel: str = "", assign_form: forms.AssignForm | None = None,
                confirm: list[str] | None = None) -> str:
    """The case page; ``submitted`` decision forms or a submitted ``assign_form`` are shown as
    they were sent, with their errors; ``confirm``: the reasons to confirm the approval of the
    submitted form before it is made."""
    submitted = submitted or {}
    hidden = review.recommendation_hidden(db.session, user, case)
    rec = None
    if case.recommendation is not None and not hidden:
        rec = presenters.present_recommendation(case.recommendation, case.currency,
                                                permissions.may_open(db.session, user))
    panel = _decision_panel(user, case, submitted)
    first = panel.first_approval
    proposed = policy.proposed_action(db.session, case)
    return render_template(
        "review/case.html",
        case=case,
        confirm=confirm,
        page_shortcuts=_case_shortcuts(panel, case, rec is not None),
        dual_reasons=policy.dual_approval_reasons(case, *proposed) if proposed[0] and not hidden else [],
        proposed=proposed,
        edit_diff=_edit_diff(case, submitted.get("edit")) if rec else (),
        can_decide=permissions.can_in(user, "decide", case.queue),
        can_audit=_can(user, "audit"),
        view=presenters.present_case(case),
        rec=rec,
        calibrated=calibration.agreement_of(db.session, case.recommendation, case.case_type) if rec else None,
        cites=rec.citations if rec else presenters.Citations(()),
        no_cites=presenters.Citations(()),
        blind_hidden=hidden,
        failure=presenters.failure_reason(db.session, case.id) if case.status == Status.AI_FAILED else None,
        panel=panel,
        first_sections=presenters.parameter_sections(first.parameters, case.currency) if first else (),
        param_values=_param_values(case, submitted),
        specs=_specs(case),
        decisions=[] if hidden else policy.decisions_of(db.session, case),
        reason_labels=reason_codes.labels(db.session),
        final=policy.approving_decision(db.session, case),
        timeline=presenters.timeline(db.session, case.id, hide_ai=hidden),
        sla=sla.standing_of(case),
        open_panel=open_panel,
        action_form=forms.ActionForm(formdata=None),
        assign_form=_assign_form(user, case, assign_form),
        raw_json=presenters.raw_json(case.payload),
    )


def _edit_diff(case: Case, form: forms.DecisionForm | None) -> tuple[presenters.DiffRow, ...]:
    """A sent (refused, or to be confirmed) edit against the AI's proposal."""
    spec = _spec(case, form.action.data) if isinstance(form, forms.EditForm) else None
    if spec is None:
        return ()
    rec = case.recommendation
    final = (spec.name, forms.parse_parameters(spec, form.sent))
    return presenters.diff_rows(review.decision_diff((rec.action, rec.parameters), final))


def _case_shortcuts(panel: DecisionPanel, case: Case, shows_recommendation: bool) -> list[tuple[str, str]]:
    """The keys that do something on this case page, for this reviewer, now."""
    keys: list[tuple[str, str]] = []
    if panel.can_claim:
        keys.append(("c", "Claim"))
    if panel.can_decide:
        if shows_recommendation:
            keys.append(("a", "Approve"))
        keys += [("e", "Edit, then approve"), ("r", "Reject recommendation"), ("i", "Request information"),
                 ("x", "Escalate")]
    if panel.second_approval:
        keys += [("a", "Give second approval"), ("r", "Reject")]
    if case.queue is not None and (panel.can_claim or panel.can_decide or panel.claimed_by):
        keys.append(("n", "Next case"))
    return [*keys, ("v", "Raw JSON")]


ASSIGNABLE = (Status.PENDING_REVIEW, Status.AI_FAILED, Status.IN_REVIEW)


def _assign_form(user: User, case: Case, submitted: forms.AssignForm | None) -> forms.AssignForm | None:
    """Seniors and admins may give a case waiting for, or in, review to a reviewer of its queue."""
    if not _can(user, "assign") or case.status not in ASSIGNABLE:
        return None
    form = submitted or forms.AssignForm(formdata=None, prefix="assign")
    return form.with_assignees(review.assignees(db.session, case))



def _decision_panel(user: User, case: Case, submitted: dict[str, forms.DecisionForm]) -> DecisionPanel:
    status = Status(case.status)
    mine = case.assignee_id == user.id
    deciding = permissions.can_in(user, "decide", case.queue)
    panel = DecisionPanel(
        can_claim=deciding and status in (Status.PENDING_REVIEW, Status.AI_FAILED) and case.assignee_id is None,
        can_release=deciding and status == Status.IN_REVIEW and mine,
        can_decide=deciding and status == Status.IN_REVIEW and mine,
        can_retry=status == Status.AI_FAILED and _can(user, "retry_analysis"),
        claimed_by=case.assignee.name if status == Status.IN_REVIEW and case.assignee and not mine else None,
        answerable=get_case_type(case.domain, case.case_type).answerable,
    )
    if status == Status.AWAITING_SECOND_APPROVAL:
        panel.first_approval = policy.pending_approval(db.session, case)
        if panel.first_approval is not None:
            first = panel.first_approval
            panel.waiting_for = policy.dual_approval_required(case, first.action, first.parameters)[1]
            panel.second_approval = deciding and policy.may_second_approve(db.session, case, first, user)
    if panel.can_decide or panel.second_approval:
        panel.forms = _decision_forms(case, submitted)
    return panel



def _param_values(case: Case, submitted: dict[str, forms.DecisionForm]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per form and action, the parameter values to show: as submitted, else the proposed ones."""
    values: dict[str, dict[str, dict[str, Any]]] = {"edit": {}, "blind": {}}
    for kind in values:
        form = submitted.get(kind)
        spec = _spec(case, form.action.data) if isinstance(form, forms.EditForm | forms.BlindForm) else None
        if spec is not None:
            values[kind][spec.name] = forms.parse_parameters(spec, form.sent)
    action, parameters = policy.proposed_action(db.session, case)
    if action and "edit" not in submitted:
        values["edit"][action] = dict(parameters)
    return values


def _bound_form(kind: str, case: Case) -> forms.DecisionForm:
    """The submitted form of ``kind``, read from the request."""
    return _with_choices(kind, forms.DECISION_FORMS[kind](formdata=request.form, prefix=kind), case)


def _decision_forms(case: Case, submitted: dict[str, forms.DecisionForm]) -> dict[str, forms.DecisionForm]:
    """Every decision form: the one just submitted as it was, the others fresh for the case's state."""
    proposed = policy.proposed_action(db.session, case)
    shown = _shown(case, proposed)
    codes = reason_codes.all_codes(db.session)  # once for every form
    extra: dict[str, dict[str, Any]] = {"edit": {"action": proposed[0]}}
    if case.queue and case.queue.escalation_target:
        extra["escalate"] = {"target_queue": case.queue.escalation_target.name}
    return {kind: submitted.get(kind)
            or _with_choices(kind, cls(formdata=None, prefix=kind, **shown, **extra.get(kind, {})), case, codes)
            for kind, cls in forms.DECISION_FORMS.items()}


def _shown(case: Case, proposed: policy.Final | None = None) -> dict[str, Any]:
    """What every decision form binds to: the version and the view of the case as shown now
    (``proposed``: its proposed action, when already read)."""
    view_hash = _page_hash(case) if proposed is None else policy.view_hash(case, *proposed)
    return {"case_version": case.version, "view_hash": view_hash}


def _with_choices(kind: str, form: forms.DecisionForm, case: Case,
                  codes: list[ReasonCode] | None = None) -> forms.DecisionForm:
    """The form's options: reason codes offered for ``kind`` (from ``codes`` when already read),
    actions of the case type, escalation targets."""
    if isinstance(form, forms.ReasonedForm):
        form.with_reason_codes(reason_codes.offered_in(codes or reason_codes.all_codes(db.session), kind))
    if isinstance(form, forms.EditForm | forms.BlindForm):
        form.action.choices = forms.choices([("", "Choose an action…"), *((s.name, s.label) for s in _specs(case))])
    if isinstance(form, forms.EscalateForm):
        form.target_queue.choices = forms.choices([("", "Choose a queue…"), *_escalation_targets(case)])
    return form


def _escalation_targets(case: Case) -> list[tuple[str, str]]:
    """The other queues of the case's domain."""
    queues = db.session.scalars(select(Queue).where(Queue.domain == case.domain, Queue.id != case.queue_id)
                                .order_by(Queue.name))
    return [(q.name, q.name) for q in queues]


def _specs(case: Case) -> list[forms.ActionSpec]:
    case_type = get_case_type(case.domain, case.case_type)
    return forms.action_specs(case_type, case_type.validate_data(case.payload))


def _spec(case: Case, action: str | None) -> forms.ActionSpec | None:
    return next((s for s in _specs(case) if s.name == action), None)
