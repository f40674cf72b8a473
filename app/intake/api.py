"""The upstream API: ``POST /api/v1/cases`` (signed intake) and ``GET /api/v1/cases/<id>``."""

from __future__ import annotations

import hashlib

from flask import Blueprint, Response, current_app, jsonify, request, url_for
from sqlalchemy.exc import IntegrityError

from app.errors import Problem
from app.extensions import db, limiter
from app.intake import services, signatures
from app.intake.presenters import case_document
from app.jobs import enqueue_analysis

bp = Blueprint("intake", __name__, url_prefix="/api/v1")


def _client_key() -> str:
    """Rate-limit per API client: key on the token's hash, never the token itself."""
    token = request.headers.get("Authorization", "")
    return "client:" + hashlib.sha256(token.encode()).hexdigest()[:16]


def _intake_limit() -> str:
    return current_app.config["INTAKE_RATE_LIMIT"]


@bp.post("/cases")
@limiter.limit(_intake_limit, key_func=_client_key)
def create_case() -> tuple[Response, int]:
    client = services.authenticate(db.session, request.headers.get("Authorization"))
    if request.mimetype != "application/json":
        raise Problem(415, "unsupported-media-type", "Unsupported media type",
                      f"send the case as application/json, not {request.mimetype or 'no content type'!r}")
    raw = request.get_data(cache=True)  # Werkzeug enforces MAX_CONTENT_LENGTH (413) before reading it all
    try:
        signatures.verify(
            services.active_secrets(client),
            request.headers.get("webhook-id"),
            request.headers.get("webhook-timestamp"),
            request.headers.get("webhook-signature"),
            raw,
            tolerance=current_app.config["WEBHOOK_TOLERANCE_SECONDS"],
        )
    except signatures.SignatureError as exc:
        raise Problem(401, "invalid-signature", "Invalid webhook signature", str(exc)) from None
    webhook_id = request.headers["webhook-id"]
    if len(webhook_id) > 255:
        raise Problem(400, "invalid-webhook-id", "webhook-id too long", "webhook-id must be at most 255 characters")
    case_url = url_for("intake.get_case", case_id=0, _external=True).replace("/0", "/{id}")
    for attempt in (1, 2):
        try:
            result = services.submit_case(
                db.session, client, webhook_id, raw, case_url=case_url,
                insecure_callback_hosts=current_app.config["INSECURE_CALLBACK_HOSTS"],
            )
            db.session.commit()
            break
        except IntegrityError:
            db.session.rollback()  # a concurrent twin won the race; the retry sees it
            if attempt == 2:
                raise
    if result.created:
        enqueue_analysis(result.case_id, result.version)
    response = jsonify(result.body)
    response.headers["Location"] = result.body["url"]
    return response, 202


@bp.get("/cases/<int:case_id>")
def get_case(case_id: int) -> Response:
    client = services.authenticate(db.session, request.headers.get("Authorization"))
    return jsonify(case_document(db.session, client, case_id))
