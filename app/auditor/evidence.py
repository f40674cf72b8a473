"""A case's evidence package: one JSON document with everything that happened to the case and the
proof that its audit events are in the signed log.

The package holds the case, every recommendation with its provenance, every decision with its
reviewer, the execution and its delivery attempts, and each of the case's audit events as the
exact bytes its Merkle leaf covers, with the RFC 9162 inclusion path to the root of the latest
signed checkpoint, that checkpoint and the public key. Anyone can check it with nothing from
Countersign: ``python -m tools.verify_evidence FILE --public-key KEY``.

Events not yet under a checkpoint are sealed and signed over first (when a signing key is
configured): the package then proves every event of the case.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AliasPath, Field, PlainSerializer
from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from app.audit import chain, checkpoints, proofs
from app.audit.models import AuditCheckpoint, AuditEvent
from app.cases.models import Case, Execution, ExecutionAttempt, Recommendation
from app.cases.policy import decisions_of
from app.db import utcnow
from app.errors import DomainError, NotFound
from app.review.schemas import CaseSummary, ReviewDecision, ReviewRecommendation
from app.schemas import Document, IsoDateTime

FORMAT = "countersign-evidence/1"
# Written out in full: "0.00000000", never "0E-8".
PlainDecimal = Annotated[Decimal, PlainSerializer(lambda value: format(value, "f"), return_type=str, when_used="json")]


# --- the document --------------------------------------------------------------------------------------


class EvidenceCase(CaseSummary):
    client_id: int
    client: str  # the upstream API client's name
    recommendation_id: int | None  # the recommendation the case shows now
    amount: str | None
    currency: str | None
    confidential: bool
    requires_dual_approval: bool
    data: dict[str, Any]
    created_at: IsoDateTime
    updated_at: IsoDateTime


class EvidenceRecommendation(ReviewRecommendation):
    """A recommendation and where it came from: model, prompt template, inputs, cost."""

    case_version: int
    template_version: str
    prompt_hash: str
    input_hash: str
    tokens_in: int
    tokens_out: int
    cost_usd: PlainDecimal
    latency_ms: int
    cache_hit: bool
    fallback_used: bool


class EvidenceDecision(ReviewDecision):
    reviewer_name: str = Field(validation_alias=AliasPath("reviewer", "name"))
    reviewer_role: str = Field(validation_alias=AliasPath("reviewer", "role"))


class EvidenceAttempt(Document):
    number: int
    started_at: IsoDateTime
    finished_at: IsoDateTime | None
    outcome: str | None
    status_code: int | None
    error: str | None


class EvidenceExecution(Document):
    id: int
    decision_id: int
    idempotency_key: str
    status: str
    created_at: IsoDateTime
    delivered_at: IsoDateTime | None
    attempts: list[EvidenceAttempt]


class Checkpoint(Document):
    tree_size: int
    root_hash: str
    time: str  # exactly as signed
    key_id: str
    signature: str


class ProvenEvent(Document):
    """An audit event of the case under the checkpoint: ``leaf_hash`` = SHA-256(0x00 ‖ entry, UTF-8),
    and ``inclusion_path`` leads from it to the checkpoint's root (RFC 9162 §2.1.3)."""

    seq: int
    leaf_index: int
    entry: str
    leaf_hash: str
    inclusion_path: list[str]


class PendingEvent(Document):
    """An audit event of the case that no signed checkpoint covers yet, and why."""

    seq: int | None
    time: IsoDateTime
    actor: str
    action: str
    data: dict[str, Any]
    why: str


class AuditProof(Document):
    checkpoint: Checkpoint | None
    public_key: str | None  # base64 of the raw Ed25519 key: compare it with the one you were given
    events: list[ProvenEvent]
    not_yet_provable: list[PendingEvent]
    warnings: list[str]


class EvidencePackage(Document):
    format: Literal["countersign-evidence/1"] = FORMAT
    generated_at: IsoDateTime
    case: EvidenceCase
    recommendations: list[EvidenceRecommendation]
    decisions: list[EvidenceDecision]
    executions: list[EvidenceExecution]
    audit: AuditProof


# --- building it ----------------------------------------------------------------------------------------


def build(session: Session, config: Mapping[str, Any], case_id: int) -> EvidencePackage:
    """The evidence package of a case (NotFound when there is none). May seal the log and sign a
    new checkpoint so that every event of the case is proven; commits when it does."""
    case = session.get(Case, case_id)
    if case is None:
        raise NotFound(f"case {case_id} not found")
    audit = _audit_proof(session, config, case_id)
    return EvidencePackage(
        generated_at=utcnow(),
        case=_case(case),
        recommendations=[EvidenceRecommendation.model_validate(rec) for rec in _recommendations(session, case_id)],
        decisions=[EvidenceDecision.model_validate(d) for d in decisions_of(session, case)],
        executions=[_execution(session, execution) for execution in _executions(session, case_id)],
        audit=audit,
    )


def _recommendations(session: Session, case_id: int) -> list[Recommendation]:
    return list(session.scalars(select(Recommendation).where(Recommendation.case_id == case_id)
                                .order_by(Recommendation.id)))


def _case(case: Case) -> EvidenceCase:
    return EvidenceCase.of(
        case, client_id=case.client_id, client=case.client.name, recommendation_id=case.recommendation_id,
        amount=None if case.amount is None else str(case.amount), currency=case.currency,
        confidential=case.confidential, requires_dual_approval=case.requires_dual_approval, data=case.payload,
        created_at=case.created_at, updated_at=case.updated_at)


def _executions(session: Session, case_id: int) -> list[Execution]:
    return list(session.scalars(select(Execution).where(Execution.case_id == case_id).order_by(Execution.id)))


def _execution(session: Session, execution: Execution) -> EvidenceExecution:
    attempts = session.scalars(select(ExecutionAttempt).where(ExecutionAttempt.execution_id == execution.id)
                               .order_by(ExecutionAttempt.id))
    return EvidenceExecution(
        id=execution.id, decision_id=execution.decision_id, idempotency_key=execution.idempotency_key,
        status=execution.status, created_at=execution.created_at, delivered_at=execution.delivered_at,
        attempts=[EvidenceAttempt.model_validate(attempt) for attempt in attempts])


# --- the proofs -------------------------------------------------------------------------------------------


def _audit_proof(session: Session, config: Mapping[str, Any], case_id: int) -> AuditProof:
    warnings: list[str] = []
    checkpoint = _covering_checkpoint(session, config, case_id, warnings)
    size = checkpoint.tree_size if checkpoint else 0
    covered, pending = [], []
    for event in _events_of(session, case_id):
        if event.seq is not None and event.seq <= size:
            covered.append(event)
        else:
            pending.append(_pending(event, size, has_checkpoint=checkpoint is not None))
    if pending:
        warnings.append(f"{len(pending)} event(s) of this case are not under a signed checkpoint yet: "
                        "they are listed without proofs")
    return AuditProof(
        checkpoint=Checkpoint.model_validate(checkpoint.document()) if checkpoint else None,
        public_key=_public_key(config, warnings),
        events=_proven(session, covered, size),
        not_yet_provable=pending,
        warnings=warnings,
    )


def _events_of(session: Session, case_id: int) -> list[Row[Any]]:
    """The case's events in the log's order, those not sealed yet last: what an entry is made of
    (the stored data text, for proofs) and the data as a value (for people)."""
    return list(session.execute(select(*chain.ENTRY_COLUMNS, AuditEvent.data).where(AuditEvent.case_id == case_id)
                                .order_by(AuditEvent.seq.is_(None), AuditEvent.seq, AuditEvent.id)))


def _covering_checkpoint(session: Session, config: Mapping[str, Any], case_id: int,
                         warnings: list[str]) -> AuditCheckpoint | None:
    """The latest checkpoint, after signing a new one when it misses events of the case and a key
    is configured. A refusal (no key, a log that no longer matches) becomes a warning: the package
    still shows what the database holds."""
    latest = checkpoints.latest(session)
    if latest is not None and not _newer_than(session, case_id, latest.tree_size):
        return latest
    try:
        if checkpoints.signing_key(config) is None:
            warnings.append("no audit signing key is configured: no checkpoint could be signed for this package")
            return latest
        return checkpoints.create(session, config)
    except DomainError as exc:
        session.rollback()
        warnings.append(f"no new checkpoint could be signed: {exc.message}")
        return latest


def _newer_than(session: Session, case_id: int, tree_size: int) -> bool:
    """Whether the case has an event that is unsealed or sealed after ``tree_size``."""
    uncovered = (AuditEvent.seq.is_(None)) | (AuditEvent.seq > tree_size)
    return session.scalar(select(AuditEvent.id).where(AuditEvent.case_id == case_id, uncovered).limit(1)) is not None


def _proven(session: Session, events: list[Row[Any]], tree_size: int) -> list[ProvenEvent]:
    if not events:
        return []
    tree = proofs.tree_over(session, tree_size, {e.seq - 1 for e in events})
    return [ProvenEvent(seq=e.seq, leaf_index=e.seq - 1, entry=chain.entry_of(e).decode(), leaf_hash=e.hash,
                        inclusion_path=[node.hex() for node in tree.inclusion_path(e.seq - 1)])
            for e in events]


def _pending(event: Row[Any], tree_size: int, *, has_checkpoint: bool) -> PendingEvent:
    if event.seq is None:
        why = "not sealed yet"
    elif has_checkpoint:
        why = f"sealed as event {event.seq}, after the latest checkpoint ({tree_size} events)"
    else:
        why = f"sealed as event {event.seq}; no checkpoint has been signed yet"
    return PendingEvent(seq=event.seq, time=event.time, actor=event.actor, action=event.action,
                        data=event.data, why=why)


def _public_key(config: Mapping[str, Any], warnings: list[str]) -> str | None:
    try:
        return checkpoints.public_key(config)
    except DomainError as exc:
        warnings.append(exc.message)
        return None
