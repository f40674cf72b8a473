"""What the auditor's pages show: audit events as table rows, and the events of an evidence package
with their actors named. Actors are named as on the case timeline (``review.presenters``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from app.audit.models import AuditEvent
from app.auditor.evidence import EvidencePackage, ProvenEvent
from app.cases.types.view import DASH
from app.review.presenters import actor_names, compact

SUMMARY_CHARS = 160


@dataclass(frozen=True)
class AuditRow:
    id: int
    seq: int | None
    time: datetime
    actor: str  # named: "Ana <ana@example.com>", "payments-engine (upstream)", "System (sla)"
    actor_id: str  # as stored: user:12
    action: str
    case_id: int | None
    summary: str


def audit_rows(session: Session, events: list[AuditEvent]) -> list[AuditRow]:
    names = actor_names(session, [e.actor for e in events])
    return [AuditRow(id=e.id, seq=e.seq, time=e.time, actor=names.get(e.actor, e.actor), actor_id=e.actor,
                     action=e.action, case_id=e.case_id, summary=summary(e.data)) for e in events]


def summary(data: object) -> str:
    """The event's data in one short line."""
    text = compact(data) if data else DASH
    return text if len(text) <= SUMMARY_CHARS else text[:SUMMARY_CHARS - 1].rstrip() + "…"


@dataclass(frozen=True)
class EventView:
    """An event of an evidence package as the printable page lists it, with its proof when it has one."""

    seq: int | None
    time: str
    actor: str
    action: str
    summary: str
    proof: ProvenEvent | None = None


def evidence_events(session: Session, package: EvidencePackage) -> tuple[list[EventView], list[EventView]]:
    """The package's proven events (read back from the exact entries they prove) and its pending ones."""
    entries = [json.loads(event.entry) for event in package.audit.events]
    pending = package.audit.not_yet_provable
    names = actor_names(session, [e["actor"] for e in entries] + [e.actor for e in pending])
    proven = [EventView(e["seq"], e["time"], names.get(e["actor"], e["actor"]), e["action"], summary(e["data"]), proof)
              for e, proof in zip(entries, package.audit.events, strict=True)]
    waiting = [EventView(e.seq, e.time.isoformat(), names.get(e.actor, e.actor), e.action, e.why) for e in pending]
    return proven, waiting
