"""Shadow models: a route may name a second provider and model that analyses the same cases after the
primary answered, apart (its own RQ job, its own monthly budget), so that a candidate model can be
judged on live traffic before it is trusted. Its answers go to ``shadow_recommendations`` only: no
page, API, escalation rule or execution reads that table. ``compare`` sets them, the primary's and the
reviewers' decisions side by side for ``flask ai compare-shadow``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.ai.models import ShadowRecommendation
from app.ai.routing import Disagreement, RoutingConfig, Target, month_start
from app.ai.runtime import TEMPLATE_VERSION, Draft, RuntimeContext
from app.cases import policy
from app.cases.models import Case, Decision, Recommendation


def target_for(config: RoutingConfig, case: Case) -> Target | None:
    """The shadow of the route the case's primary analysis took (routed on its stored risk score)."""
    return config.route_for(case.domain, case.case_type, case.risk_score or 0.0, case.confidential).shadow


def over_budget(session: Session, config: RoutingConfig, now: datetime) -> str | None:
    """Why paid shadow models may not run this month, or None."""
    cap = config.budgets.shadow_monthly_usd
    if cap is None:
        return None
    spent = Decimal(session.scalar(select(func.coalesce(func.sum(ShadowRecommendation.cost_usd), 0))
                                   .where(ShadowRecommendation.created_at >= month_start(now))) or 0)
    return f"shadow budget spent: USD {spent:.2f} of {cap:.2f} this month" if spent >= cap else None


def shadow_context(ctx: RuntimeContext, budget_exhausted: str | None) -> RuntimeContext:
    """The primary's context for the shadow: the shadow's own budget, and no second opinion of its own."""
    routing = ctx.routing.model_copy(update={"disagreement": Disagreement()})
    return dataclasses.replace(ctx, routing=routing, budget_exhausted=budget_exhausted)


def already_shadowed(session: Session, recommendation_id: int) -> bool:
    return session.scalar(select(ShadowRecommendation.id)
                          .where(ShadowRecommendation.recommendation_id == recommendation_id)) is not None


def store(session: Session, primary: Recommendation, target: Target, draft: Draft | None = None,
          error: str | None = None) -> ShadowRecommendation | None:
    """Store the shadow's answer (``draft``) or its failure (``error``) beside ``primary``; None when a twin
    job stored it."""
    row = ShadowRecommendation(case_id=primary.case_id, case_version=primary.case_version,
                               recommendation_id=primary.id, provider=target.provider, model=target.model,
                               template_version=TEMPLATE_VERSION, input_hash=primary.input_hash,
                               error=error[:2000] if error else None)
    if draft is not None:
        rec = draft.recommendation
        row.provider, row.model, row.prompt_hash = draft.provider, draft.model, draft.prompt_hash
        row.action, row.parameters, row.rationale, row.confidence = rec.action, rec.parameters, rec.rationale, \
            rec.confidence
        row.flags, row.hard_flags, row.citations, row.details = draft.flags, draft.hard_flags, rec.citations, \
            draft.details
        row.tokens_in, row.tokens_out, row.cost_usd, row.latency_ms = draft.tokens_in, draft.tokens_out, \
            draft.cost_usd, draft.latency_ms
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        return None
    return row


# --- comparison --------------------------------------------------------------------------------------


@dataclass
class Comparison:
    """Cases with a shadow answer and a human decision that names an action."""

    compared: int = 0
    primary_agreed: int = 0
    shadow_agreed: int = 0
    both_agreed: int = 0
    shadow_failed: int = 0
    undecided: int = 0  # shadowed cases with no human action yet (open, or rejected outright)

    def rate(self, count: int) -> float | None:
        return count / self.compared if self.compared else None


def compare(session: Session, since: datetime | None = None) -> dict[str, Comparison]:
    """By shadow model: how often the primary's and the shadow's actions match the human decision (the
    action of the last decision on the primary's recommendation that carries one: an approval or an edit)."""
    query = (select(ShadowRecommendation, Recommendation.action)
             .join(Recommendation, Recommendation.id == ShadowRecommendation.recommendation_id)
             .order_by(ShadowRecommendation.id))
    if since is not None:
        query = query.where(ShadowRecommendation.created_at >= since)
    rows = session.execute(query).all()
    human = _human_actions(session, {shadow.recommendation_id for shadow, _ in rows})
    results: dict[str, Comparison] = {}
    for shadow, primary_action in rows:
        tally = results.setdefault(f"{shadow.provider}:{shadow.model}", Comparison())
        decided = human.get(shadow.recommendation_id)
        if shadow.error is not None:
            tally.shadow_failed += 1
        elif decided is None:
            tally.undecided += 1
        else:
            tally.compared += 1
            tally.primary_agreed += primary_action == decided
            tally.shadow_agreed += shadow.action == decided
            tally.both_agreed += primary_action == decided == shadow.action
    return results


def _human_actions(session: Session, recommendation_ids: set[int]) -> dict[int, str]:
    """Recommendation id → the action of the last decision on it that carries one."""
    if not recommendation_ids:
        return {}
    rows = session.execute(select(Decision.recommendation_id, Decision.action)
                           .where(Decision.recommendation_id.in_(recommendation_ids), Decision.action.is_not(None),
                                  policy.standing())
                           .order_by(Decision.id))
    return {recommendation_id: action for recommendation_id, action in rows}
