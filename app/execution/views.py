"""Admin: failed executions (retry, mark handled) and recent deliveries, ``/admin/executions``.

Admins act; auditors see the page read-only; everyone else gets a 403.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from app.auth.models import Role, User
from app.execution import services
from app.execution.forms import MarkHandledForm, RetryForm
from app.extensions import db
from app.review import presenters
from app.review.services import ReviewError

bp = Blueprint("execution", __name__, url_prefix="/admin/executions")

VIEWERS = frozenset({Role.ADMIN.value, Role.AUDITOR.value})
ADMINS = frozenset({Role.ADMIN.value})


def _user(roles: frozenset[str]) -> User:
    user = current_user._get_current_object()
    if user.role not in roles:
        abort(403)
    return user


def _back(message: str, category: str) -> Response:
    flash(message, category)
    return redirect(url_for("execution.failures"))


def _refused(exc: ReviewError) -> Response:
    db.session.rollback()
    if exc.status in (403, 404):
        abort(exc.status, exc.message)
    return _back(exc.message[:1].upper() + exc.message[1:] + ".", "error")


@bp.get("")
@login_required
def failures() -> str:
    user = _user(VIEWERS)
    return render_template(
        "execution/failures.html", failures=services.failed_executions(db.session),
        deliveries=services.recent_executions(db.session), can_act=user.role == Role.ADMIN,
        retry_form=RetryForm(), handled_form=MarkHandledForm(), when=presenters.when, humanize=presenters.humanize,
    )


@bp.post("/<int:case_id>/retry")
@login_required
def retry(case_id: int) -> Response:
    admin = _user(ADMINS)
    if not RetryForm().validate_on_submit():
        abort(400)
    try:
        services.retry_execution(db.session, admin, case_id)
    except ReviewError as exc:
        return _refused(exc)
    db.session.commit()
    services.enqueue_execution(case_id)  # after the commit, never before
    return _back(f"Case {case_id}: delivery retried.", "success")


@bp.post("/<int:case_id>/handled")
@login_required
def handled(case_id: int) -> Response:
    admin = _user(ADMINS)
    form = MarkHandledForm()
    if not form.validate_on_submit():
        return _back("Say how the failure was handled.", "error")
    try:
        services.mark_handled(db.session, admin, case_id, form.reason.data)
    except ReviewError as exc:
        return _refused(exc)
    db.session.commit()
    return _back(f"Case {case_id}: failure marked handled.", "success")
