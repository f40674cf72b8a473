"""The upstream API: ``POST /api/v1/cases`` (signed intake), ``GET /api/v1/cases/<id>``, and the
signed case actions ``POST /api/v1/cases/<id>/info`` and ``POST /api/v1/cases/<id>/withdraw``.
The documents exchanged are declared in `app.intake.schemas`."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from flask import Blueprint, Response, current_app, g, jsonify, request, url_for
from sqlalchemy.exc import IntegrityError

from app import jsonbody, webhooks
from app.agents import waiting
from app.cases.types import CASE_TYPES
from app.errors import DomainError, Invalid
from app.extensions import db, limiter
from app.intake import services
from app.intake.models import ApiClient
from app.intake.presenters import case_document
from app.metrics import INTAKE_RESPONSES
from app.problems import Problem
from app.webhooks import CallbackPolicy

bp = Blueprint("intake", __name__, url_prefix="/api/v1")
CASE_TYPE_NAMES = frozenset(CASE_TYPES)
UNKNOWN_CASE_TYPE = "unknown"


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
    raw, webhook_id = _signed_body(client)
    g.verified_body = raw  # for the metrics' case_type label
    case_url = url_for("intake.get_case", case_id=0, _external=True).replace("/0", "/{id}")
    result = _committed(lambda look_first: services.submit_case(
        db.session, client, webhook_id, raw, case_url=case_url,
        callbacks=CallbackPolicy.from_config(current_app.config), look_first=look_first,
    ))
    return _answered(result)


@bp.after_request
def _count_intake_answer(response: Response) -> Response:
    """Every answer to ``POST /api/v1/cases`` is counted, refusals by the rate limiter included."""
    if request.endpoint == "intake.create_case":
        INTAKE_RESPONSES.labels(str(response.status_code), _declared_case_type()).inc()
    return response


def _declared_case_type() -> str:
    """The registered case type the verified body names, else "unknown" (nothing verified, not a
    JSON object, no such type): a client's free text never becomes a label."""
    raw = g.get("verified_body")
    try:
        declared = jsonbody.json_object(raw).get("case_type") if raw is not None else None
    except DomainError:
        return UNKNOWN_CASE_TYPE
    return declared if isinstance(declared, str) and declared in CASE_TYPE_NAMES else UNKNOWN_CASE_TYPE


def _signed_body(client: ApiClient) -> tuple[bytes, str]:
    """The raw JSON body of a request signed with one of the client's secrets, and its webhook-id."""
    if request.mimetype != "application/json":
        raise Problem(415, "unsupported-media-type", "Unsupported media type",
                      f"send the body as application/json, not {request.mimetype or 'no content type'!r}")
    raw = request.get_data(cache=True)  # Werkzeug enforces MAX_CONTENT_LENGTH (413) before reading it all
    try:
        raw.decode()
    except UnicodeDecodeError as exc:
        raise Problem(400, "malformed-json", "Malformed JSON", f"the body is not UTF-8 text: {exc}") from None
    try:
        webhooks.verify(
            client.active_secrets(),
            request.headers.get("webhook-id"),
            request.headers.get("webhook-timestamp"),
            request.headers.get("webhook-signature"),
            raw,
            tolerance=current_app.config["WEBHOOK_TOLERANCE_SECONDS"],
        )
    except webhooks.SignatureError as exc:
        raise Problem(401, "invalid-signature", "Invalid webhook signature", str(exc)) from None
    webhook_id = request.headers["webhook-id"]
    if len(webhook_id) > 255:
        raise Problem(400, "invalid-webhook-id", "webhook-id too long", "webhook-id must be at most 255 characters")
    return raw, webhook_id


def _committed(submit: Callable[[bool], services.IntakeResult]) -> services.IntakeResult:
    """Submit and commit; ``submit(look_first)``. The first try leaves replays, reused ids and a
    concurrent twin that won the race to the unique constraints; submitted again after that
    failure, looking first, it answers as a replay or a 409."""
    try:
        result = submit(False)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        result = submit(True)
        db.session.commit()
    return result


def _answered(result: services.IntakeResult) -> tuple[Response, int]:
    """The stored `CaseAccepted` answer, pointing at the case it is about."""
    response = jsonify(result.body)
    response.headers["Location"] = result.body["url"]
    if not result.created:  # a repeated delivery: clients can tell "no second case" from a new one
        response.headers["Idempotent-Replayed"] = "true"
    return response, 202


@bp.get("/cases/<int:case_id>")
def get_case(case_id: int) -> Response:
    """The case; with ``?wait=SECONDS`` (0 to 60), once it is decided or the wait ends (app.agents.waiting)."""
    client_id = services.authenticate(db.session, request.headers.get("Authorization")).id
    seconds = _wait_seconds(request.args.get("wait"))

    def release() -> None:
        db.session.rollback()
        db.session.close()  # the connection goes back to the pool while the request waits

    document = waiting.wait_for_decision(case_id, seconds, lambda: case_document(db.session, client_id, case_id),
                                         lambda doc: doc.status, release)
    # pydantic writes the JSON itself: a woken agent's answer is made while reviewers are busy
    return current_app.response_class(document.model_dump_json(), mimetype="application/json")


def _wait_seconds(raw: str | None) -> int:
    if raw is None:
        return 0
    if not raw.isascii() or not raw.isdigit() or int(raw) > waiting.MAX_WAIT_SECONDS:
        raise Invalid(f"wait is a whole number of seconds from 0 to {waiting.MAX_WAIT_SECONDS}",
                      {"wait": f"0 to {waiting.MAX_WAIT_SECONDS}"})
    return int(raw)


# --- the upstream system answers a request for information ---------------------------------------------


@bp.post("/cases/<int:case_id>/info")
@limiter.limit(_intake_limit, key_func=_client_key)
def answer_info(case_id: int) -> tuple[Response, int]:
    """``{"data": {...}, "note": "..."}`` for a needs_info case, signed and idempotent like intake."""
    return _case_action(case_id, services.answer_info_request)


# --- the upstream system withdraws its case ------------------------------------------------------------


@bp.post("/cases/<int:case_id>/withdraw")
@limiter.limit(_intake_limit, key_func=_client_key)
def withdraw(case_id: int) -> tuple[Response, int]:
    """``{"reason": "..."}`` for a case not yet approved, signed and idempotent like intake."""
    return _case_action(case_id, services.withdraw_case)


def _case_action(case_id: int, action: Callable[..., services.IntakeResult]) -> tuple[Response, int]:
    """A signed, idempotent action of the upstream system on one of its cases."""
    client = services.authenticate(db.session, request.headers.get("Authorization"))
    raw, webhook_id = _signed_body(client)
    case_url = url_for("intake.get_case", case_id=case_id, _external=True)
    return _answered(_committed(lambda _: action(db.session, client, case_id, webhook_id, raw, case_url=case_url)))
