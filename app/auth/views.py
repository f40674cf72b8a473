"""Sign in and out, and personal API tokens: ``/login``, ``/logout``, ``/settings/tokens``."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.exceptions import TooManyRequests
from werkzeug.wrappers import Response

from app.actors import Actor
from app.auth import accounts, services
from app.auth.forms import LoginForm, PasswordForm, TokenForm
from app.errors import DomainError
from app.extensions import db, limiter, login_manager
from app.forms import show_errors
from app.users import User

bp = Blueprint("auth", __name__)

INVALID_LOGIN = "Invalid email or password."
TOO_MANY_ATTEMPTS = "Too many sign-in attempts. Wait a minute, then try again."
SIGN_IN_UNAVAILABLE = "Signing in is unavailable for a moment. Try again shortly."
HOME = "/"

login_manager.login_view = "auth.login"


SESSION_KEY = "sid"  # the key of the server-side session's token in the signed cookie


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """The user of this browser's server-side session, if it is live and theirs."""
    config = current_app.config
    user = services.user_for_session(db.session, session.get(SESSION_KEY),
                                     idle=timedelta(minutes=config["SESSION_IDLE_MINUTES"]),
                                     longest=timedelta(hours=config["SESSION_MAX_HOURS"]))
    return user if user is not None and str(user.id) == user_id else None


def _account_key() -> str:
    """Rate-limit per account and client address (a hash, never the email itself): guesses from
    one address are throttled, and nobody elsewhere can lock the account's owner out."""
    email = request.form.get("email", "").strip().lower()
    return "login-account:" + hashlib.sha256(f"{email}|{get_remote_address()}".encode()).hexdigest()[:32]


def _account_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT_PER_ACCOUNT"]


def _ip_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT_PER_IP"]


def safe_next(target: str | None) -> str:
    """``next`` only ever leads to a path on this site."""
    if (not target or not target.startswith("/") or target.startswith("//") or "\\" in target
            or any(c.isspace() or not c.isprintable() for c in target)):
        return HOME
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else HOME


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_account_limit, key_func=_account_key, methods=["POST"])
@limiter.limit(_ip_limit, key_func=get_remote_address, methods=["POST"])
def login() -> Response | str | tuple[str, int]:
    form = LoginForm()
    if request.method == "POST" and not limiter.storage.check():
        # The limits live in Redis: without it, guesses would go uncounted. Fail closed.
        form.form_errors.append(SIGN_IN_UNAVAILABLE)
        return render_template("auth/login.html", form=form), 503
    if form.validate_on_submit():
        user = services.authenticate_password(db.session, form.email.data, form.password.data)
        if user is not None:
            session.clear()  # a fresh session: nothing set before sign-in survives it
            session[SESSION_KEY] = services.start_session(db.session, user)
            login_user(user)
            db.session.commit()
            if user.must_change_password:
                return redirect(url_for("auth.change_password"))
            return redirect(safe_next(request.args.get("next")))
        form.form_errors.append(INVALID_LOGIN)
    return render_template("auth/login.html", form=form)


PASSWORD_FIRST_EXEMPT = frozenset({"auth.change_password", "auth.logout", "static"})


@bp.before_app_request
def _password_first() -> Response | None:
    """Signed in with a one-time password: nothing but choosing one's own (or signing out)."""
    if request.endpoint in PASSWORD_FIRST_EXEMPT or not current_user.is_authenticated:
        return None
    return redirect(url_for("auth.change_password")) if current_user.must_change_password else None


@bp.route("/settings/password", methods=["GET", "POST"])
@login_required
def change_password() -> Response | tuple[str, int] | str:
    form = PasswordForm()
    if form.validate_on_submit():
        try:
            accounts.change_own_password(db.session, current_user, form.current_password.data, form.password.data)
        except DomainError as exc:
            db.session.rollback()
            show_errors(form, exc)
        else:
            db.session.commit()
            flash("Your password is changed.", "success")
            return redirect(HOME)
    return render_template("auth/password.html", form=form), 422 if form.errors else 200


@bp.errorhandler(TooManyRequests)
def too_many_attempts(exc: TooManyRequests) -> tuple[str, int]:
    form = LoginForm(formdata=None, email=request.form.get("email", ""))
    form.form_errors.append(TOO_MANY_ATTEMPTS)
    return render_template("auth/login.html", form=form), 429


@bp.post("/logout")
@login_required
def logout() -> Response:
    services.end_session(db.session, session.get(SESSION_KEY))
    db.session.commit()
    logout_user()
    session.clear()
    flash("You are signed out.")
    return redirect(url_for("auth.login"))


@bp.post("/settings/sessions/end")
@login_required
def sign_out_everywhere() -> Response:
    """End every session of the current user, this one included (a lost laptop, a shared machine)."""
    user = current_user._get_current_object()
    services.end_all_sessions(db.session, user, Actor.user(user))
    db.session.commit()
    logout_user()
    session.clear()
    flash("You are signed out on every browser.")
    return redirect(url_for("auth.login"))


@bp.route("/settings/tokens", methods=["GET", "POST"])
@login_required
def tokens() -> Response:
    form = TokenForm()
    new_token = None
    if form.validate_on_submit():
        _, new_token = services.create_api_token(db.session, current_user, form.label.data)
        db.session.commit()
        form = TokenForm(formdata=None)
    page = render_template("auth/tokens.html", form=form, new_token=new_token,
                           tokens=services.api_tokens_of(db.session, current_user))
    response = current_app.make_response(page)
    response.headers["Cache-Control"] = "no-store"  # the page may show a new token
    return response


@bp.post("/settings/tokens/<int:token_id>/revoke")
@login_required
def revoke_token(token_id: int) -> Response:
    token = services.revoke_api_token(db.session, current_user, token_id)
    db.session.commit()
    flash(f"Token “{token.label}” revoked.")
    return redirect(url_for("auth.tokens"))
