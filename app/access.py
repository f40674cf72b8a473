"""The guard of a blueprint of administration pages: who may read them, who may change things."""

from __future__ import annotations

from collections.abc import Iterable

from flask import Blueprint, request
from flask_login import current_user
from werkzeug.wrappers import Response

from app.cases import permissions
from app.extensions import login_manager


def protect(bp: Blueprint, *, edit_pages: Iterable[str] = (), read: str = "oversee", edit: str = "administer") -> None:
    """Every request of ``bp``: a GET needs the ``read`` intent (by default admins, auditors),
    anything else, and the GET of an ``edit_pages`` endpoint, the ``edit`` intent (by default admins)."""
    editing_pages = frozenset(edit_pages)

    @bp.before_request
    def _require_access() -> Response | None:
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        editing = request.method != "GET" or request.endpoint in editing_pages
        permissions.require(current_user, edit if editing else read)
        return None
