"""Upstream API clients and case intake: the rules behind ``POST /api/v1/cases``."""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.actors import Actor
from app.audit import chain
from app.cases.models import Case, Priority, Queue
from app.cases.types import DOMAINS, UnknownCaseType, get_case_type
from app.db import sha256_hex, utcnow
from app.errors import Problem, validation_problem
from app.escalation.services import apply_rules
from app.intake import signatures
from app.intake.models import ApiClient, WebhookReceipt
from app.intake.schemas import CaseEnvelope

TOKEN_PREFIX = "cs_"  # noqa: S105 (a prefix, not a secret)


def hash_token(token: str) -> str:
    return sha256_hex(token)


@dataclass(frozen=True)
class NewClient:
    client: ApiClient
    token: str
    signing_secret: str


def create_client(
    session: Session, name: str, domains: list[str], callback_hosts: list[str], *, actor: Actor | None = None
) -> NewClient:
    unknown = sorted(set(domains) - set(DOMAINS))
    if unknown or not domains:
        raise ValueError(
            f"domains must be a non-empty subset of {', '.join(DOMAINS)} (got {', '.join(domains) or 'none'})"
        )
    if session.scalar(select(ApiClient.id).where(ApiClient.name == name)):
        raise ValueError(f"an API client named {name!r} already exists")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    secret = signatures.new_secret()
    client = ApiClient(
        name=name,
        token_hash=hash_token(token),
        token_prefix=token[:10],
        signing_secrets=[{"secret": secret, "created_at": utcnow().isoformat(), "expires_at": None}],
        allowed_domains=sorted(set(domains)),
        callback_hosts=sorted({h.lower() for h in callback_hosts}),
    )
    session.add(client)
    session.flush()
    chain.record(
        session,
        "client.created",
        actor or Actor.system("cli"),
        data={"client_id": client.id, "name": name, "domains": client.allowed_domains},
    )
    return NewClient(client, token, secret)


def rotate_secret(session: Session, client: ApiClient, grace: timedelta = timedelta(hours=24)) -> str:
    """Add a new signing secret; the previous ones stay valid for ``grace``, then expire."""
    now = utcnow()
    expires = (now + grace).isoformat()
    kept = [
        {**s, "expires_at": s["expires_at"] or expires}
        for s in client.signing_secrets
        if not s["expires_at"] or datetime.fromisoformat(s["expires_at"]) > now
    ]
    secret = signatures.new_secret()
    client.signing_secrets = [{"secret": secret, "created_at": now.isoformat(), "expires_at": None}, *kept]
    chain.record(
        session,
        "client.secret_rotated",
        Actor.system("cli"),
        data={"client_id": client.id, "previous_valid_until": expires},
    )
    return secret


def active_secrets(client: ApiClient) -> list[str]:
    now = utcnow()
    return [
        s["secret"]
        for s in client.signing_secrets
        if not s["expires_at"] or datetime.fromisoformat(s["expires_at"]) > now
    ]


def authenticate(session: Session, authorization: str | None) -> ApiClient:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(
            401,
            "unauthenticated",
            "Missing bearer token",
            "send 'Authorization: Bearer <token>' with the API token of your client",
        )
    client = session.scalar(select(ApiClient).where(ApiClient.token_hash == hash_token(token.strip())))
    if client is None or not client.active:
        raise Problem(401, "unauthenticated", "Invalid bearer token", "the API token is unknown or revoked")
    return client


@dataclass(frozen=True)
class IntakeResult:
    case_id: int
    version: int
    body: dict[str, Any]
    created: bool


def submit_case(
    session: Session,
    client: ApiClient,
    webhook_id: str,
    raw_body: bytes,
    *,
    case_url: str,
    insecure_callback_hosts: frozenset[str] = frozenset(),
) -> IntakeResult:
    """Validate and store a signed case delivery, idempotently on ``webhook_id``.

    The case, its receipt and its audit event are flushed together; the caller
    commits. A concurrent twin makes the commit fail on a unique constraint: the
    caller rolls back and submits again, which then answers as a replay or a 409.
    """
    body_hash = hashlib.sha256(raw_body).hexdigest()
    replay = _replay(session, client, webhook_id, body_hash)
    if replay:
        return replay
    envelope = _parse(raw_body, client, insecure_callback_hosts)
    existing = session.scalar(
        select(Case.id).where(Case.client_id == client.id, Case.external_id == envelope.external_id)
    )
    if existing:
        raise Problem(
            409,
            "duplicate-external-id",
            "external_id already used",
            f"external_id {envelope.external_id!r} is already case {existing}",
            case_id=existing,
        )
    case = _new_case(session, client, envelope)
    body = {"id": case.id, "status": case.status, "url": case_url.format(id=case.id)}
    session.add(
        WebhookReceipt(
            client_id=client.id,
            webhook_id=webhook_id,
            body_hash=body_hash,
            case_id=case.id,
            response_status=202,
            response_body=body,
        )
    )
    chain.record(
        session,
        "case.received",
        Actor.client(client),
        case_id=case.id,
        data={
            "external_id": case.external_id,
            "domain": case.domain,
            "case_type": case.case_type,
            "webhook_id": webhook_id,
            "body_sha256": body_hash,
            "queue": case.queue.name if case.queue else None,
        },
    )
    session.flush()
    apply_rules(session, case, trigger="intake")
    return IntakeResult(case.id, case.version, body, created=True)


def _replay(session: Session, client: ApiClient, webhook_id: str, body_hash: str) -> IntakeResult | None:
    receipt = session.scalar(
        select(WebhookReceipt).where(WebhookReceipt.client_id == client.id, WebhookReceipt.webhook_id == webhook_id)
    )
    if receipt is None:
        return None
    if receipt.body_hash != body_hash:
        raise Problem(
            409,
            "idempotency-key-reused",
            "webhook-id reused with a different body",
            f"webhook-id {webhook_id!r} was already used for case {receipt.case_id} with another body",
            case_id=receipt.case_id,
        )
    return IntakeResult(receipt.case_id or 0, 0, receipt.response_body, created=False)


def _parse(raw_body: bytes, client: ApiClient, insecure_callback_hosts: frozenset[str]) -> CaseEnvelope:
    try:
        document = json.loads(raw_body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Problem(400, "malformed-json", "Malformed JSON", f"the body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise Problem(400, "malformed-json", "Malformed JSON", "the body must be a JSON object")
    domain = document.get("domain")
    if isinstance(domain, str) and domain in DOMAINS and domain not in client.allowed_domains:
        raise Problem(
            403,
            "domain-not-allowed",
            "Domain not allowed",
            f"client {client.name!r} may post to {', '.join(client.allowed_domains)}, not {domain!r}",
        )
    errors: list[dict[str, Any]] = []
    envelope = None
    try:
        envelope = CaseEnvelope.model_validate(document)
    except ValidationError as exc:
        errors += validation_problem(exc).errors or []
    errors += _data_errors(document)
    errors += _callback_errors(document.get("callback_url"), client, insecure_callback_hosts)
    if errors or envelope is None:
        raise Problem(422, "validation-error", "The case is invalid", f"{len(errors)} invalid field(s)", errors)
    return envelope


def _data_errors(document: dict[str, Any]) -> list[dict[str, Any]]:
    domain, case_type, data = document.get("domain"), document.get("case_type"), document.get("data")
    if not isinstance(domain, str) or not isinstance(case_type, str):
        return []
    try:
        kind = get_case_type(domain, case_type)
    except UnknownCaseType as exc:
        return [{"field": "case_type", "message": str(exc), "code": "unknown_case_type"}]
    if not isinstance(data, dict):
        return []  # the envelope already reports it
    try:
        kind.validate_data(data)
    except ValidationError as exc:
        return validation_problem(exc, prefix=("data",)).errors or []
    return []


def _callback_errors(url: Any, client: ApiClient, insecure_hosts: frozenset[str]) -> list[dict[str, Any]]:
    if url is None or not isinstance(url, str):
        return []
    problem = callback_url_problem(url, client, insecure_hosts)
    return [{"field": "callback_url", "message": problem, "code": "callback_not_allowed"}] if problem else []


def callback_url_problem(url: str, client: ApiClient, insecure_hosts: frozenset[str]) -> str | None:
    """Why ``url`` may not receive callbacks for ``client``, or None when it may."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        return "callback_url must be an absolute https URL"
    if parts.username or parts.password:
        return "callback_url must not carry credentials"
    if host not in client.callback_hosts:
        allowed = ", ".join(client.callback_hosts) or "none"
        return f"host {host!r} is not on this client's callback allow-list ({allowed})"
    if parts.scheme == "http" and host not in insecure_hosts:
        return "callback_url must use https (plain http only for hosts an admin allow-listed for testing)"
    return None


def default_queue(session: Session, domain: str) -> Queue | None:
    return session.scalar(
        select(Queue).where(Queue.domain == domain).order_by(Queue.is_default.desc(), Queue.id).limit(1)
    )


def _new_case(session: Session, client: ApiClient, envelope: CaseEnvelope) -> Case:
    kind = get_case_type(envelope.domain, envelope.case_type)
    data = kind.validate_data(envelope.data)
    amount = kind.amount(data)
    queue = default_queue(session, envelope.domain)
    now = utcnow()
    case = Case(
        client=client,
        external_id=envelope.external_id,
        domain=envelope.domain,
        case_type=envelope.case_type,
        title=envelope.title,
        payload=data.model_dump(mode="json"),
        priority=Priority.from_name(envelope.priority),
        confidential=envelope.confidential,
        amount=amount[0] if amount else None,
        currency=amount[1] if amount else None,
        callback_url=envelope.callback_url,
        queue=queue,
        sla_due_at=now + timedelta(minutes=queue.sla_minutes) if queue else None,
        created_at=now,
        updated_at=now,
    )
    session.add(case)
    session.flush()
    return case
