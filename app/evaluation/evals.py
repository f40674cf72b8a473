"""Offline evaluation: labelled cases run through the real AI runtime (routing, redaction, screening,
providers, hard flags, the built-in escalation rules), scored against what an expert would accept.

Each case is built in memory as the snapshot the runtime already works on: the runtime never reads
the database, so an evaluation needs no case rows, no transaction to roll back and no queue. Nothing
is stored, audited, enqueued or cached (every case really asks its provider), and budgets are not
charged; what an evaluation costs is reported instead.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from flask import current_app
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.ai import services
from app.ai.cache import ResultCache
from app.ai.routing import Target
from app.ai.runtime import AllProvidersFailed, CaseSnapshot, Draft, RuntimeContext, analyze
from app.cases.types import UnknownCaseType, get_case_type
from app.escalation.rules import BUILTIN_RULES, Facts, matches
from app.intake.schemas import CaseEnvelope
from app.oversight.calibration import reliability_bins

CLEAR, INJECTION = "clear", "injection"
MAX_LINE_CHARS = 200_000
Name = Annotated[str, Field(min_length=1, max_length=80)]


class LabelledCase(BaseModel):
    """One line of an evaluation file."""

    model_config = ConfigDict(extra="forbid")

    id: Name
    tags: list[Name] = []
    envelope: CaseEnvelope  # as an upstream system would post it to /api/v1/cases
    acceptable_actions: Annotated[list[Name], Field(min_length=1)]
    forbidden_actions: list[Name] = []
    expected_flags: list[Name] = []  # flags the recommendation must carry (hard flags, prompt_injection, ...)
    known_gap: Annotated[str, Field(min_length=1, max_length=500)] | None = None  # why the local analyzer fails it
    note: Annotated[str, Field(max_length=2000)] | None = None

    @property
    def case_type(self) -> str:
        return self.envelope.case_type


@dataclass(frozen=True)
class EvalCase:
    line: int
    label: LabelledCase
    data: dict[str, Any]  # the envelope's data as intake would store it


class EvalFileError(ValueError):
    """The file has bad lines; nothing was run. ``problems`` names each line."""

    def __init__(self, path: str, problems: list[str]) -> None:
        super().__init__(f"{path}: {len(problems)} bad line(s); nothing was run\n" + "\n".join(problems))
        self.problems = problems


def load_cases(path: str | Path) -> list[EvalCase]:
    """Every case of a JSON Lines file (blank lines and lines starting with # skipped), or
    EvalFileError naming every bad line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EvalFileError(str(path), [f"cannot read the file: {exc}"]) from None
    cases, problems, seen = [], [], {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            case = _parse_line(number, line)
        except ValueError as exc:
            problems.append(f"line {number}: {exc}")
            continue
        if case.label.id in seen:
            problems.append(f"line {number}: id {case.label.id!r} is already used on line {seen[case.label.id]}")
            continue
        seen[case.label.id] = number
        cases.append(case)
    if not cases and not problems:
        problems.append("no cases in the file")
    if problems:
        raise EvalFileError(str(path), problems)
    return cases


def _parse_line(number: int, line: str) -> EvalCase:
    if len(line) > MAX_LINE_CHARS:
        raise ValueError(f"longer than {MAX_LINE_CHARS} characters")
    try:
        document = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    try:
        label = LabelledCase.model_validate(document)
    except ValidationError as exc:
        raise ValueError(_describe(exc)) from None
    try:
        case_type = get_case_type(label.envelope.domain, label.case_type)
    except UnknownCaseType as exc:
        raise ValueError(f"envelope: {exc}") from None
    try:
        data = case_type.validate_data(label.envelope.data).model_dump(mode="json")
    except ValidationError as exc:
        raise ValueError(_describe(exc, "envelope.data")) from None
    known = set(case_type.action_names)
    for key in ("acceptable_actions", "forbidden_actions"):
        unknown = sorted(set(getattr(label, key)) - known)
        if unknown:
            raise ValueError(f"{key}: {', '.join(unknown)} not an action of {label.case_type} "
                             f"({', '.join(case_type.action_names)})")
    both = sorted(set(label.acceptable_actions) & set(label.forbidden_actions))
    if both:
        raise ValueError(f"{', '.join(both)} both acceptable and forbidden")
    return EvalCase(number, label, data)


def _describe(exc: ValidationError, prefix: str = "") -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in (prefix, *e['loc']) if p != '') or 'the line'}: {e['msg']}" for e in exc.errors())


# --- running -----------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What the runtime made of one case, and how it scores against the labels."""

    case: EvalCase
    action: str | None = None
    confidence: float | None = None
    flags: list[str] = field(default_factory=list)
    provider: str = ""
    model: str = ""
    senior: bool = False  # a built-in escalation rule sends the case to a senior reviewer
    capped: bool = False
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: Decimal = Decimal(0)
    latency_ms: float = 0
    error: str | None = None

    @property
    def agreed(self) -> bool:
        return self.action in self.case.label.acceptable_actions

    @property
    def forbidden(self) -> bool:
        return self.action in self.case.label.forbidden_actions

    @property
    def missed_flags(self) -> list[str]:
        return [flag for flag in self.case.label.expected_flags if flag not in self.flags]

    def to_json(self) -> dict[str, Any]:
        label = self.case.label
        return {"id": label.id, "line": self.case.line, "case_type": label.case_type, "tags": label.tags,
                "acceptable_actions": label.acceptable_actions, "forbidden_actions": label.forbidden_actions,
                "expected_flags": label.expected_flags, "known_gap": label.known_gap, "action": self.action,
                "confidence": self.confidence, "flags": self.flags, "provider": self.provider,
                "model": self.model, "agreed": self.agreed, "forbidden": self.forbidden,
                "missed_flags": self.missed_flags, "senior": self.senior, "capped": self.capped,
                "tokens_in": self.tokens_in, "tokens_out": self.tokens_out, "cost_usd": str(self.cost_usd),
                "latency_ms": round(self.latency_ms, 1), "error": self.error}


def snapshot_of(case: EvalCase) -> CaseSnapshot:
    envelope = case.label.envelope
    return CaseSnapshot(case_id=0, version=1, client_id=0, domain=envelope.domain, case_type=envelope.case_type,
                        title=envelope.title, data=case.data, confidential=envelope.confidential,
                        external_id=envelope.external_id, callback_url=envelope.callback_url)


def runtime_context() -> RuntimeContext:
    """The app's routing, providers and confidence cap, without a cache, precedents or a spent budget:
    every case asks its provider afresh."""
    routing = services.routing()
    return RuntimeContext(routing=routing, providers=services.providers(current_app.config, routing),
                          cache=ResultCache(None, 0),
                          confidence_cap=float(current_app.config["AI_CONTRADICTION_CONFIDENCE_CAP"]))


def run(cases: list[EvalCase], ctx: RuntimeContext, *, chain: list[Target] | None = None, concurrency: int = 1,
        progress: Callable[[int, int, Outcome], None] | None = None) -> list[Outcome]:
    """Each case through the runtime (``chain`` replacing the routed chain when given), in file order."""
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for outcome in pool.map(lambda case: evaluate(case, ctx, chain), cases):
            outcomes.append(outcome)
            if progress:
                progress(len(outcomes), len(cases), outcome)
    return outcomes


def evaluate(case: EvalCase, ctx: RuntimeContext, chain: list[Target] | None = None) -> Outcome:
    started = time.perf_counter()
    try:
        draft = analyze(snapshot_of(case), ctx, chain)
    except AllProvidersFailed as exc:
        return Outcome(case, error=str(exc), latency_ms=(time.perf_counter() - started) * 1000)
    rec = draft.recommendation
    return Outcome(case, action=rec.action, confidence=rec.confidence, flags=draft.flags, provider=draft.provider,
                   model=draft.model, senior=sends_to_senior(case, draft), capped="confidence_capped" in draft.details,
                   tokens_in=draft.tokens_in, tokens_out=draft.tokens_out, cost_usd=draft.cost_usd,
                   latency_ms=(time.perf_counter() - started) * 1000)


def sends_to_senior(case: EvalCase, draft: Draft) -> bool:
    """Whether a built-in escalation rule would give the case to a senior reviewer (stored rules live in
    the database, which an evaluation does not read)."""
    facts = Facts(domain=case.label.envelope.domain, case_type=case.label.case_type, amount=None, currency=None,
                  risk_score=draft.risk_score, confidence=draft.recommendation.confidence,
                  flags=frozenset(draft.flags), ai_failed=False, status="pending_review", age_minutes=0,
                  reopen_count=0, sla_reached=lambda fraction: False)
    return any(matches(rule.conditions, facts) and any(a.name == "require_senior_reviewer" for a in rule.parsed_actions)
               for rule in BUILTIN_RULES)


# --- the report --------------------------------------------------------------------------------------


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(share * 100) - 1]


def report(outcomes: list[Outcome], *, source: str = "", target: str = "routed") -> dict[str, Any]:
    """The measures of a run, as a JSON-ready document."""
    gaps = [o for o in outcomes if o.case.label.known_gap]
    expected = sum(len(o.case.label.expected_flags) for o in outcomes)
    found = expected - sum(len(o.missed_flags) for o in outcomes)
    latencies = [o.latency_ms for o in outcomes]
    return {
        "source": source,
        "target": target,
        "cases": len(outcomes),
        "failed": sum(o.error is not None for o in outcomes),
        "agreement": _rate(sum(o.agreed for o in outcomes), len(outcomes)),
        "agreement_on_clear": _rate(*_count(o.agreed for o in outcomes if CLEAR in o.case.label.tags)),
        "forbidden_actions": sum(o.forbidden for o in outcomes),
        "flag_recall": _rate(found, expected),
        "injections": _injections(outcomes),
        "by_case_type": _by_case_type(outcomes),
        "calibration": [b for b in reliability_bins((o.confidence, o.agreed) for o in outcomes
                                                    if o.confidence is not None) if b["count"]],
        "cost_usd": str(sum((o.cost_usd for o in outcomes), Decimal(0))),
        "tokens_in": sum(o.tokens_in for o in outcomes),
        "tokens_out": sum(o.tokens_out for o in outcomes),
        "latency_ms": {"p50": _percentile(latencies, 0.5), "p95": _percentile(latencies, 0.95)},
        "gate": gate(outcomes),
        "known_gaps": [{"id": o.case.label.id, "known_gap": o.case.label.known_gap, "action": o.action,
                        "agreed": o.agreed} for o in gaps],
        "results": [o.to_json() for o in outcomes],
    }


def gate(outcomes: list[Outcome]) -> dict[str, list[str]]:
    """The bar a run must clear: every ``clear`` case agreed, no forbidden action, every ``injection`` case
    flagged. A clear case the local analyzer is known to get wrong (``known_gap``) is listed apart,
    under ``known_gaps_failed``, not waived silently; forbidden actions and missed injections never are."""
    failures, gaps = [], []
    for o in outcomes:
        label = o.case.label
        if CLEAR in label.tags and not o.agreed:
            (gaps if label.known_gap else failures).append(
                f"{label.id} (line {o.case.line}): clear case answered {o.action or o.error!r}, "
                f"expected {' or '.join(label.acceptable_actions)}")
        if o.forbidden:
            failures.append(f"{label.id} (line {o.case.line}): forbidden action {o.action!r}")
        if INJECTION in label.tags and "prompt_injection" not in o.flags:
            failures.append(f"{label.id} (line {o.case.line}): injection not flagged")
    return {"failures": failures, "known_gaps_failed": gaps}


def _count(flags: Iterable[bool]) -> tuple[int, int]:
    values = list(flags)
    return sum(values), len(values)


def _injections(outcomes: list[Outcome]) -> dict[str, Any]:
    attacks = [o for o in outcomes if INJECTION in o.case.label.tags]
    return {"cases": len(attacks),
            "flagged": sum("prompt_injection" in o.flags for o in attacks),
            "sent_to_senior": sum(o.senior for o in attacks),
            "capped": sum(o.capped for o in attacks)}


def _by_case_type(outcomes: list[Outcome]) -> dict[str, Any]:
    """Per case type: agreement and the confusion table (the acceptable actions → the action given)."""
    grouped: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        grouped[outcome.case.label.case_type].append(outcome)
    tables = {}
    for case_type, group in sorted(grouped.items()):
        confusion: Counter[tuple[str, str]] = Counter(
            ("|".join(o.case.label.acceptable_actions), o.action or "(failed)") for o in group)
        tables[case_type] = {
            "cases": len(group),
            "agreement": _rate(sum(o.agreed for o in group), len(group)),
            "forbidden_actions": sum(o.forbidden for o in group),
            "confusion": [{"expected": expected, "given": given, "count": count}
                          for (expected, given), count in sorted(confusion.items())],
        }
    return tables
