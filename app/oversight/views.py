"""Oversight pages: ``/oversight/calibration`` (the reliability diagrams) and ``/oversight/qa``
(the QA samples and their verdicts). Admins, auditors and senior reviewers read them (seniors:
the samples of their queues); senior reviewers give QA verdicts."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import RadioField, TextAreaField

from app.cases import permissions
from app.errors import Conflict, Invalid
from app.extensions import db, login_manager
from app.forms import choices, show_errors
from app.oversight import calibration, diagrams, qa

bp = Blueprint("oversight", __name__, url_prefix="/oversight")
SHOWN = 200  # samples awaiting a verdict, newest first
RECENT_VERDICTS = 50


class VerdictForm(FlaskForm):
    verdict = RadioField("Verdict", choices=choices([("agree", "Agree"), ("disagree", "Disagree")]),
                         validate_choice=False)
    reason = TextAreaField("Reason", description="Required when you disagree: it goes to the queue lead.")


@bp.before_request
def _require_access() -> Response | None:
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    permissions.require(current_user, "view_quality")
    return None


# --- calibration -----------------------------------------------------------------------------------------


@bp.get("/calibration")
def calibration_page() -> str:
    rows = calibration.all_calibrations(db.session)
    return render_template("oversight/calibration.html", rows=rows, diagrams={r.id: diagrams.diagram(r) for r in rows},
                           minimum=calibration.minimum_decisions())


# --- QA ---------------------------------------------------------------------------------------------------


@bp.get("/qa")
def qa_page() -> str:
    return _qa_page({})


@bp.post("/qa/<int:review_id>/verdict")
def verdict(review_id: int) -> Response | tuple[str, int]:
    user = current_user._get_current_object()
    review = qa.sample_for_verdict(db.session, user, review_id)
    form = VerdictForm(prefix=f"qa-{review.id}")
    if form.validate_on_submit():
        try:
            qa.record_verdict(db.session, user, review.id, form.verdict.data or "", form.reason.data)
        except (Invalid, Conflict) as exc:
            db.session.rollback()
            show_errors(form, exc)
        else:
            db.session.commit()
            flash(f"QA verdict on case {review.case_id} recorded.", "success")
            return redirect(url_for("oversight.qa_page"))
    return _qa_page({review_id: form}), 422


def _qa_page(submitted: dict[int, VerdictForm]) -> str:
    user = current_user._get_current_object()
    waiting = qa.reviews_for(db.session, user, judged=False, limit=SHOWN)
    judged = qa.reviews_for(db.session, user, judged=True, limit=RECENT_VERDICTS)
    forms = {review_id: submitted.get(review_id) or VerdictForm(formdata=None, prefix=f"qa-{review_id}")
             for review_id in qa.judgeable(db.session, user, waiting)}
    return render_template("oversight/qa.html", waiting=waiting, judged=judged, forms=forms, shown=SHOWN)
