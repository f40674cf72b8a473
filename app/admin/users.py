"""User administration (``/admin/users``): admins create and change accounts, auditors read."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from app.access import protect
from app.admin import forms
from app.admin.access import admin_actor, apply, shown_once, submitted
from app.auth import accounts, services
from app.cases import permissions, queues
from app.extensions import db
from app.users import User

bp = Blueprint("admin_users", __name__, url_prefix="/admin/users")
protect(bp, edit_pages={"admin_users.new_user", "admin_users.edit_user"})


def _user(user_id: int) -> User:
    return db.get_or_404(User, user_id, description=f"no user {user_id}")


def _with_queues(form: forms.UserForm) -> forms.UserForm:
    form.queues.choices = forms.choices((q.name, q.name) for q in queues.list_queues(db.session))
    return form


@bp.get("")
def users() -> str:
    return render_template("admin/users.html", accounts=accounts.list_accounts(db.session),
                           can_edit=permissions.can(current_user, "administer"))


@bp.route("/new", methods=["GET", "POST"])
def new_user() -> Response | str | tuple[str, int]:
    form = _with_queues(forms.NewUserForm())
    done, created = submitted(form, lambda: accounts.create_account(
        db.session, form.email.data, form.role.data, admin_actor(), name=form.name.data, queues=form.queues.data))
    if done:
        user, password = created
        return shown_once(render_template("admin/one_time_password.html", user=user, password=password, created=True))
    return render_template("admin/user_edit.html", form=form, user=None), 422 if form.errors else 200


@bp.route("/<int:user_id>", methods=["GET", "POST"])
def edit_user(user_id: int) -> Response | str | tuple[str, int]:
    user = _user(user_id)
    initial = {"name": user.name, "role": user.role, "queues": [q.name for q in user.queues], "qa_all": user.qa_all}
    form = _with_queues(forms.EditUserForm(data=initial if request.method == "GET" else None))
    done, changed = submitted(form, lambda: accounts.update_account(
        db.session, user, admin_actor(), name=form.name.data, role=form.role.data, queues=form.queues.data,
        qa_all=form.qa_all.data))
    if done:
        flash(f"{user.email}: {', '.join(changed) + ' changed' if changed else 'nothing changed'}.", "success")
        return redirect(url_for("admin_users.users"))
    return render_template("admin/user_edit.html", form=form, user=user, confirm=forms.ConfirmForm()), \
        422 if form.errors else 200


@bp.post("/<int:user_id>/deactivate")
def deactivate(user_id: int) -> Response:
    user = _user(user_id)

    def done() -> str:
        ended = accounts.deactivate(db.session, user, admin_actor())
        return (f"{user.email} deactivated: {ended['sessions_ended']} session(s) ended, "
                f"{ended['tokens_revoked']} API token(s) revoked.")

    return apply(done, url_for("admin_users.users"))


@bp.post("/<int:user_id>/reactivate")
def reactivate(user_id: int) -> Response:
    user = _user(user_id)

    def done() -> str:
        accounts.reactivate(db.session, user, admin_actor())
        return f"{user.email} reactivated: they can sign in with their password again."

    return apply(done, url_for("admin_users.users"))


@bp.post("/<int:user_id>/sign-out")
def sign_out(user_id: int) -> Response:
    user = _user(user_id)

    def done() -> str:
        return f"{user.email}: {services.end_all_sessions(db.session, user, admin_actor())} session(s) ended."

    return apply(done, url_for("admin_users.users"))


@bp.post("/<int:user_id>/reset-password")
def reset_password(user_id: int) -> Response:
    user = _user(user_id)
    password = accounts.reset_password(db.session, user, admin_actor())
    db.session.commit()
    return shown_once(render_template("admin/one_time_password.html", user=user, password=password, created=False))
