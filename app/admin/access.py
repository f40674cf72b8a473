"""Who may use an administration page: admins change things, auditors read, everyone else is refused."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from flask import Blueprint, current_app, flash, redirect, request
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response

from app.actors import Actor
from app.cases import permissions
from app.errors import DomainError
from app.extensions import db, login_manager
from app.forms import show_errors
from app.problems import sentence

T = TypeVar("T")


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


def admin_actor() -> Actor:
    return Actor.user(current_user._get_current_object())


def shown_once(page: str) -> Response:
    """A page with a secret on it (a one-time password, a token): never kept by a cache."""
    response = current_app.make_response(page)
    response.headers["Cache-Control"] = "no-store"
    return response


def apply(change: Callable[[], str], back: str) -> Response:
    """A button's change (its CSRF token checked by Flask-WTF): committed and its message flashed,
    or refused with the reason flashed and nothing stored; then back to ``back``."""
    try:
        message = change()
    except DomainError as exc:
        db.session.rollback()
        flash(sentence(exc.message), "error")
    else:
        db.session.commit()
        flash(message, "success")
    return redirect(back)


def submitted(form: FlaskForm, change: Callable[[], T], field_of: Callable[[str], str] = str) -> tuple[bool, T | None]:
    """A posted form's change: ``(True, its result)`` once validated, made and committed; ``(False, None)``
    when the form is not posted or not valid, or the service refused (its reasons shown on the form,
    nothing stored)."""
    if not form.validate_on_submit():
        return False, None
    try:
        result = change()
    except DomainError as exc:
        db.session.rollback()
        show_errors(form, exc, field_of)
        return False, None
    db.session.commit()
    return True, result
