"""The auditor's pages: the audit log (``/audit``), its verification (``/audit/verify``) and a
case's evidence package (``/cases/<id>/evidence`` printable, ``/cases/<id>/evidence.json``).

Admins and auditors only (the ``audit`` intent); every route is a GET and changes nothing but
the log's own seals and checkpoints (an evidence package signs one when the case needs it).
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, current_app, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from app.auditor import evidence, presenters, search, status
from app.auditor.forms import AuditFilterForm, ExportChoices
from app.cases import permissions
from app.cases.models import Queue
from app.cases.types import DOMAINS, REGISTRY
from app.errors import Invalid
from app.extensions import db, login_manager
from app.review.presenters import raw_json

bp = Blueprint("auditor", __name__)
EVIDENCE_CSS = "evidence.css"


@bp.before_request
def _require_login() -> Response | None:
    return None if current_user.is_authenticated else login_manager.unauthorized()


def _require_audit() -> None:
    permissions.require(current_user._get_current_object(), "audit")


@bp.get("/audit")
def audit_log() -> tuple[str, int]:
    _require_audit()
    form = AuditFilterForm(formdata=request.args)
    valid = form.validate()
    actor = _actor(form)  # checked even when another field is wrong: every error shows at once
    page = search.search(db.session, form.filters(actor)) if valid and actor is not None else None
    return render_template(
        "auditor/log.html", form=form, page=page,
        rows=presenters.audit_rows(db.session, page.events) if page else [],
        log=status.log_status(db.session, current_app.config), export=_export_choices(),
    ), 200 if page else 400


def _actor(form: AuditFilterForm) -> str | None:
    """The actor as stored for what was typed; None, with the error at the field, when there is none."""
    if form.actor.errors:
        return None
    try:
        return search.actor_of(db.session, form.actor.data or "")
    except Invalid as exc:
        form.actor.errors = [*exc.by_field.values()]
        return None


def _export_choices() -> ExportChoices:
    queues = db.session.scalars(select(Queue.name).order_by(Queue.name))
    return ExportChoices(domains=DOMAINS, queues=tuple(queues),
                         case_types=tuple(sorted({case_type.name for case_type in REGISTRY.values()})))


@bp.get("/audit/verify")
def verify() -> str:
    _require_audit()
    return render_template("auditor/verify.html", result=status.verify_small_log(db.session, current_app.config),
                           log=status.log_status(db.session, current_app.config))


@bp.get("/cases/<int:case_id>/evidence.json")
def evidence_json(case_id: int) -> Response:
    package = _package(case_id)
    return current_app.response_class(
        package.model_dump_json(indent=2), mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="case-{case_id}-evidence.json"'})


@bp.get("/cases/<int:case_id>/evidence")
def evidence_page(case_id: int) -> str:
    return render_evidence(_package(case_id))


def _package(case_id: int) -> evidence.EvidencePackage:
    """404 for a case the user does not see (none, for auditors), 403 without the audit intent."""
    permissions.get_case_for(db.session, current_user._get_current_object(), case_id, "audit")
    return evidence.build(db.session, current_app.config, case_id)


def render_evidence(package: evidence.EvidencePackage, *, standalone: bool = False) -> str:
    """The printable page of a package; ``standalone`` inlines its stylesheet (a file on its own)."""
    proven, pending = presenters.evidence_events(db.session, package)
    styles = _stylesheet() if standalone else None
    return render_template("auditor/evidence.html", package=package, proven=proven, pending=pending,
                           pretty=raw_json, styles=styles, json_url=None if standalone else url_for(
                               "auditor.evidence_json", case_id=package.case.id))


def _stylesheet() -> str:
    return Path(current_app.static_folder or "", EVIDENCE_CSS).read_text(encoding="utf-8")
