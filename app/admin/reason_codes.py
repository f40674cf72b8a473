"""Reason code administration (``/admin/reason-codes``): admins add, edit and deactivate; auditors read."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from app.access import protect
from app.admin import forms
from app.admin.access import admin_actor, apply, submitted
from app.cases import permissions
from app.extensions import db
from app.review import reason_codes as codes
from app.review.models import ReasonCode

bp = Blueprint("admin_reason_codes", __name__, url_prefix="/admin/reason-codes")
protect(bp, edit_pages={"admin_reason_codes.new_code", "admin_reason_codes.edit_code"})


def _code(code_id: int) -> ReasonCode:
    return db.get_or_404(ReasonCode, code_id, description=f"no reason code {code_id}")


@bp.get("")
def reason_codes() -> str:
    return render_template("admin/reason_codes.html", codes=codes.all_codes(db.session),
                           can_edit=permissions.can(current_user, "administer"), active_form=forms.ActiveForm())


@bp.route("/new", methods=["GET", "POST"])
def new_code() -> Response | str | tuple[str, int]:
    form = forms.NewReasonCodeForm()
    done, added = submitted(form, lambda: codes.add_code(
        db.session, form.code.data, form.label.data, form.kinds.data or [], admin_actor()))
    if done:
        flash(f"Reason code {added.code} added.", "success")
        return redirect(url_for("admin_reason_codes.reason_codes"))
    return render_template("admin/reason_code_edit.html", form=form, code=None), 422 if form.errors else 200


@bp.route("/<int:code_id>/edit", methods=["GET", "POST"])
def edit_code(code_id: int) -> Response | str | tuple[str, int]:
    reason = _code(code_id)
    form = forms.ReasonCodeForm(data={"label": reason.label, "kinds": reason.kinds} if request.method == "GET"
                                else None)
    done, changed = submitted(form, lambda: codes.update_code(
        db.session, reason, admin_actor(), label=form.label.data, kinds=form.kinds.data or []))
    if done:
        flash(f"{reason.code}: {', '.join(changed) + ' changed' if changed else 'nothing changed'}.", "success")
        return redirect(url_for("admin_reason_codes.reason_codes"))
    return render_template("admin/reason_code_edit.html", form=form, code=reason), 422 if form.errors else 200


@bp.post("/<int:code_id>/active")
def set_active(code_id: int) -> Response:
    reason, active = _code(code_id), forms.ActiveForm().active.data

    def done() -> str:
        codes.update_code(db.session, reason, admin_actor(), active=active)
        return f"{reason.code} {'reactivated: offered again' if active else 'deactivated: no longer offered'}."

    return apply(done, url_for("admin_reason_codes.reason_codes"))
