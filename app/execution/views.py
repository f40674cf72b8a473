"""Admin: failed executions (retry, mark handled) and recent deliveries, ``/admin/executions``.

Admins act; auditors see the page read-only; everyone else gets a 403.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from app.cases import permissions
from app.errors import DomainError, Forbidden, NotFound
from app.execution import services
from app.execution.forms import MarkHandledForm, RetryForm
from app.extensions import db
from app.problems import sentence
from app.users import User

bp = Blueprint("execution", __name__, url_prefix="/admin/executions")



def _user(intent: str) -> User:
    user = current_user._get_current_object()
    permissions.require(user, intent)
    return user


def _back(message: str, category: str) -> Response:
    flash(message, category)
    return redirect(url_for("execution.failures"))


def _refused(exc: DomainError) -> Response:
    if isinstance(exc, Forbidden | NotFound):
        raise exc
    db.session.rollback()
    return _back(sentence(exc.message), "error")


@bp.get("")
@login_required
def failures() -> str:
    user = _user("oversee")
    return render_template(
        "execution/failures.html", failures=services.failed_executions(db.session),
        deliveries=services.recent_executions(db.session), can_act=permissions.can(user, "retry_execution"),
        retry_form=RetryForm(), handled_form=MarkHandledForm(),
    )


@bp.post("/<int:case_id>/retry")
@login_required
def retry(case_id: int) -> Response:
    admin = _user("retry_execution")
    if not RetryForm().validate_on_submit():
        abort(400)
    try:
        services.retry_execution(db.session, admin, case_id)
    except DomainError as exc:
        return _refused(exc)
    db.session.commit()
    return _back(f"Case {case_id}: delivery retried.", "success")


@bp.post("/<int:case_id>/handled")
@login_required
def handled(case_id: int) -> Response:
    admin = _user("retry_execution")
    form = MarkHandledForm()
    if not form.validate_on_submit():
        return _back("Say how the failure was handled.", "error")
    try:
        services.mark_handled(db.session, admin, case_id, form.reason.data)
    except DomainError as exc:
        return _refused(exc)
    db.session.commit()
    return _back(f"Case {case_id}: failure marked handled.", "success")
