"""Upstream API clients and case intake: the rules behind ``POST /api/v1/cases``."""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import insert, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.interfaces import ORMOption

from app import jsonbody, webhooks
from app.actors import Actor
from app.agents import tools as agent_tools
from app.ai.jobs import analysis
from app.audit import chain
from app.audit.actions import AuditAction
from app.cases import lifecycle
from app.cases.models import Case, Priority, Queue, Status
from app.cases.types import DOMAINS, UnknownCaseType, get_case_type
from app.db import sha256_hex, utcnow
from app.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    Unauthenticated,
    field_errors,
    validation_error,
)
from app.escalation.services import apply_rules
from app.escalation.sla import resume_sla, start_clock
from app.intake import config_cache
from app.intake.models import ApiClient, WebhookReceipt
from app.intake.schemas import CaseAccepted, CaseEnvelope, InfoAnswer, Withdrawal
from app.jobs import after_commit

M = TypeVar("M", bound=BaseModel)
TOKEN_PREFIX = "cs_"  # noqa: S105 (a prefix, not a secret)
MAX_CLIENT_NAME = 120
_INSERT_RECEIPT = insert(WebhookReceipt.__table__)  # built once: the hot path only binds parameters


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
    name = " ".join(name.split())
    if not name or len(name) > MAX_CLIENT_NAME:
        raise Invalid(f"a client name must be 1 to {MAX_CLIENT_NAME} characters",
                      {"name": f"1 to {MAX_CLIENT_NAME} characters"})
    allowed_domains, hosts = _domains(domains), _callback_hosts(callback_hosts)
    if session.scalar(select(ApiClient.id).where(ApiClient.name == name)):
        raise Conflict(f"an API client named {name!r} already exists", {"name": "already in use"})
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    secret = webhooks.new_secret()
    client = ApiClient(
        name=name,
        token_hash=hash_token(token),
        token_prefix=token[:10],
        signing_secrets=[{"secret": secret, "created_at": utcnow().isoformat(), "expires_at": None}],
        allowed_domains=allowed_domains,
        callback_hosts=hosts,
    )
    session.add(client)
    session.flush()
    chain.record(
        session,
        AuditAction.CLIENT_CREATED,
        actor or Actor.system("cli"),
        data={"client_id": client.id, "name": name, "domains": client.allowed_domains,
              "callback_hosts": client.callback_hosts},
    )
    return NewClient(client, token, secret)


def rotate_secret(session: Session, client: ApiClient, grace: timedelta = timedelta(hours=24), *,
                  actor: Actor | None = None) -> str:
    """Add a new signing secret; the previous ones stay valid for ``grace``, then expire."""
    now = utcnow()
    expires = (now + grace).isoformat()
    kept = [
        {**s, "expires_at": s["expires_at"] or expires}
        for s in client.signing_secrets
        if not s["expires_at"] or datetime.fromisoformat(s["expires_at"]) > now
    ]
    secret = webhooks.new_secret()
    client.signing_secrets = [{"secret": secret, "created_at": now.isoformat(), "expires_at": None}, *kept]
    chain.record(
        session,
        AuditAction.CLIENT_SECRET_ROTATED,
        actor or Actor.system("cli"),
        data={"client_id": client.id, "previous_valid_until": expires},
    )
    return secret


def list_clients(session: Session) -> list[ApiClient]:
    return list(session.scalars(select(ApiClient).order_by(ApiClient.active.desc(), ApiClient.name)))


def client_named(session: Session, name: str) -> ApiClient:
    client = session.scalar(select(ApiClient).where(ApiClient.name == name.strip()))
    if client is None:
        raise NotFound(f"no API client named {name.strip()!r}")
    return client


def update_client(session: Session, client: ApiClient, actor: Actor, *, domains: list[str] | None = None,
                  callback_hosts: list[str] | None = None) -> dict[str, list[Any]]:
    """Change the allowed domains or callback hosts; returns ``{field: [old, new]}``, audited when not empty."""
    values = {}
    if domains is not None:
        values["allowed_domains"] = _domains(domains)
    if callback_hosts is not None:
        values["callback_hosts"] = _callback_hosts(callback_hosts)
    diff = {field: [getattr(client, field), value] for field, value in values.items()
            if getattr(client, field) != value}
    if diff:
        for field, (_, value) in diff.items():
            setattr(client, field, value)
        session.flush()
        chain.record(session, AuditAction.CLIENT_UPDATED, actor,
                     data={"client_id": client.id, "name": client.name, "changes": diff})
    return diff


def revoke_client(session: Session, client: ApiClient, actor: Actor) -> None:
    """The client's token stops working at once (intake answers 401); its cases and history stay."""
    if not client.active:
        raise Conflict(f"API client {client.name!r} is revoked already", slug="already-revoked")
    client.active = False
    session.flush()
    chain.record(session, AuditAction.CLIENT_REVOKED, actor, data={"client_id": client.id, "name": client.name})


def _domains(domains: list[str]) -> list[str]:
    unknown = sorted(set(domains) - set(DOMAINS))
    if unknown or not domains:
        message = f"domains must be a non-empty subset of {', '.join(DOMAINS)} (got {', '.join(domains) or 'none'})"
        raise Invalid(message, {"domains": message})
    return sorted(set(domains))


HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def _callback_hosts(hosts: list[str]) -> list[str]:
    """Bare host names or IP addresses (no scheme, port or path), lower-cased, sorted."""
    cleaned = sorted({h.strip().lower() for h in hosts if h.strip()})
    bad = [h for h in cleaned if not _is_host(h)]
    if bad:
        message = f"not a host name: {', '.join(bad)} (give bare names such as hooks.example.com, no scheme or port)"
        raise Invalid(message, {"callback_hosts": message})
    return cleaned


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return len(host) <= 253 and all(HOST_LABEL.fullmatch(label) for label in host.split("."))
    return True


def authenticate(session: Session, authorization: str | None) -> ApiClient:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send 'Authorization: Bearer <token>' with the API token of your client",
                              title="Missing bearer token")
    client = config_cache.client(session, hash_token(token.strip()))
    if client is None or not client.active:
        raise Unauthenticated("the API token is unknown or revoked", title="Invalid bearer token")
    return client


@dataclass(frozen=True)
class IntakeResult:
    """The answer to a signed case action: ``body`` (a `CaseAccepted`, as stored with the
    webhook receipt), the same again when the delivery is replayed."""

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
    callbacks: webhooks.CallbackPolicy,
    look_first: bool = True,
) -> IntakeResult:
    """Validate and store a signed case delivery, idempotently on ``webhook_id``.

    The case, its receipt and its audit event are flushed together; the caller
    commits. A replay, a reused external_id or a concurrent twin fails on a unique
    constraint: the caller rolls back and submits again with ``look_first``, which
    then answers as a replay or a 409. Without ``look_first`` (the first try, on the
    hot path) the unique constraints alone find them.

    Everything is read before the first write: on SQLite the write lock is held from
    the first write to the commit.
    """
    body_hash = hashlib.sha256(raw_body).hexdigest()
    if look_first and (replay := replayed(session, client, webhook_id, body_hash)):
        return replay
    envelope, data = _parse(raw_body, client, callbacks)
    if look_first:
        _refuse_duplicate(session, client, envelope.external_id)
    tool = agent_tools.tool_of_call(session, envelope.case_type, data)
    queue = agent_tools.receiving_queue(tool, envelope.domain) or config_cache.receiving(session, envelope.domain,
                                                                                         envelope.case_type)
    rules = config_cache.rules(session)
    case = _new_case(session, client, envelope, data, queue)
    agent_tools.apply_policy(tool, case)
    body = _answer(session, client, webhook_id, body_hash, case, case.status, case_url.format(id=case.id))
    chain.append(
        session,
        AuditAction.CASE_RECEIVED,
        Actor.client(client),
        case_id=case.id,
        data={
            "external_id": case.external_id,
            "domain": case.domain,
            "case_type": case.case_type,
            "webhook_id": webhook_id,
            "body_sha256": body_hash,
            "queue": queue.name,
        },
    )
    apply_rules(session, case, trigger="intake", active=rules)
    session.flush()
    after_commit(session, analysis(case.id, case.version))
    return IntakeResult(case.id, case.version, body, created=True)


def _refuse_duplicate(session: Session, client: ApiClient, external_id: str) -> None:
    existing = session.scalar(select(Case.id).where(Case.client_id == client.id, Case.external_id == external_id))
    if existing:
        raise Conflict(f"external_id {external_id!r} is already case {existing}",
                       slug="duplicate-external-id", title="external_id already used", case_id=existing)


def replayed(session: Session, client: ApiClient, webhook_id: str, body_hash: str) -> IntakeResult | None:
    receipt = session.scalar(
        select(WebhookReceipt).where(WebhookReceipt.client_id == client.id, WebhookReceipt.webhook_id == webhook_id)
    )
    if receipt is None:
        return None
    if receipt.body_hash != body_hash:
        raise Conflict(f"webhook-id {webhook_id!r} was already used for case {receipt.case_id} with another body",
                       slug="idempotency-key-reused", title="webhook-id reused with a different body",
                       case_id=receipt.case_id)
    return IntakeResult(receipt.case_id or 0, 0, receipt.response_body, created=False)


def _answer(session: Session, client: ApiClient, webhook_id: str, body_hash: str, case: Case, status: str,
            url: str) -> dict[str, Any]:
    """The answer to a signed case action, stored with its webhook receipt for replays."""
    body = CaseAccepted(id=case.id, status=status, url=url).model_dump(mode="json")
    session.execute(_INSERT_RECEIPT, {"client_id": client.id, "webhook_id": webhook_id, "body_hash": body_hash,
                                      "case_id": case.id, "response_status": 202, "response_body": body})
    return body


def own_case(session: Session, client_id: int, case_id: int, options: Sequence[ORMOption] = ()) -> Case:
    """The client's case (loaded with ``options``); another client's case does not exist for it."""
    case = session.get(Case, case_id, options=options)
    if case is None or case.client_id != client_id:
        raise NotFound(f"no case {case_id} for this client", slug="case-not-found", title="Case not found")
    return case


def _parse(raw_body: bytes, client: ApiClient,
           callbacks: webhooks.CallbackPolicy) -> tuple[CaseEnvelope, BaseModel]:
    """The envelope and its case type's data, both valid, or a 422 naming every invalid field."""
    document = jsonbody.json_object(raw_body)
    domain = document.get("domain")
    if isinstance(domain, str) and domain in DOMAINS and domain not in client.allowed_domains:
        raise Forbidden(f"client {client.name!r} may post to {', '.join(client.allowed_domains)}, not {domain!r}",
                        slug="domain-not-allowed", title="Domain not allowed")
    errors: list[dict[str, Any]] = []
    envelope = None
    try:
        envelope = CaseEnvelope.model_validate(document)
    except ValidationError as exc:
        errors += field_errors(exc)
    data, data_errors = _data(document)
    errors += data_errors
    errors += _callback_errors(document.get("callback_url"), client, callbacks)
    if errors or envelope is None or data is None:
        raise validation_error(errors, "case")
    return envelope, data


def _data(document: dict[str, Any]) -> tuple[BaseModel | None, list[dict[str, Any]]]:
    """The case's data validated by its case type, or what is wrong with it."""
    domain, case_type, data = document.get("domain"), document.get("case_type"), document.get("data")
    if not isinstance(domain, str) or not isinstance(case_type, str):
        return None, []
    try:
        kind = get_case_type(domain, case_type)
    except UnknownCaseType as exc:
        return None, [{"field": "case_type", "message": str(exc), "code": "unknown_case_type"}]
    if not isinstance(data, dict):
        return None, []  # the envelope already reports it
    try:
        return kind.validate_data(data), []
    except ValidationError as exc:
        return None, field_errors(exc, prefix=("data",))


def _callback_errors(url: Any, client: ApiClient, callbacks: webhooks.CallbackPolicy) -> list[dict[str, Any]]:
    if url is None or not isinstance(url, str):
        return []
    problem = callbacks.problem(url, client.callback_hosts)
    return [{"field": "callback_url", "message": problem, "code": "callback_not_allowed"}] if problem else []



def _new_case(session: Session, client: ApiClient, envelope: CaseEnvelope, data: BaseModel,
              queue: Queue) -> Case:
    case_type = get_case_type(envelope.domain, envelope.case_type)
    amount = case_type.amount(data)
    now = utcnow()
    case = Case(
        client=client,
        external_id=envelope.external_id,
        domain=envelope.domain,
        case_type=envelope.case_type,
        title=envelope.title,
        status=Status.RECEIVED.value,  # set now, not at the INSERT: the SLA clock's next step depends on them
        sla_notified_pct=0,
        payload=data.model_dump(mode="json"),
        priority=Priority.from_name(envelope.priority),
        confidential=envelope.confidential,
        amount=amount[0] if amount else None,
        currency=amount[1] if amount else None,
        expires_at=case_type.expires_at(data),
        callback_url=envelope.callback_url,
        queue=queue,
        created_at=now,
        updated_at=now,
    )
    start_clock(case)  # the queue's window, in its business time
    session.add(case)
    session.flush()
    return case


# --- the upstream system answers a request for information ---------------------------------------------


def answer_info_request(session: Session, client: ApiClient, case_id: int, webhook_id: str, raw_body: bytes, *,
                        case_url: str) -> IntakeResult:
    """Merge the upstream system's answer into a needs_info case and send the case back to
    analysis (flushed; the caller commits, which enqueues the analysis). Idempotent on
    ``webhook_id``; a concurrent twin fails on the receipt's unique key and, tried again, replays."""
    body_hash = hashlib.sha256(raw_body).hexdigest()
    replay = replayed(session, client, webhook_id, body_hash)
    if replay:
        return replay
    case = own_case(session, client.id, case_id)
    if case.status != Status.NEEDS_INFO:
        raise Conflict(f"case {case_id} is {case.status}; answers are accepted while it is needs_info",
                       slug="case-not-waiting-for-info", title="The case is not waiting for information")
    answer, data = _merged(case, raw_body)
    body = _answer(session, client, webhook_id, body_hash, case, Status.ANALYZING.value, case_url)
    session.flush()  # before the case changes: one move, one version
    now = utcnow()
    paused = now - case.sla_paused_at if case.sla_paused_at else timedelta(0)
    amount = get_case_type(case.domain, case.case_type).amount(data)
    case.payload = data.model_dump(mode="json")
    case.amount, case.currency = amount or (None, None)
    case.reopen_count += 1
    resume_sla(case, now)  # in the queue's business time
    try:
        lifecycle.transition(session, case, "info_received", Actor.client(client), data={
            "webhook_id": webhook_id, "body_sha256": body_hash, "fields": sorted(answer.data), "note": answer.note,
            "sla_paused_seconds": int(paused.total_seconds())})
    except lifecycle.StaleVersion as exc:
        raise lifecycle.StaleVersion(str(exc), slug="case-changed", title="The case changed meanwhile") from None
    after_commit(session, analysis(case.id, case.version))
    return IntakeResult(case.id, case.version, body, created=True)


def _merged(case: Case, raw_body: bytes) -> tuple[InfoAnswer, BaseModel]:
    """The answer, and the case's data with the answer's top-level fields merged in, validated
    against the case type: every invalid field at once, as a 422."""
    document = jsonbody.document(raw_body)
    errors: list[dict[str, Any]] = []
    answer = data = None
    try:
        answer = InfoAnswer.model_validate(document)
    except ValidationError as exc:
        errors += field_errors(exc)
    if isinstance(document, dict) and isinstance(document.get("data"), dict):
        try:
            data = get_case_type(case.domain, case.case_type).validate_data({**case.payload, **document["data"]})
        except ValidationError as exc:
            errors += field_errors(exc, prefix=("data",))
    if errors or answer is None or data is None:
        raise Invalid(f"{len(errors)} invalid field(s) in the answer or in the case's data with it merged in",
                      errors, slug="validation-error", title="The answer is invalid")
    return answer, data


# --- the upstream system withdraws its case ------------------------------------------------------------


def withdraw_case(session: Session, client: ApiClient, case_id: int, webhook_id: str, raw_body: bytes, *,
                  case_url: str) -> IntakeResult:
    """The client takes its case back before it is approved: the case is withdrawn (the lifecycle
    audits the move) and any reviewer's claim on it ends. Answered 200: the case is withdrawn
    when the answer leaves. Idempotent on ``webhook_id`` like `answer_info_request`."""
    body_hash = hashlib.sha256(raw_body).hexdigest()
    replay = replayed(session, client, webhook_id, body_hash)
    if replay:
        return replay
    case = own_case(session, client.id, case_id)
    if Status(case.status) not in lifecycle.BEFORE_APPROVAL:
        why = "" if case.status == Status.WITHDRAWN else ": a case can be withdrawn only before it is approved"
        raise Conflict(f"case {case_id} is {case.status}{why}", slug="case-not-withdrawable",
                       title="The case can no longer be withdrawn", case_status=case.status)
    withdrawal = _parsed(Withdrawal, raw_body, "withdrawal")
    body = _answer(session, client, webhook_id, body_hash, case, Status.WITHDRAWN.value, case_url)
    session.flush()  # before the case changes: one move, one version
    claimed_by = case.assignee_id
    case.assignee_id, case.claim_expires_at = None, None
    try:
        lifecycle.transition(session, case, "withdrawn", Actor.client(client), data={
            "webhook_id": webhook_id, "body_sha256": body_hash, "reason": withdrawal.reason,
            "assignee_id": claimed_by})
    except lifecycle.StaleVersion as exc:
        raise lifecycle.StaleVersion(str(exc), slug="case-changed", title="The case changed meanwhile") from None
    return IntakeResult(case.id, case.version, body, created=True)


def _parsed(model: type[M], raw_body: bytes, what: str) -> M:
    """The JSON body as ``model``, or a 422 naming every invalid field."""
    try:
        return model.model_validate(jsonbody.document(raw_body))
    except ValidationError as exc:
        raise validation_error(field_errors(exc), what) from None
