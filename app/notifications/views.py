"""The bell: ``unread_notifications`` in every template, ``GET /notifications`` and ``POST /notifications/read``."""

from __future__ import annotations

import logging

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.wrappers import Response

from app.extensions import db, login_manager
from app.notifications import services
from app.notifications.models import TITLES

log = logging.getLogger(__name__)
bp = Blueprint("notifications", __name__)
PER_PAGE = 25


@bp.app_context_processor
def _bell() -> dict[str, int]:
    if not current_user.is_authenticated:
        return {"unread_notifications": 0}
    try:
        return {"unread_notifications": services.unread_count(db.session, current_user)}
    except SQLAlchemyError:  # an error page after a failed transaction still renders, without a count
        log.warning("could not count unread notifications", exc_info=True)
        return {"unread_notifications": 0}


@bp.before_request
def _require_login() -> Response | None:
    return None if current_user.is_authenticated else login_manager.unauthorized()


@bp.get("/notifications")
def index() -> str:
    page = db.paginate(services.inbox_query(current_user), per_page=PER_PAGE, max_per_page=100, error_out=False)
    return render_template("notifications/index.html", page=page, titles=TITLES)


@bp.post("/notifications/read")
def read_all() -> Response:
    marked = services.mark_all_read(db.session, current_user)
    db.session.commit()
    flash(f"{marked} notification{'s' if marked != 1 else ''} marked as read.", "success")
    return redirect(url_for("notifications.index"))
