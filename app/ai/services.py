"""Database side of the AI runtime: snapshot a case, build the runtime context,
store the recommendation or the failure through the lifecycle."""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from datetime import datetime
from functools import cache
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.actors import Actor
from app.ai import precedents as similarity
from app.ai.cache import ResultCache
from app.ai.providers.base import Provider
from app.ai.providers.local import LocalProvider
from app.ai.routing import RoutingConfig, load_routing, over_budget
from app.ai.runtime import CaseSnapshot, Draft, Precedent, RuntimeContext
from app.cases.lifecycle import transition
from app.cases.models import Case, Decision, Recommendation, Status
from app.db import utcnow
from app.escalation.services import apply_rules
from app.jobs import redis_connection

AI_ACTOR = Actor.system("ai")
DECIDED = (Status.APPROVED, Status.REJECTED, Status.EXECUTING, Status.EXECUTED, Status.EXECUTION_FAILED)
PRECEDENT_POOL = 500


def snapshot(case: Case) -> CaseSnapshot:
    return CaseSnapshot(case.id, case.version, case.client_id, case.domain, case.case_type, case.title,
                        dict(case.payload), case.confidential, case.external_id, case.callback_url)


def routing() -> RoutingConfig:
    return load_routing(current_app.config["AI_ROUTING_FILE"])


def providers(config: dict[str, Any], routing_config: RoutingConfig) -> dict[str, Provider]:
    """The enabled providers: local always; OpenAI-compatible ones when AI_PROVIDER=openai."""
    return _providers(config["AI_PROVIDER"], config["OPENAI_API_KEY"], config["OPENAI_BASE_URL"] or None,
                      float(config["OPENAI_TIMEOUT_SECONDS"]), int(config["OPENAI_MAX_RETRIES"]),
                      tuple(sorted((n, s.kind, s.private) for n, s in routing_config.providers.items())))


@cache
def _providers(mode: str, api_key: str, base_url: str | None, timeout: float, max_retries: int,
               specs: tuple[tuple[str, str, bool], ...]) -> dict[str, Provider]:
    enabled: dict[str, Provider] = {}
    for name, kind, private in specs:
        if kind == "local":
            enabled[name] = LocalProvider()
        elif kind == "openai" and mode == "openai" and (api_key or base_url):
            from app.ai.providers.openai_provider import OpenAIProvider

            enabled[name] = OpenAIProvider(name=name, api_key=api_key, base_url=base_url, timeout=timeout,
                                           max_retries=max_retries, private=private)
    return enabled


def warm_up() -> None:
    """Load the routing file, build the providers and compile the prompt templates once in a
    worker's parent process, so that every forked work horse starts with them ready."""
    routing_config = routing()
    providers(current_app.config, routing_config)
    from app.ai.runtime import warm_templates

    warm_templates()


def find_precedents(session: Session, case: Case, k: int = 3) -> list[Precedent]:
    """The most similar decided cases of the same type, with how each was decided."""
    rows = session.execute(
        select(Case.id, Case.created_at, Case.status)
        .where(Case.case_type == case.case_type, Case.id != case.id, Case.status.in_([s.value for s in DECIDED]))
        .order_by(Case.id.desc())
        .limit(PRECEDENT_POOL)
    ).all()
    if not rows:
        return []
    counted = _decided_terms(session, [(r.id, r.created_at) for r in rows])
    ranked = similarity.rank_terms(similarity.terms(similarity.case_text(case.payload)),
                                   [(r.id, counted[r.id, r.created_at]) for r in rows], k=k)
    status_of = {r.id: r.status for r in rows}
    return [Precedent(case_id, score, _outcome(session, case_id, status_of[case_id])) for case_id, score in ranked]


# A decided case's payload no longer changes: its counted text is kept per process, so an analysis
# reads and counts only the precedents it has not met before (the pool is hundreds of cases). Keyed
# by id and creation time: a database recreated under a running worker reuses ids, never both.
_TERMS_KEPT = 20_000
CaseKey = tuple[int, datetime]
_terms_of_decided: OrderedDict[CaseKey, Counter[str]] = OrderedDict()
_terms_lock = threading.Lock()


def _decided_terms(session: Session, keys: list[CaseKey]) -> dict[CaseKey, Counter[str]]:
    with _terms_lock:
        found = {key: _terms_of_decided[key] for key in keys if key in _terms_of_decided}
    missing = [key for key in keys if key not in found]
    if missing:
        created = dict(missing)
        for case_id, payload in session.execute(select(Case.id, Case.payload).where(Case.id.in_(created))):
            found[case_id, created[case_id]] = similarity.terms(similarity.case_text(payload))
    with _terms_lock:
        for key in keys:
            _terms_of_decided[key] = found[key]
            _terms_of_decided.move_to_end(key)
        while len(_terms_of_decided) > _TERMS_KEPT:
            _terms_of_decided.popitem(last=False)
    return found


def _outcome(session: Session, case_id: int, status: str) -> str:
    decision = session.scalars(
        select(Decision).where(Decision.case_id == case_id).order_by(Decision.id.desc()).limit(1)).first()
    if decision is None:
        return status
    return f"{status} ({decision.kind}{': ' + decision.action if decision.action else ''})"


def context_for(session: Session, case: Case) -> RuntimeContext:
    routing_config = routing()
    enabled = providers(current_app.config, routing_config)
    return RuntimeContext(
        routing=routing_config,
        providers=enabled,
        cache=ResultCache(redis_connection(), routing_config.cache_ttl_seconds),
        precedents=find_precedents(session, case),
        budget_exhausted=over_budget(session, routing_config, utcnow(), case.client_id, case.domain)
        if routing_config.may_pay(enabled) else None,
        confidence_cap=float(current_app.config["AI_CONTRADICTION_CONFIDENCE_CAP"]),
    )


def _current(session: Session, case_id: int, version: int) -> Case | None:
    """The case, if it is still analysing the version this job started with."""
    case = session.get(Case, case_id)
    if case is None or case.status != Status.ANALYZING.value or case.version != version:
        return None
    return case


def store_recommendation(session: Session, case_id: int, version: int, draft: Draft) -> Recommendation | None:
    """Store ``draft`` for ``version`` of the case and move it to pending_review.

    Returns None (and changes nothing) when the case moved on meanwhile or a
    twin job already stored this version's recommendation."""
    case = _current(session, case_id, version)
    if case is None:
        return None
    rec = draft.recommendation
    row = Recommendation(
        case_id=case_id, case_version=version, provider=draft.provider, model=draft.model,
        template_version=draft.template_version, prompt_hash=draft.prompt_hash, input_hash=draft.input_hash,
        action=rec.action, parameters=rec.parameters, rationale=rec.rationale, confidence=rec.confidence,
        flags=draft.flags, citations=rec.citations, details=draft.details, tokens_in=draft.tokens_in,
        tokens_out=draft.tokens_out, cost_usd=draft.cost_usd, latency_ms=draft.latency_ms,
        cache_hit=draft.cache_hit, fallback_used=draft.fallback_used, hard_flags=draft.hard_flags,
        screen_action=draft.screen_action,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        return None
    case.recommendation_id = row.id
    case.risk_score = draft.risk_score
    transition(session, case, "recommendation_stored", AI_ACTOR, expected_version=version, data={
        "recommendation_id": row.id, "provider": draft.provider, "model": draft.model, "action": rec.action,
        "confidence": rec.confidence, "flags": draft.flags, "cost_usd": str(draft.cost_usd),
        "cache_hit": draft.cache_hit, "fallback_used": draft.fallback_used,
    })
    apply_rules(session, case, trigger="recommendation")
    return row


def record_failure(session: Session, case_id: int, version: int, error: str,
                   attempts: list[dict[str, str]] | None = None) -> bool:
    """Move the case to ai_failed with the error audited; False when it moved on meanwhile."""
    case = _current(session, case_id, version)
    if case is None:
        return False
    transition(session, case, "analysis_failed", AI_ACTOR, expected_version=version,
               data={"error": error[:2000], "attempts": attempts or []})
    return True


def start_analysis(session: Session, case: Case) -> int | None:
    """Move a received case to analyzing; return the version to analyse, or None when
    there is nothing to do (already analysed, or in another state)."""
    if case.status == Status.RECEIVED.value:
        case.recommendation_id = None
        transition(session, case, "analysis_started", AI_ACTOR)
        return case.version
    if case.status == Status.ANALYZING.value:
        return case.version  # re-run after a lost worker: the sweep re-enqueued it
    return None
