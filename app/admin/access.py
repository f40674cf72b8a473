"""What every administration page does alike: the acting admin, buttons that change one thing,
forms, and pages that show a secret once. Who may use the pages is `app.access.protect`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import current_app, flash, redirect
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response

from app.actors import Actor
from app.errors import DomainError
from app.extensions import db
from app.forms import show_errors
from app.problems import sentence

T = TypeVar("T")


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
