"""The AI gateway: governance → router → provider → validation, for one case.

It works on a snapshot of the case taken by the caller, so no database session
is open during the (slow) provider calls, and it never imports the web layer.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from app.ai import governance, screening
from app.ai.cache import ResultCache
from app.ai.providers.base import (
    InvalidOutput,
    Provider,
    ProviderError,
    ProviderRequest,
    ProviderResponse,
    TransientProviderError,
)
from app.ai.routing import RoutingConfig, Target
from app.ai.schemas import Recommendation, parse_recommendation, response_schema
from app.cases.types import REGISTRY, CaseType, get_case_type
from app.cases.types.base import Analysis
from app.db import json_digest, sha256_hex
from app.metrics import provider_call

TEMPLATE_VERSION = "v1"
_PROMPTS = Environment(
    loader=FileSystemLoader(Path(__file__).with_name("prompts") / TEMPLATE_VERSION),
    autoescape=False,  # noqa: S701 (plain-text prompts, never HTML)
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)
SYSTEM_PROMPT = (Path(__file__).with_name("prompts") / TEMPLATE_VERSION / "system.txt").read_text()


@dataclass(frozen=True)
class CaseSnapshot:
    case_id: int
    version: int
    client_id: int
    domain: str
    case_type: str
    title: str
    data: dict[str, Any]
    confidential: bool
    external_id: str = ""
    callback_url: str | None = None

    @property
    def envelope(self) -> dict[str, Any]:
        """The free strings of the envelope the client posted (the data aside): screened like the data."""
        return {"external_id": self.external_id, "title": self.title, "callback_url": self.callback_url}


@dataclass(frozen=True)
class Precedent:
    case_id: int
    score: float
    outcome: str


@dataclass
class RuntimeContext:
    routing: RoutingConfig
    providers: dict[str, Provider]
    cache: ResultCache
    precedents: list[Precedent] = field(default_factory=list)
    budget_exhausted: str | None = None  # why paid providers may not be used this month
    confidence_cap: float = 0.5  # AI_CONTRADICTION_CONFIDENCE_CAP: the most an answer the screening doubts may claim


@dataclass
class Draft:
    """A validated recommendation, ready to be stored."""

    provider: str
    model: str
    prompt_hash: str
    input_hash: str
    recommendation: Recommendation
    risk_score: float
    flags: list[str]
    details: dict[str, Any]
    screen_action: str  # the local analyzer's action: the second opinion shown beside the answer
    hard_flags: list[str] = field(default_factory=list)
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: Decimal = Decimal(0)
    latency_ms: int = 0
    cache_hit: bool = False
    fallback_used: bool = False
    template_version: str = TEMPLATE_VERSION


class AllProvidersFailed(ProviderError):
    def __init__(self, message: str, attempts: list[dict[str, str]], transient: bool) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.transient = transient


def analyze(snapshot: CaseSnapshot, ctx: RuntimeContext, chain: list[Target] | None = None) -> Draft:
    """Ask the routed providers in order until one gives a valid recommendation; ``chain`` replaces the
    routed one (a shadow model, or the evaluation of one provider)."""
    case_type = get_case_type(snapshot.domain, snapshot.case_type)
    data = case_type.validate_data(snapshot.data)
    screen = case_type.analyze(data)
    findings = screening.screen_case(snapshot.envelope, snapshot.data)
    if chain is None:
        chain = ctx.routing.chain_for(snapshot.domain, snapshot.case_type, screen.risk_score, snapshot.confidential)
    attempts: list[dict[str, str]] = []
    for target in chain:
        skip = _skip_reason(target, snapshot, ctx)
        if skip:
            attempts.append({"target": str(target), "outcome": skip[0], "detail": skip[1]})
            continue
        try:
            draft = _ask(ctx.providers[target.provider], target, snapshot, case_type, screen, findings, ctx)
        except TransientProviderError as exc:
            attempts.append({"target": str(target), "outcome": "transient", "detail": str(exc)})
            continue
        except InvalidOutput as exc:  # counted apart: the dashboards' invalid-output rate
            attempts.append({"target": str(target), "outcome": INVALID_OUTPUT, "detail": str(exc)})
            continue
        except ProviderError as exc:
            attempts.append({"target": str(target), "outcome": "error", "detail": str(exc)})
            continue
        return _finish(draft, attempts, snapshot, case_type, screen, findings, ctx)
    summary = "; ".join(f"{a['target']}: {a['outcome']}: {a['detail']}" for a in attempts)
    transient = any(a["outcome"] == "transient" for a in attempts)
    raise AllProvidersFailed(f"no provider gave a valid recommendation ({summary})", attempts, transient)


INVALID_OUTPUT = "invalid_output"  # the provider answered, but not with a valid recommendation
# Outcomes of a provider in the chain that mean the answer comes from a fallback.
FALLBACK_OUTCOMES = frozenset({"transient", "error", INVALID_OUTPUT, "budget"})


def _skip_reason(target: Target, snapshot: CaseSnapshot, ctx: RuntimeContext) -> tuple[str, str] | None:
    """Why ``target`` is not asked (outcome, detail), or None when it may be."""
    provider = ctx.providers.get(target.provider)
    if provider is None:
        return "disabled", "provider not enabled (AI_PROVIDER / credentials)"
    if snapshot.confidential and not provider.private:
        return "confidential", "confidential case: private providers only"
    if ctx.budget_exhausted and ctx.routing.is_paid(target.model):
        return "budget", ctx.budget_exhausted
    return None


def _ask(provider: Provider, target: Target, snapshot: CaseSnapshot, case_type: CaseType[Any],
         screen: Analysis, findings: list[screening.Finding], ctx: RuntimeContext) -> Draft:
    redaction = None if provider.private else governance.redact(snapshot.data)
    visible = redaction.data if redaction else snapshot.data
    request = ProviderRequest(
        case_type=case_type,
        model=target.model,
        system_prompt=SYSTEM_PROMPT,
        user_prompt=render_prompt(snapshot, case_type, visible, screen, ctx.precedents, findings),
        data=visible,
        response_schema=response_schema(case_type),
    )
    prompt_hash = json_digest([request.system_prompt, request.user_prompt, request.response_schema])
    cache_key = ResultCache.key(provider.name, target.model, TEMPLATE_VERSION, prompt_hash)
    cached = ctx.cache.get(cache_key) if not provider.private else None
    started = time.perf_counter()
    if cached is not None:
        response = ProviderResponse(output=cached["output"], model=cached["model"])
    else:
        with provider_call(provider.name, target.model):
            response = provider.complete(request)
    latency_ms = round((time.perf_counter() - started) * 1000)
    recommendation = parse_recommendation(case_type, response.output)
    if redaction:
        recommendation = Recommendation.model_validate(
            governance.unredact(recommendation.model_dump(mode="json"), redaction.mapping))
    if cached is None and not provider.private:
        ctx.cache.put(cache_key, {"output": response.output, "model": response.model})
    return Draft(
        provider=provider.name,
        model=response.model or target.model,
        prompt_hash=prompt_hash,
        input_hash=json_digest(snapshot.data),
        recommendation=recommendation,
        risk_score=screen.risk_score,
        flags=[],
        details={"redactions": redaction.applied if redaction else {},
                 "screen": {"action": screen.action, "confidence": screen.confidence,
                            "risk_score": screen.risk_score, "flags": screen.risk_flags}},
        screen_action=screen.action,
        tokens_in=response.tokens_in,
        tokens_out=response.tokens_out,
        cost_usd=ctx.routing.cost(target.model, response.tokens_in, response.tokens_out),
        latency_ms=latency_ms,
        cache_hit=cached is not None,
    )


def _finish(draft: Draft, attempts: list[dict[str, str]], snapshot: CaseSnapshot, case_type: CaseType[Any],
            screen: Analysis, findings: list[screening.Finding], ctx: RuntimeContext) -> Draft:
    """Governance after the call: screening, hard flags, citation check, disagreement, attribution."""
    flags = set(draft.recommendation.risk_flags)
    details = draft.details
    if findings:
        flags.add("prompt_injection")
        details["injection"] = [finding.to_json() for finding in findings]
    _hold_to_screening(draft, case_type, screen, flags, ctx)
    citations = governance.check_citations(draft.recommendation.citations, snapshot.data)
    if citations.invalid:
        flags.add("unverified_citation")
        details["unverified_citations"] = citations.invalid
    if attempts:
        details["attempts"] = attempts
    outcomes = {a["outcome"] for a in attempts}
    if outcomes & FALLBACK_OUTCOMES:
        draft.fallback_used = True
        flags.add("provider_fallback")
    if "budget" in outcomes:
        flags.add("budget_fallback")
        details["budget"] = ctx.budget_exhausted
    if ctx.precedents:
        details["precedents"] = [{"case_id": p.case_id, "score": p.score, "outcome": p.outcome}
                                 for p in ctx.precedents]
    disagreement = _second_opinion(draft, snapshot, case_type, screen, findings, ctx)
    if disagreement:
        details["disagreement"] = disagreement
        if disagreement.get("action") not in (None, draft.recommendation.action):
            flags.add("disagreement")
    draft.flags = sorted(flags)
    return draft


def _hold_to_screening(draft: Draft, case_type: CaseType[Any], screen: Analysis, flags: set[str],
                       ctx: RuntimeContext) -> None:
    """Attach the pre-screen's hard flags, whichever provider answered; an answer the screening doubts
    (it takes an action a hard flag rules out, or the case text tries to instruct the model) may
    claim no more than the confidence cap, and the local analyzer's action stays beside it."""
    draft.hard_flags = case_type.hard_flags_of(screen.risk_flags)
    flags.update(draft.hard_flags)
    rec = draft.recommendation
    contradicted = case_type.contradicted(draft.hard_flags, rec.action)
    if contradicted:
        flags.add("contradicts_screening")
        draft.details["contradiction"] = {"action": rec.action, "hard_flags": contradicted,
                                          "screen_action": screen.action}
    if (contradicted or "prompt_injection" in flags) and rec.confidence > ctx.confidence_cap:
        draft.details["confidence_capped"] = {"from": rec.confidence, "to": ctx.confidence_cap}
        draft.recommendation = rec.model_copy(update={"confidence": ctx.confidence_cap})


def _second_opinion(draft: Draft, snapshot: CaseSnapshot, case_type: CaseType[Any], screen: Analysis,
                    findings: list[screening.Finding], ctx: RuntimeContext) -> dict[str, Any] | None:
    second = ctx.routing.disagreement.second
    if not ctx.routing.disagreement.enabled or second is None:
        return None
    if (second.provider, second.model) == (draft.provider, draft.model):
        return None
    skip = _skip_reason(second, snapshot, ctx)
    if skip:
        return {"target": str(second), "error": skip[1]}
    try:
        other = _ask(ctx.providers[second.provider], second, snapshot, case_type, screen, findings, ctx)
    except ProviderError as exc:
        return {"target": str(second), "error": str(exc)}
    return {"target": str(second), "action": other.recommendation.action,
            "parameters": other.recommendation.parameters, "rationale": other.recommendation.rationale,
            "confidence": other.recommendation.confidence}


def render_prompt(snapshot: CaseSnapshot, case_type: CaseType[Any], visible_data: dict[str, Any],
                  screen: Analysis, precedents: list[Precedent],
                  findings: list[screening.Finding] | None = None) -> str:
    """The user prompt: trusted guidance around the case's untrusted text, fenced as JSON between markers
    tagged with a digest of that JSON (so no text in the case can close the fence: it would have to
    contain the digest of itself)."""
    case_json = json.dumps({"title": snapshot.title, "data": visible_data},
                           indent=2, sort_keys=True, ensure_ascii=False)
    return _PROMPTS.get_template("case.j2").render(
        domain=snapshot.domain,
        case_type=snapshot.case_type,
        guidance=case_type.prompt(TEMPLATE_VERSION).strip(),  # prompt.<version>.md in the type's folder
        actions=case_type.action_names,
        case_json=case_json,
        fence=sha256_hex(case_json)[:16],
        screening=", ".join(screen.risk_flags),
        hard_flags=", ".join(case_type.hard_flags_of(screen.risk_flags)),
        injection=", ".join(dict.fromkeys(finding.path for finding in findings or [])),
        precedents=precedents,
    )


def warm_templates() -> None:
    _PROMPTS.get_template("case.j2")
    for case_type in REGISTRY.values():
        case_type.prompt(TEMPLATE_VERSION)  # every registered type has a prompt of this version


__all__ = ["AllProvidersFailed", "CaseSnapshot", "Draft", "InvalidOutput", "Precedent", "RuntimeContext", "analyze"]
