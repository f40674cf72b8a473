"""API client administration (``/admin/clients``): admins create, change, rotate and revoke; auditors read."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from app.access import protect
from app.admin import forms
from app.admin.access import admin_actor, apply, shown_once, submitted
from app.cases import permissions
from app.cases.types import DOMAINS
from app.extensions import db
from app.intake import services as intake
from app.intake.models import ApiClient

bp = Blueprint("admin_clients", __name__, url_prefix="/admin/clients")
protect(bp, edit_pages={"admin_clients.new_client", "admin_clients.edit_client"})


def _client(client_id: int) -> ApiClient:
    return db.get_or_404(ApiClient, client_id, description=f"no API client {client_id}")


def _with_domains(form: forms.ClientForm) -> forms.ClientForm:
    form.domains.choices = forms.choices((d, d) for d in DOMAINS)
    return form


def _hosts(text: str | None) -> list[str]:
    return [part for part in re.split(r"[\s,]+", text or "") if part]


@bp.get("")
def clients() -> str:
    return render_template("admin/clients.html", clients=intake.list_clients(db.session),
                           can_edit=permissions.can(current_user, "administer"), confirm=forms.ConfirmForm(),
                           rotate=forms.RotateForm())


@bp.route("/new", methods=["GET", "POST"])
def new_client() -> Response | str | tuple[str, int]:
    form = _with_domains(forms.NewClientForm())
    done, new = submitted(form, lambda: intake.create_client(
        db.session, form.name.data, form.domains.data or [], _hosts(form.callback_hosts.data), actor=admin_actor()))
    if done:
        return shown_once(render_template("admin/client_credentials.html", client=new.client, token=new.token,
                                          secret=new.signing_secret))
    return render_template("admin/client_edit.html", form=form, client=None), 422 if form.errors else 200


@bp.route("/<int:client_id>/edit", methods=["GET", "POST"])
def edit_client(client_id: int) -> Response | str | tuple[str, int]:
    client = _client(client_id)
    initial = {"domains": client.allowed_domains, "callback_hosts": "\n".join(client.callback_hosts)}
    form = _with_domains(forms.ClientForm(data=initial if request.method == "GET" else None))
    done, changed = submitted(form, lambda: intake.update_client(
        db.session, client, admin_actor(), domains=form.domains.data or [],
        callback_hosts=_hosts(form.callback_hosts.data)))
    if done:
        flash(f"{client.name}: {', '.join(changed) + ' changed' if changed else 'nothing changed'}.", "success")
        return redirect(url_for("admin_clients.clients"))
    return render_template("admin/client_edit.html", form=form, client=client), 422 if form.errors else 200


@bp.post("/<int:client_id>/rotate-secret")
def rotate_secret(client_id: int) -> Response:
    client, form = _client(client_id), forms.RotateForm()
    if not form.validate_on_submit():
        flash(f"The grace period must be 0 to {forms.MAX_GRACE_HOURS} hours.", "error")
        return redirect(url_for("admin_clients.clients"))
    secret = intake.rotate_secret(db.session, client, timedelta(hours=form.grace_hours.data), actor=admin_actor())
    db.session.commit()
    return shown_once(render_template("admin/client_credentials.html", client=client, token=None, secret=secret,
                                      grace_hours=form.grace_hours.data))


@bp.post("/<int:client_id>/revoke")
def revoke(client_id: int) -> Response:
    client = _client(client_id)

    def done() -> str:
        intake.revoke_client(db.session, client, admin_actor())
        return f"{client.name} revoked: its token is refused from now on."

    return apply(done, url_for("admin_clients.clients"))
