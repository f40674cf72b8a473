"""Admin pages of the escalation rules (``/admin/rules``): admins edit, auditors read, others get 403."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from app.access import protect
from app.actors import Actor
from app.cases import permissions
from app.escalation import forms, services
from app.escalation.models import EscalationRule
from app.escalation.rules import BUILTIN_RULES, RuleInvalid
from app.extensions import db

bp = Blueprint("escalation", __name__, url_prefix="/admin/rules")

protect(bp, edit_pages={"escalation.new_rule", "escalation.edit_rule"})


def describe(value: Any) -> str:
    """Compact YAML-like text: ``{"flags_any": ["a", "b"], "ai_failed": True}`` →
    ``flags_any: [a, b], ai_failed: true``; an action without parameters is just its name."""
    if isinstance(value, dict):
        return ", ".join(f"{key}: {describe(item)}" if item != {} else key for key, item in value.items())
    if isinstance(value, list):
        return "[" + ", ".join(describe(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _rule(rule_id: int) -> EscalationRule:
    return db.get_or_404(EscalationRule, rule_id, description=f"no escalation rule {rule_id}")


def _actor() -> Actor:
    return Actor.user(current_user._get_current_object())


@bp.get("")
def rules() -> str:
    return render_template("escalation/rules.html", rules=services.ordered_rules(db.session), describe=describe,
                           builtin=[spec.to_document() for spec in BUILTIN_RULES],
                           can_edit=permissions.can(current_user, "administer"), enabled_form=forms.EnabledForm(),
                           move_form=forms.MoveForm())


def _edit_page(form: forms.RuleForm, rule: EscalationRule | None) -> Response | str:
    if form.validate_on_submit():
        try:
            saved = services.save_rule(db.session, form.text.data, _actor(), rule)
        except RuleInvalid as exc:
            db.session.rollback()
            form.text.errors = [str(error) for error in exc.errors]
        else:
            db.session.commit()
            flash(f"Rule “{saved.name}” saved (version {saved.version}).", "success")
            return redirect(url_for("escalation.rules"))
    status = 422 if form.text.errors else 200
    return render_template("escalation/edit.html", form=form, rule=rule, example=forms.EXAMPLE), status


@bp.route("/new", methods=["GET", "POST"])
def new_rule() -> Response | str:
    return _edit_page(forms.RuleForm(), None)


@bp.route("/<int:rule_id>/edit", methods=["GET", "POST"])
def edit_rule(rule_id: int) -> Response | str:
    rule = _rule(rule_id)
    form = forms.RuleForm(data={"text": services.yaml_of(services.document_of(rule))} if request.method == "GET"
                          else None)
    return _edit_page(form, rule)


@bp.post("/<int:rule_id>/enabled")
def set_enabled(rule_id: int) -> Response:
    rule, form = _rule(rule_id), forms.EnabledForm()
    if not form.validate_on_submit():
        abort(400, "enabled must be 0 or 1")
    services.set_enabled(db.session, rule, form.enabled.data == "1", _actor())
    db.session.commit()
    flash(f"Rule “{rule.name}” {'enabled' if rule.enabled else 'disabled'}.", "success")
    return redirect(url_for("escalation.rules"))


@bp.post("/<int:rule_id>/move")
def move(rule_id: int) -> Response:
    rule, form = _rule(rule_id), forms.MoveForm()
    if not form.validate_on_submit():
        abort(400, "direction must be up or down")
    services.move_rule(db.session, rule, -1 if form.direction.data == "up" else 1, _actor())
    db.session.commit()
    return redirect(url_for("escalation.rules"))
