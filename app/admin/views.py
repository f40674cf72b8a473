"""The admin index (``/admin``): one page that leads to every administration area."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user
from werkzeug.wrappers import Response

from app.cases import permissions
from app.extensions import login_manager

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
def _require_access() -> Response | None:
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    permissions.require(current_user, "oversee")
    return None


@bp.get("")
def index() -> str:
    return render_template("admin/index.html", can_edit=permissions.can(current_user, "administer"))
