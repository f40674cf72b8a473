"""The kill switch's page (``/admin/controls``): admins pause and resume AI analysis or executions,
auditors and senior reviewers read; and the banner every page shows while a pause is in force."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response
from wtforms import HiddenField, RadioField, SelectField, TextAreaField
from wtforms.validators import InputRequired, Length

from app.access import protect
from app.admin.access import admin_actor
from app.cases import permissions
from app.cases.queues import list_queues
from app.controls import switch
from app.controls.models import What
from app.errors import Conflict, DomainError
from app.extensions import db
from app.forms import choices
from app.kill_switch import services
from app.problems import sentence

log = logging.getLogger(__name__)
bp = Blueprint("controls", __name__, url_prefix="/admin/controls")
EVERY_QUEUE = ("", "Every queue")


class PauseForm(FlaskForm):
    what = RadioField("Pause", choices=choices((w.value, w.label) for w in What), validators=[InputRequired()])
    queue = SelectField("Where", choices=choices([EVERY_QUEUE]))
    reason = TextAreaField("Why", validators=[InputRequired(), Length(max=services.MAX_REASON_LENGTH)],
                           description="Shown on every page while the pause is in force, and audited.")


class ResumeForm(FlaskForm):
    what = HiddenField(validators=[InputRequired()])
    queue = HiddenField()
    reason = TextAreaField("Why resume (optional)", validators=[Length(max=services.MAX_REASON_LENGTH)])


protect(bp, read="view_controls", edit="control")


@bp.app_context_processor
def _banner() -> dict[str, Any]:
    """``pauses_in_force`` for the banner of every page a signed-in user sees."""
    if not current_user.is_authenticated:
        return {"pauses_in_force": []}
    try:
        pauses = switch.in_force(db.session)
    except SQLAlchemyError:  # an error page after a failed transaction still renders, without the banner
        log.warning("could not read the kill switch", exc_info=True)
        return {"pauses_in_force": []}
    return {"pauses_in_force": pauses, "may_view_controls": permissions.can(current_user, "view_controls")}


def _pause_form() -> PauseForm:
    form = PauseForm()
    form.queue.choices = choices([EVERY_QUEUE, *((q.name, q.name) for q in list_queues(db.session))])
    return form


def _page(form: PauseForm, status: int = 200, error: str | None = None) -> tuple[str, int]:
    return render_template("admin/controls.html", form=form, resume_form=ResumeForm(), error=error,
                           pauses=switch.in_force(db.session), history=services.recent_changes(db.session),
                           can_control=permissions.can(current_user, "control"), whats=list(What),
                           labels={w.value: w.label for w in What}), status


@bp.get("")
def index() -> tuple[str, int]:
    return _page(_pause_form())


@bp.post("/pause")
def pause() -> Response | tuple[str, int]:
    form = _pause_form()
    if not form.validate_on_submit():
        return _page(form, 422)
    try:
        paused = services.pause(db.session, form.what.data, form.queue.data, form.reason.data, admin_actor())
    except DomainError as exc:
        db.session.rollback()
        for field, message in exc.by_field.items():
            form[field].errors = [*form[field].errors, message]
        return _page(form, 409 if isinstance(exc, Conflict) else 422, None if exc.errors else sentence(exc.message))
    db.session.commit()
    flash(f"{paused.label} paused for {paused.where}.", "success")
    return redirect(url_for("controls.index"))


@bp.post("/resume")
def resume() -> Response:
    form = ResumeForm()
    if not form.validate_on_submit():
        flash("Resume what? " + "; ".join(f"{name}: {', '.join(errors)}" for name, errors in form.errors.items()),
              "error")
        return redirect(url_for("controls.index"))
    try:
        lifted = services.resume(db.session, form.what.data, form.queue.data, admin_actor(), form.reason.data)
    except DomainError as exc:
        db.session.rollback()
        flash(sentence(exc.message), "error")
        return redirect(url_for("controls.index"))
    db.session.commit()
    flash(f"{lifted.label} resumed for {lifted.where}: the work that waited is enqueued.", "success")
    return redirect(url_for("controls.index"))
