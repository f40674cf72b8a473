"""The admin index (``/admin``): one page that leads to every administration area."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user

from app.access import protect
from app.cases import permissions

bp = Blueprint("admin", __name__, url_prefix="/admin")
protect(bp)


@bp.get("")
def index() -> str:
    return render_template("admin/index.html", can_edit=permissions.can(current_user, "administer"))
