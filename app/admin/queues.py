"""Admin pages of the review queues (``/admin/queues``): admins create, edit, archive and unarchive;
auditors read; others get 403. The queue service validates and audits every change."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.access import protect
from app.admin.access import admin_actor, submitted
from app.admin.forms import QueueForm, form_field
from app.cases import permissions
from app.cases import queues as service
from app.cases.models import Queue
from app.errors import DomainError
from app.extensions import db
from app.review.forms import ActionForm
from app.users import User

bp = Blueprint("admin_queues", __name__, url_prefix="/admin/queues")

protect(bp, edit_pages={"admin_queues.new_queue", "admin_queues.edit_queue"})


def _queue(queue_id: int) -> Queue:
    return db.get_or_404(Queue, queue_id, description=f"no queue {queue_id}")


def _form(editing: Queue | None) -> QueueForm:
    people = list(db.session.scalars(select(User).where(User.active.is_(True)).order_by(User.name, User.id)))
    return QueueForm().with_choices(service.list_queues(db.session), people, editing)


@bp.get("")
def queues() -> str:
    return render_template("admin/queues.html", queues=service.list_queues(db.session),
                           described=service.describe, can_edit=permissions.can(current_user, "administer"),
                           action_form=ActionForm())


@bp.route("/new", methods=["GET", "POST"])
def new_queue() -> Response | tuple[str, int]:
    form = _form(None)
    if request.method == "GET":
        form.required_role.data = "reviewer"
    return _saved(form, None, lambda: service.create_queue(
        db.session, form.name.data or "", form.domain.data or "", move_default=form.move_default.data,
        actor=admin_actor(), **form.settings()))


@bp.route("/<int:queue_id>/edit", methods=["GET", "POST"])
def edit_queue(queue_id: int) -> Response | tuple[str, int]:
    queue = _queue(queue_id)
    form = _form(queue)
    if request.method == "GET":
        form.fill(queue)
    form.name.data, form.domain.data = queue.name, queue.domain  # fixed once the queue exists
    return _saved(form, queue, lambda: service.update_queue(
        db.session, queue, {**form.settings(), **({"move_default": True} if form.move_default.data else {})},
        admin_actor()))


def _saved(form: QueueForm, queue: Queue | None, save: Callable[[], Any]) -> Response | tuple[str, int]:
    """Validate and save the submitted form (the service refuses with reasons, shown under their
    fields; nothing is stored then), or show it."""
    done, result = submitted(form, save, form_field)
    if done:
        name = queue.name if queue is not None else result.name
        flash(f"Queue “{name}” {'created' if queue is None else 'saved' if result else 'unchanged'}.", "success")
        return redirect(url_for("admin_queues.queues"))
    status = 422 if request.method == "POST" else 200
    return render_template("admin/queue_form.html", form=form, queue=queue), status


@bp.post("/<int:queue_id>/archive")
def archive(queue_id: int) -> Response:
    return _archiving(_queue(queue_id), service.archive_queue, "archived: it receives no new cases")


@bp.post("/<int:queue_id>/unarchive")
def unarchive(queue_id: int) -> Response:
    return _archiving(_queue(queue_id), service.unarchive_queue, "unarchived: it receives new cases again")


def _archiving(queue: Queue, change: Callable[..., dict[str, list[Any]]], done: str) -> Response:
    if not ActionForm().validate_on_submit():
        abort(400, "the form expired: reload the page")
    try:
        change(db.session, queue, admin_actor())
    except DomainError as exc:
        db.session.rollback()
        flash(exc.message, "error")
    else:
        db.session.commit()
        flash(f"Queue “{queue.name}” {done}.", "success")
    return redirect(url_for("admin_queues.queues"))
