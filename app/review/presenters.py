"""What the review page shows around a case's data: the recommendation (its parameters, risk
flags explained, citations), the audit timeline, the queue page's empty states, and the
dispatch to the case type's own presenter (``CaseType.present``) for the data itself.

The building blocks (Item, Section, CaseView, money/text formatting …) live in
``app.cases.types.view`` so the case types can use them without importing this package.
Presenters build plain strings; the templates escape them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.ai.screening import REMOVED as INVISIBLE
from app.audit.actions import AuditAction
from app.audit.models import AuditEvent
from app.cases.models import Case, Recommendation
from app.cases.types import UnknownCaseType, get_case_type
from app.cases.types.view import (
    DASH,
    CaseView,
    Column,
    Item,
    Row,
    Section,
    humanize,
    money,
    present_generic,
    score,
    text,
    yes_no,
)
from app.db import utcnow
from app.intake.models import ApiClient
from app.review import signals as signal_words
from app.units import duration
from app.users import User

# --- citations -----------------------------------------------------------------------------------------


class Citations:
    """The payload paths a recommendation cites; ``covers`` decides what is highlighted."""

    def __init__(self, paths: Iterable[str]) -> None:
        self.paths = tuple(dict.fromkeys(p for p in paths if p))

    def covers(self, path: str) -> bool:
        """A path is cited when it, an ancestor of it, or a descendant of it is cited."""
        return bool(path) and any(_related(path, cited) for cited in self.paths)

    def __bool__(self) -> bool:
        return bool(self.paths)


def path_label(path: str) -> str:
    """A cited data path as words: "beneficiary.account_holder" → "Beneficiary · account holder",
    "documents[1].expires_on" → "Documents 2 · expires on"."""
    parts = re.findall(r"([^.\[\]]+)((?:\[\d+\])*)", path)
    words = [humanize(name).lower() + "".join(f" {int(i) + 1}" for i in re.findall(r"\d+", index))
             for name, index in parts]
    label = " · ".join(words)
    return label[:1].upper() + label[1:]


def _related(path: str, cited: str) -> bool:
    return path == cited or _is_under(path, cited) or _is_under(cited, path)


def _is_under(path: str, ancestor: str) -> bool:
    return path.startswith(ancestor) and path[len(ancestor):len(ancestor) + 1] in (".", "[")


# --- page formatting -----------------------------------------------------------------------------------


def when(value: datetime | None) -> str:
    return DASH if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def relative(moment: datetime | None, now: datetime | None = None) -> str:
    """``in 3 h 05 min`` / ``2 d 4 h ago``: coarse and readable."""
    if moment is None:
        return DASH
    seconds = int((moment - (now or utcnow())).total_seconds())
    if abs(seconds) < 60:
        return "just now"
    span = duration(abs(seconds))
    return f"in {span}" if seconds >= 0 else f"{span} ago"


def raw_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


# --- the case's data, as its type presents it --------------------------------------------------------


def present_case(case: Case) -> CaseView:
    """The case type's presenter; the generic view when the type is not registered (any more)."""
    try:
        case_type = get_case_type(case.domain, case.case_type)
    except UnknownCaseType:
        return present_generic(case.payload)
    return case_type.present(case.payload)


# --- empty states of the queue page ------------------------------------------------------------------------

STATUS_EMPTY = {
    "open": "Inbox zero: no open cases",
    "pending_review": "No case is waiting for a reviewer",
    "ai_failed": "Every case has an AI recommendation",
    "in_review": "No case is being reviewed right now",
    "awaiting_second_approval": "No case is waiting for a second approval",
    "needs_info": "No case is waiting for information from upstream",
    "processing": "No case is being analysed",
    "decided": "No decided cases yet",
    "withdrawn": "No withdrawn cases",
    "all": "This queue has no cases yet",
}
FILTER_EMPTY = {
    "me": "No case in this queue is assigned to you.",
    "unassigned": "Every matching case has been claimed.",
    "at_risk": "No case is at risk of missing its SLA.",
    "overdue": "No case is overdue.",
}


# --- the recommendation ---------------------------------------------------------------------------------

FLAG_EXPLANATIONS: dict[str, tuple[str, str]] = {
    "contradicts_screening": ("Contradicts the screening",
                              "The AI chose an action that a hard flag of the deterministic pre-screen rules out. "
                              "Its confidence is capped, and a senior reviewer must approve this case."),
    "prompt_injection": ("Possible prompt injection",
                         "The case text contains instructions aimed at the AI (marked below, in the field where "
                         "they were found). Read those fields yourself and do not rely on the recommendation."),
    "unverified_citation": ("Unverified citation",
                            "The AI cited fields that do not exist in the case data: a possible hallucination."),
    "disagreement": ("Models disagree", "A second model recommended a different action."),
    "budget_fallback": ("Budget fallback",
                        "The cost budget was used up, so a cheaper or local model answered instead."),
    "provider_fallback": ("Provider fallback", "The first-choice AI provider failed; a fallback provider answered."),
}


@dataclass(frozen=True)
class Flag:
    code: str
    label: str
    explanation: str = ""
    details: tuple[str, ...] = ()
    tone: str = ""


@dataclass(frozen=True)
class Span:
    """Text the screening found in a field, with some of the field around it."""

    where: str  # "title", "data.purpose", or "key data.notes.…" for an object's key
    cite: str | None  # the data path, to show the field in the case data (None: an envelope field)
    pattern: str
    before: str
    text: str
    after: str


@dataclass(frozen=True)
class SecondOpinion:
    action: str  # the local analyzer's action
    confidence: float | None
    contradicted: tuple[str, ...]  # the hard flags that rule the AI's action out
    capped_from: float | None  # the AI's own confidence, when it was capped


@dataclass(frozen=True)
class Precedent:
    case_id: int
    similarity: str
    outcome: str
    visible: bool


@dataclass(frozen=True)
class RecommendationView:
    action: str
    parameters: tuple[Section, ...]
    rationale: str
    confidence: float
    warnings: tuple[Flag, ...]  # governance flags, with explanations
    signals: tuple[Flag, ...]  # the risk signals behind the recommendation
    citations: Citations
    unverified: tuple[str, ...]  # cited paths that do not exist in the data
    precedents: tuple[Precedent, ...]
    provenance: tuple[Item, ...]
    hard_flags: tuple[Flag, ...] = ()  # the pre-screen's hard flags, whichever provider answered
    spans: tuple[Span, ...] = ()  # what the injection screening found, where
    second_opinion: SecondOpinion | None = None

    @property
    def confidence_label(self) -> str:
        return f"{self.confidence:.0%}"

    @property
    def confidence_tone(self) -> str:
        return "good" if self.confidence >= 0.8 else "warn" if self.confidence >= 0.5 else "bad"


def present_recommendation(rec: Recommendation, currency: str | None,
                           visible: Callable[[int], bool]) -> RecommendationView:
    details = rec.details or {}
    warnings = tuple(_warning(code, details) for code in rec.flags if code in FLAG_EXPLANATIONS)
    shown_apart = {*FLAG_EXPLANATIONS, *(rec.hard_flags or ())}
    signals = tuple(Flag(w.code, w.label, tone=w.tone)
                    for w in signal_words.top([c for c in rec.flags if c not in shown_apart], limit=len(rec.flags)))
    precedents = tuple(
        Precedent(int(p["case_id"]), f"{float(p.get('score', 0)):.0%}", str(p.get("outcome", "")),
                  visible(int(p["case_id"])))
        for p in details.get("precedents", [])
    )
    return RecommendationView(
        action=rec.action,
        parameters=parameter_sections(rec.parameters, currency),
        rationale=rec.rationale,
        confidence=float(rec.confidence),
        warnings=warnings,
        signals=signals,
        citations=Citations(rec.citations),
        unverified=tuple(details.get("unverified_citations", [])),
        precedents=precedents,
        provenance=_provenance(rec),
        hard_flags=tuple(Flag(code, signal_words.in_words(code).label, tone="bad") for code in rec.hard_flags or ()),
        spans=tuple(_screened_span(finding) for finding in details.get("injection", [])),
        second_opinion=_second_opinion(rec, details),
    )


def _screened_span(finding: dict[str, Any]) -> Span:
    path = str(finding.get("path", ""))
    key = finding.get("part") == "key"
    return Span(where=f"key {path}" if key else path,
                cite=path.removeprefix("data.") if path.startswith("data.") and not key else None,
                pattern=humanize(finding.get("pattern")), before=visible(finding.get("before", "")),
                text=visible(finding.get("text", "")), after=visible(finding.get("after", "")))


def visible(value: Any) -> str:
    """Text with its invisible characters (zero-width, soft hyphen, bidi controls) written out as <U+200B>."""
    return "".join(f"<U+{ord(char):04X}>" if char in INVISIBLE else char for char in str(value))


def _second_opinion(rec: Recommendation, details: dict[str, Any]) -> SecondOpinion | None:
    if rec.screen_action is None:
        return None
    screen = details.get("screen", {})
    contradiction = details.get("contradiction", {})
    capped = details.get("confidence_capped", {})
    return SecondOpinion(rec.screen_action, screen.get("confidence"), tuple(contradiction.get("hard_flags", ())),
                         capped.get("from"))


def _warning(code: str, details: dict[str, Any]) -> Flag:
    label, explanation = FLAG_EXPLANATIONS[code]
    lines: tuple[str, ...] = ()
    if code == "contradicts_screening":
        contradiction = details.get("contradiction", {})
        lines = (f"“{humanize(contradiction.get('action'))}” is ruled out by: "
                 f"{', '.join(humanize(flag) for flag in contradiction.get('hard_flags', []))}",)
    elif code == "unverified_citation":
        lines = tuple(f"Cited but not in the data: {path}" for path in details.get("unverified_citations", []))
    elif code == "disagreement":
        other = details.get("disagreement", {})
        lines = (f"{other.get('target', 'Second model')} recommends “{humanize(other.get('action'))}”"
                 f" (confidence {score(other.get('confidence'))})",)
        if other.get("rationale"):
            lines += (str(other["rationale"]),)
    elif code == "budget_fallback" and details.get("budget"):
        lines = (str(details["budget"]),)
    elif code == "provider_fallback":
        lines = tuple(f"{a.get('target')}: {a.get('error') or a.get('skipped')}" for a in details.get("attempts", []))
    tone = "bad" if code in ("contradicts_screening", "prompt_injection", "unverified_citation") else "warn"
    return Flag(code, label, explanation, lines, tone)


def parameter_sections(parameters: dict[str, Any], currency: str | None) -> tuple[Section, ...]:
    """Action parameters for display: text as paragraphs, limits as money, lists of rows as tables."""
    items: list[Item] = []
    tables: list[Section] = []
    for key, value in parameters.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            columns = tuple(Column(humanize(k), wrap=True) for k in value[0])
            rows = tuple(Row("", tuple(text(v.get(k)) for k in value[0])) for v in value)
            tables.append(Section(humanize(key), columns=columns, rows=rows, wide=True))
        elif key == "limit":
            items.append(Item("Limit", money(value, currency)))
        else:
            items.append(Item(humanize(key), text(value), long=isinstance(value, str) and len(value) > 80))
    return ((Section("Parameters", tuple(items)),) if items else ()) + tuple(tables)


def _provenance(rec: Recommendation) -> tuple[Item, ...]:
    return (
        Item("Provider", rec.provider),
        Item("Model", rec.model),
        Item("Local pre-screen", humanize(rec.screen_action) if rec.screen_action else DASH),
        Item("Prompt template", rec.template_version),
        Item("Cost", f"USD {Decimal(rec.cost_usd):.4f}"),
        Item("Latency", f"{rec.latency_ms:,} ms"),
        Item("Tokens in / out", f"{rec.tokens_in:,} / {rec.tokens_out:,}"),
        Item("Cache hit", yes_no(rec.cache_hit)),
        Item("Generated", when(rec.created_at)),
    )


# --- the reviewer's change against the AI's proposal -------------------------------------------------------


@dataclass(frozen=True)
class DiffRow:
    """One changed thing: the action, or one parameter, as the AI proposed it and as the reviewer set it."""

    label: str
    proposed: str
    final: str


def diff_rows(diff: dict[str, Any]) -> tuple[DiffRow, ...]:
    """A decision's ``diff`` (see services.decision_diff) as rows to show side by side."""
    rows = []
    if isinstance(diff.get("action"), list):
        old, new = diff["action"]
        rows.append(DiffRow("Action", humanize(old), humanize(new)))
    for key, change in (diff.get("parameters") or {}).items():
        old, new = change if isinstance(change, list) and len(change) == 2 else (None, change)
        rows.append(DiffRow(humanize(key), DASH if old is None else compact(old),
                            DASH if new is None else compact(new)))
    return tuple(rows)


# --- the timeline ----------------------------------------------------------------------------------------

SHOWN_DATA = ("kind", "action", "parameters", "reason_code", "queue", "from_queue", "to_queue", "assignee",
              "error", "provider", "model", "confidence", "flags")


@dataclass(frozen=True)
class TimelineEntry:
    event_id: int
    time: datetime
    actor: str
    action: str
    label: str
    from_status: str | None
    to_status: str | None
    reason: str | None
    details: tuple[Item, ...]
    diff: tuple[DiffRow, ...] = ()  # an edited approval: the reviewer's change against the AI's proposal


AI_VIEW = frozenset({"action", "parameters", "confidence", "flags", "diff"})  # what a blind reviewer may not see


def timeline(session: Session, case_id: int, *, hide_ai: bool = False) -> list[TimelineEntry]:
    """The case's audit events, newest first, with actors named; ``hide_ai`` leaves out what
    would reveal the AI's recommendation (blind review)."""
    events = session.scalars(
        select(AuditEvent).where(AuditEvent.case_id == case_id).order_by(AuditEvent.id.desc())
    ).all()
    names = actor_names(session, [e.actor for e in events])
    return [_entry(event, names, hide_ai) for event in events]


def _entry(event: AuditEvent, names: dict[str, str], hide_ai: bool) -> TimelineEntry:
    data = event.data if isinstance(event.data, dict) else {}
    if hide_ai:
        data = {key: value for key, value in data.items() if key not in AI_VIEW}
    details = tuple(Item(humanize(key), _shown(key, data[key])) for key in SHOWN_DATA
                    if key in data and data[key] not in (None, "", [], {}))
    return TimelineEntry(
        event_id=event.id, time=event.time, actor=names.get(event.actor, event.actor), action=event.action,
        label=humanize(event.action.removeprefix("case.")), from_status=data.get("from"), to_status=data.get("to"),
        reason=data.get("reason"), details=details,
        diff=diff_rows(data["diff"]) if isinstance(data.get("diff"), dict) else (),
    )


CODE_VALUES = frozenset({"kind", "action", "reason_code"})  # machine codes, shown humanized


def _shown(key: str, value: Any) -> str:
    if key in CODE_VALUES and isinstance(value, str):
        return humanize(value)
    return compact(value)


def compact(value: Any) -> str:
    """A compact rendering of an audit value."""
    if isinstance(value, dict):
        return "; ".join(f"{humanize(k).lower()}: {compact(v)}" for k, v in value.items()) or DASH
    if isinstance(value, list):
        return ", ".join(compact(v) for v in value) or DASH
    if isinstance(value, float):
        return f"{value:.2f}"
    return text(value)


def actor_names(session: Session, actors: list[str]) -> dict[str, str]:
    """``user:7`` → the user's name and email; ``client:2`` → the client's name."""
    ids: dict[str, set[int]] = {"user": set(), "client": set()}
    for actor in actors:
        kind, _, raw = actor.partition(":")
        if kind in ids and raw.isdigit():
            ids[kind].add(int(raw))
    names = {f"system:{a.partition(':')[2]}": f"System ({a.partition(':')[2]})" for a in actors
             if a.startswith("system:")}
    if ids["user"]:
        for user in session.scalars(select(User).where(User.id.in_(ids["user"]))):
            names[f"user:{user.id}"] = f"{user.name} <{user.email}>"
    if ids["client"]:
        for client in session.scalars(select(ApiClient).where(ApiClient.id.in_(ids["client"]))):
            names[f"client:{client.id}"] = f"{client.name} (upstream)"
    return names


def latest_event(session: Session, case_id: int, action: AuditAction) -> AuditEvent | None:
    return session.scalars(
        select(AuditEvent).where(AuditEvent.case_id == case_id, AuditEvent.action == action)
        .order_by(AuditEvent.id.desc()).limit(1)
    ).first()


def failure_reason(session: Session, case_id: int) -> str:
    event = latest_event(session, case_id, AuditAction.CASE_ANALYSIS_FAILED)
    if event is None:
        return "The AI analysis failed; no reason was recorded."
    return str((event.data or {}).get("error") or "The AI analysis failed; no reason was recorded.")
