"""The AI cost-and-quality dashboard: tokens and cost, latency, and how often the model's answers
came from the cache, from a fallback, were invalid, cited data that is not there, or met an
injection attempt."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.ai.runtime import INVALID_OUTPUT
from app.audit.actions import AuditAction
from app.audit.models import AuditEvent
from app.cases.models import Case, Recommendation
from app.dashboards.filters import Selection
from app.dashboards.stats import Cells, Count, Rate, day_of, percentile
from app.intake.models import ApiClient

HALLUCINATED_CITATION = "unverified_citation"  # a cited payload path the case data does not have
INJECTION = "prompt_injection"


@dataclass(frozen=True)
class Spend:
    """Tokens and cost of a group of recommendations."""

    group: str
    recommendations: Count
    tokens_in: int
    tokens_out: int
    cost_usd: Decimal


@dataclass(frozen=True)
class SpendDay:
    day: date
    by_model: dict[str, Decimal]  # cost
    total: Spend


@dataclass(frozen=True)
class Latency:
    provider: str
    calls: Count  # answers not served from the cache
    p50_ms: float | None
    p95_ms: float | None


@dataclass(frozen=True)
class AiDashboard:
    recommendations: Count
    days: list[SpendDay]
    models: list[str]
    by_model: list[Spend]
    by_client: list[Spend]
    latency: list[Latency]
    cache_hits: Rate
    fallbacks: Rate
    hallucinated_citations: Rate
    injections: Rate
    invalid_outputs: Rate  # of the provider answers: invalid ones + the recommendations stored
    cells: Cells


@dataclass(frozen=True)
class _Rec:
    case_id: int
    day: date
    provider: str
    model: str
    client: str
    tokens_in: int
    tokens_out: int
    cost_usd: Decimal
    latency_ms: int
    cache_hit: bool
    fallback_used: bool
    flags: list[str]


def ai_dashboard(session: Session, selection: Selection) -> AiDashboard:
    cells = Cells()
    recs, invalid = _recommendations(session, selection)
    invalid += _failed_analyses(session, selection)
    whole = len(recs)
    models = sorted({r.model for r in recs})

    def share(key: str, chosen: list[_Rec]) -> Rate:
        return Rate(cells.count(key, (r.case_id for r in chosen), len(chosen)), whole)

    invalid_count = sum(n for _, n in invalid)
    return AiDashboard(
        recommendations=cells.count("recommendations", (r.case_id for r in recs), whole),
        days=_days(cells, selection, recs), models=models,
        by_model=[_spend(cells, f"model/{m}", m, [r for r in recs if r.model == m]) for m in models],
        by_client=[_spend(cells, f"client/{c}", c, [r for r in recs if r.client == c])
                   for c in sorted({r.client for r in recs})],
        latency=_latency(cells, recs),
        cache_hits=share("cache_hits", [r for r in recs if r.cache_hit]),
        fallbacks=share("fallbacks", [r for r in recs if r.fallback_used]),
        hallucinated_citations=share("hallucinated_citations", [r for r in recs if HALLUCINATED_CITATION in r.flags]),
        injections=share("injections", [r for r in recs if INJECTION in r.flags]),
        invalid_outputs=Rate(cells.count("invalid_outputs", (case_id for case_id, _ in invalid), invalid_count),
                             invalid_count + whole),
        cells=cells)


def _model_of(target: str) -> str:
    """The model of a routing target as attempts record it: ``provider:model``."""
    return target.partition(":")[2]


def _invalid_answers(attempts: list[dict[str, Any]], model: str) -> int:
    """The attempts of one analysis that got an invalid answer (of ``model`` only, when given)."""
    return sum(1 for a in attempts
               if a.get("outcome") == INVALID_OUTPUT and (not model or _model_of(a.get("target", "")) == model))


def _recommendations(session: Session, selection: Selection) -> tuple[list[_Rec], list[tuple[int, int]]]:
    """The recommendations made in the range (of the model filtered on), and (case id, invalid
    answers) of every analysis that stored one after invalid answers (of that model)."""
    model = selection.filters.model
    stmt = (select(Recommendation, ApiClient.name)
            .join(Case, Case.id == Recommendation.case_id).join(ApiClient, ApiClient.id == Case.client_id)
            .where(Recommendation.created_at >= selection.start, Recommendation.created_at < selection.end,
                   *selection.case_conditions()).order_by(Recommendation.id))
    recs, invalid = [], []
    for rec, client in session.execute(stmt):
        answers = _invalid_answers(rec.details.get("attempts", []), model)
        if answers:
            invalid.append((rec.case_id, answers))
        if not model or rec.model == model:
            recs.append(_Rec(rec.case_id, day_of(rec.created_at), rec.provider, rec.model, client, rec.tokens_in,
                             rec.tokens_out, Decimal(rec.cost_usd), rec.latency_ms, rec.cache_hit,
                             rec.fallback_used, list(rec.flags)))
    return recs, invalid


def _failed_analyses(session: Session, selection: Selection) -> list[tuple[int, int]]:
    """(case id, invalid answers) of the analyses that failed in the range after invalid answers."""
    stmt = (select(AuditEvent.case_id, AuditEvent.data).join(Case, Case.id == AuditEvent.case_id)
            .where(AuditEvent.action == AuditAction.CASE_ANALYSIS_FAILED, AuditEvent.time >= selection.start,
                   AuditEvent.time < selection.end, *selection.case_conditions()).order_by(AuditEvent.id))
    found = []
    for case_id, data in session.execute(stmt):
        answers = _invalid_answers(data.get("attempts") or [], selection.filters.model)
        if answers:
            found.append((case_id, answers))
    return found


def _spend(cells: Cells, key: str, group: str, recs: list[_Rec]) -> Spend:
    return Spend(group, cells.count(key, (r.case_id for r in recs), len(recs)), sum(r.tokens_in for r in recs),
                 sum(r.tokens_out for r in recs), sum((r.cost_usd for r in recs), Decimal(0)))


def _days(cells: Cells, selection: Selection, recs: list[_Rec]) -> list[SpendDay]:
    by_day: dict[date, list[_Rec]] = defaultdict(list)
    for rec in recs:
        by_day[rec.day].append(rec)
    days = []
    for day in selection.days:
        found = by_day[day]
        cost: dict[str, Decimal] = defaultdict(Decimal)
        for rec in found:
            cost[rec.model] += rec.cost_usd
        days.append(SpendDay(day, dict(cost), _spend(cells, f"day/{day}", str(day), found)))
    return days


def _latency(cells: Cells, recs: list[_Rec]) -> list[Latency]:
    """Per provider, over the answers it gave (a cache hit asked no provider)."""
    by_provider: dict[str, list[_Rec]] = defaultdict(list)
    for rec in recs:
        if not rec.cache_hit:
            by_provider[rec.provider].append(rec)
    return [Latency(provider, cells.count(f"latency/{provider}", (r.case_id for r in found), len(found)),
                    percentile([r.latency_ms for r in found], 50), percentile([r.latency_ms for r in found], 95))
            for provider, found in sorted(by_provider.items())]
