"""What the case page shows: one presenter per case type turns the stored payload into
labelled sections (fields, tables, text blocks) that the shared macros render; the
recommendation, its risk flags and the audit timeline are presented here too.

Presenters build plain strings; the templates escape them. Every displayed value
carries its payload path (``beneficiary.country``) so citations can be highlighted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.models import AuditEvent
from app.auth.models import User
from app.cases.models import Case, Recommendation
from app.cases.types.kyc_review import IDENTITY_DOCUMENT, IDENTITY_DOCUMENT_TYPES, KycReview, required_documents
from app.db import utcnow
from app.intake.models import ApiClient

# --- display building blocks ---------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One labelled value; ``tone`` is "", "good", "warn" or "bad"."""

    label: str
    value: str
    path: str = ""
    tone: str = ""
    long: bool = False  # free text: shown as a paragraph


@dataclass(frozen=True)
class Row:
    path: str
    cells: tuple[str, ...]
    tone: str = ""


@dataclass(frozen=True)
class Column:
    label: str
    numeric: bool = False
    wrap: bool = False  # free text may wrap; codes, dates and amounts stay on one line


@dataclass(frozen=True)
class Block:
    """A titled passage of text, e.g. a contract clause."""

    label: str
    heading: str
    body: str
    path: str


@dataclass(frozen=True)
class Section:
    title: str
    items: tuple[Item, ...] = ()
    columns: tuple[Column, ...] = ()
    rows: tuple[Row, ...] = ()
    blocks: tuple[Block, ...] = ()
    empty: str = "Nothing recorded."
    wide: bool = False

    @property
    def kind(self) -> str:
        return "table" if self.columns else "blocks" if self.blocks else "items"


@dataclass(frozen=True)
class CaseView:
    summary: tuple[Item, ...]  # the headline facts, shown above the sections
    sections: tuple[Section, ...]


class Citations:
    """The payload paths a recommendation cites; ``covers`` decides what is highlighted."""

    def __init__(self, paths: Iterable[str]) -> None:
        self.paths = tuple(dict.fromkeys(p for p in paths if p))

    def covers(self, path: str) -> bool:
        """A path is cited when it, an ancestor of it, or a descendant of it is cited."""
        return bool(path) and any(_related(path, cited) for cited in self.paths)

    def __bool__(self) -> bool:
        return bool(self.paths)


def _related(path: str, cited: str) -> bool:
    return path == cited or _is_under(path, cited) or _is_under(cited, path)


def _is_under(path: str, ancestor: str) -> bool:
    return path.startswith(ancestor) and path[len(ancestor):len(ancestor) + 1] in (".", "[")


# --- formatting ------------------------------------------------------------------------------------

ZERO_DECIMAL = frozenset({"BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "VND",
                          "VUV", "XAF", "XOF", "XPF"})
THREE_DECIMAL = frozenset({"BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"})
DASH = "—"


def decimal_of(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value is not None and value != "" else None
    except InvalidOperation:
        return None


def money(value: Any, currency: str | None) -> str:
    """``money("48250", "EUR") == "EUR 48,250.00"``, with the currency's minor units."""
    amount = decimal_of(value)
    if amount is None:
        return DASH if value in (None, "") else str(value)
    places = 0 if currency in ZERO_DECIMAL else 3 if currency in THREE_DECIMAL else 2
    text = f"{amount:,.{places}f}"
    return f"{currency} {text}" if currency else text


def percent(value: Any) -> str:
    return DASH if value is None else f"{float(value) * 100:.0f}%"


def score(value: Any) -> str:
    return DASH if value is None else f"{float(value):.2f}"


def yes_no(value: Any) -> str:
    return DASH if value is None else "Yes" if value else "No"


def text(value: Any) -> str:
    if value is None or value == "":
        return DASH
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or DASH
    return str(value)


ACRONYMS = frozenset({"ai", "aml", "bic", "id", "kyc", "pep", "sar", "sla", "ubo"})


def humanize(code: str | None) -> str:
    """``file_sar`` → "File SAR", ``case.info_requested`` → "Case · info requested"."""
    if not code:
        return DASH
    words = code.replace(".", " · ").replace("_", " ").split(" ")
    words = [w.upper() if w in ACRONYMS else w for w in words]
    text_ = " ".join(words)
    return text_[:1].upper() + text_[1:]


def when(value: datetime | None) -> str:
    return DASH if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def relative(moment: datetime | None, now: datetime | None = None) -> str:
    """``in 3 h 05 m`` / ``2 d 4 h ago``: coarse and readable."""
    if moment is None:
        return DASH
    seconds = int((moment - (now or utcnow())).total_seconds())
    if abs(seconds) < 60:
        return "just now"
    span = _span(abs(seconds))
    return f"in {span}" if seconds >= 0 else f"{span} ago"


def _span(seconds: int) -> str:
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if days:
        return f"{days} d {hours % 24} h"
    if hours:
        return f"{hours} h {minutes % 60:02d} m"
    return f"{minutes} m"


def raw_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def years_since(iso_day: str | None, today: date | None = None) -> str:
    try:
        start = date.fromisoformat(str(iso_day))
    except ValueError:
        return ""
    days = ((today or date.today()) - start).days
    return f"{days // 365} years" if days >= 365 else f"{max(days, 0) // 30} months"


def score_tone(value: Any, bad: float = 0.9, warn: float = 0.6) -> str:
    number = float(value) if value is not None else 0.0
    return "bad" if number >= bad else "warn" if number >= warn else ""


def _path(*parts: str | int) -> str:
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path


Formatter = Callable[[Any], str]


def _items(data: dict[str, Any], prefix: str, *spec: tuple[str, str, Formatter]) -> list[Item]:
    """An item per ``(key, label, formatter)`` present in ``data``, the object found at ``prefix``."""
    return [Item(label, fmt(data.get(key)), _path(prefix, key) if prefix else key)
            for key, label, fmt in spec if key in data]


def _table(title: str, prefix: str, entries: list[dict[str, Any]], columns: tuple[Column, ...],
           cells: Callable[[dict[str, Any]], tuple[str, ...]], *, empty: str,
           tone: Callable[[dict[str, Any]], str] = lambda _: "", wide: bool = True) -> Section:
    rows = tuple(Row(_path(prefix, i), cells(entry), tone(entry)) for i, entry in enumerate(entries))
    return Section(title, columns=columns, rows=rows, empty=empty, wide=wide)


def _sanctions_table(prefix: str, hits: list[dict[str, Any]], *, with_dob: bool = False) -> Section:
    columns = (Column("List"), Column("Matched name", wrap=True), *([Column("Date of birth")] if with_dob else []),
               Column("Score", numeric=True))

    def cells(hit: dict[str, Any]) -> tuple[str, ...]:
        dob = (text(hit.get("date_of_birth")),) if with_dob else ()
        return (text(hit.get("list")), text(hit.get("matched_name")), *dob, score(hit.get("score")))

    return _table("Sanctions screening", prefix, hits, columns, cells, empty="No sanctions hits.",
                  tone=lambda hit: score_tone(hit.get("score")), wide=False)


def _pep_table(prefix: str, hits: list[dict[str, Any]]) -> Section:
    columns = (Column("Matched name", wrap=True), Column("Position", wrap=True), Column("Score", numeric=True))
    return _table("PEP screening", prefix, hits, columns,
                  lambda hit: (text(hit.get("matched_name")), text(hit.get("position")), score(hit.get("score"))),
                  empty="No PEP hits.", tone=lambda hit: score_tone(hit.get("score"), 0.8, 0.5), wide=False)


# --- one presenter per case type ---------------------------------------------------------------------


def present_payment_release(data: dict[str, Any]) -> CaseView:
    cash = partial(money, currency=data.get("currency"))
    beneficiary, history, screening = data.get("beneficiary", {}), data.get("history"), data.get("screening")
    party = (("name", "Name", text), ("account", "Account", text), ("country", "Country", text))
    is_new = beneficiary.get("is_new")
    sections = [
        Section("Payment", (
            *_items(data, "", ("payment_id", "Payment ID", text), ("amount", "Amount", cash),
                    ("value_date", "Value date", text), ("channel", "Channel", str.upper)),
            Item("Purpose", text(data.get("purpose")), "purpose", long=True),
        )),
        Section("Originator", tuple(_items(data.get("originator", {}), "originator", *party,
                                           ("customer_id", "Customer ID", text)))),
        Section("Beneficiary", (
            *_items(beneficiary, "beneficiary", *party, ("bank_bic", "Bank BIC", text)),
            Item("New beneficiary", yes_no(is_new), "beneficiary.is_new", "warn" if is_new else ""),
        )),
    ]
    if history:
        sections.append(Section("Payment history", tuple(_items(
            history, "history", ("payments_last_30d", "Payments, last 30 days", text),
            ("amount_last_30d", "Amount, last 30 days", cash), ("average_amount", "Average payment", cash),
            ("known_beneficiary_names", "Known beneficiaries", text)))))
    if screening:
        sections.append(_sanctions_table("screening.sanctions_hits", screening.get("sanctions_hits", [])))
        sections.append(_pep_table("screening.pep_hits", screening.get("pep_hits", [])))
    summary = (
        Item("Amount", cash(data.get("amount")), "amount"),
        Item("Beneficiary", text(beneficiary.get("name")), "beneficiary.name"),
        Item("Channel", text(data.get("channel")).upper(), "channel"),
        Item("Value date", text(data.get("value_date")), "value_date"),
    )
    return CaseView(summary, tuple(sections))


def present_credit_limit_change(data: dict[str, Any]) -> CaseView:
    cash = partial(money, currency=data.get("currency"))
    customer = data.get("customer", {})
    utilization, missed = float(data.get("utilization") or 0), data.get("missed_payments_12m") or 0
    request = [*_items(data, "", ("account_id", "Account", text), ("current_limit", "Current limit", cash),
                       ("requested_limit", "Requested limit", cash)),
               Item("Change", _change(data.get("current_limit"), data.get("requested_limit"), data.get("currency")))]
    if data.get("reason"):
        request.append(Item("Reason given", text(data["reason"]), "reason", long=True))
    sections = (
        Section("Request", tuple(request)),
        Section("Customer", (
            *_items(customer, "customer", ("id", "Customer ID", text), ("name", "Name", text),
                    ("since", "Customer since", text)),
            Item("Tenure", years_since(customer.get("since")) or DASH, "customer.since"),
        )),
        Section("Affordability", (
            *_items(data, "", ("annual_income", "Annual income", cash),
                    ("monthly_debt_payments", "Monthly debt payments", cash)),
            Item("Debt-to-income", _debt_to_income(data)),
        )),
        Section("Credit history", (
            Item("Utilization", percent(utilization), "utilization", "warn" if utilization >= 0.8 else ""),
            Item("Missed payments, 12 months", text(missed), "missed_payments_12m", "bad" if missed else ""),
            Item("Credit score", text(data.get("credit_score")), "credit_score"),
        )),
    )
    summary = (
        Item("Requested limit", cash(data.get("requested_limit")), "requested_limit"),
        Item("Current limit", cash(data.get("current_limit")), "current_limit"),
        Item("Credit score", text(data.get("credit_score")), "credit_score"),
        Item("Utilization", percent(utilization), "utilization"),
    )
    return CaseView(summary, sections)


def _change(current_raw: Any, requested_raw: Any, currency: str | None) -> str:
    current, requested = decimal_of(current_raw), decimal_of(requested_raw)
    if current is None or requested is None:
        return DASH
    delta = requested - current
    ratio = f" ({delta / current:+.0%})" if current else ""
    return f"{'+' if delta >= 0 else '-'}{money(abs(delta), currency)}{ratio}"


def _debt_to_income(data: dict[str, Any]) -> str:
    income, debt = decimal_of(data.get("annual_income")), decimal_of(data.get("monthly_debt_payments"))
    if not income or debt is None:
        return DASH
    return f"{debt * 12 / income:.0%} of annual income"


def present_contract_review(data: dict[str, Any]) -> CaseView:
    cash = partial(money, currency=data.get("currency"))
    counterparty, policy = data.get("counterparty", {}), data.get("policy")
    allowed = (policy or {}).get("allowed_governing_law")
    law = Item("Governing law", text(data.get("governing_law")), "governing_law",
               "bad" if allowed and data.get("governing_law") not in allowed else "")
    sections = [Section("Contract", (
        *_items(data, "", ("contract_id", "Contract ID", text), ("title", "Title", text),
                ("contract_value", "Value", cash), ("term_months", "Term", _months)),
        law,
        *_items(counterparty, "counterparty", ("name", "Counterparty", text), ("country", "Country", text)),
    ))]
    if policy:
        sections.append(Section("Policy", tuple(_items(
            policy, "policy", ("allowed_governing_law", "Allowed governing law", text),
            ("max_liability_multiple", "Max liability", lambda v: f"{text(v)} x fees"),
            ("max_payment_terms_days", "Max payment terms", lambda v: f"{text(v)} days"),
            ("max_auto_renewal_months", "Max auto-renewal", _months)))))
    clauses = tuple(Block(text(c.get("id")), text(c.get("heading")), text(c.get("text")), _path("clauses", i))
                    for i, c in enumerate(data.get("clauses", [])))
    sections.append(Section("Clauses", blocks=clauses, empty="No clauses.", wide=True))
    summary = (
        Item("Contract value", cash(data.get("contract_value")), "contract_value"),
        Item("Counterparty", text(counterparty.get("name")), "counterparty.name"),
        Item("Term", _months(data.get("term_months")), "term_months"),
        law,
    )
    return CaseView(summary, tuple(sections))


def _months(value: Any) -> str:
    return f"{text(value)} months"


def present_aml_alert(data: dict[str, Any]) -> CaseView:
    customer, transactions = data.get("customer", {}), data.get("transactions", [])
    rating = customer.get("risk_rating") or ""
    rating_tone = {"high": "bad", "medium": "warn"}.get(rating, "")
    transaction_columns = (Column("ID"), Column("Date"), Column("Direction"), Column("Amount", numeric=True),
                           Column("Counterparty", wrap=True), Column("Country"), Column("Channel"))
    sections = (
        Section("Customer", (
            *_items(customer, "customer", ("id", "Customer ID", text), ("name", "Name", text)),
            Item("Risk rating", rating.capitalize() or DASH, "customer.risk_rating", rating_tone),
            *_items(customer, "customer", ("country", "Country", text), ("occupation", "Occupation", text)),
        )),
        Section("Alert", tuple(_items(data, "", ("alert_id", "Alert ID", text),
                                      ("prior_alerts_12m", "Prior alerts, 12 months", text)))),
        _table("Rule hits", "rule_hits", data.get("rule_hits", []),
               (Column("Rule"), Column("Description", wrap=True), Column("Score", numeric=True)),
               lambda h: (text(h.get("rule_id")), text(h.get("description")), score(h.get("score"))),
               empty="No rule hits.", tone=lambda h: score_tone(h.get("score"), 0.8, 0.5)),
        _table("Transactions", "transactions", transactions, transaction_columns, _transaction_cells,
               empty="No transactions."),
    )
    summary = (
        Item("Customer", text(customer.get("name")), "customer.name"),
        Item("Risk rating", rating.capitalize() or DASH, "customer.risk_rating", rating_tone),
        Item("Transactions", _flows(transactions), "transactions"),
        Item("Prior alerts, 12 months", text(data.get("prior_alerts_12m")), "prior_alerts_12m"),
    )
    return CaseView(summary, sections)


def _transaction_cells(t: dict[str, Any]) -> tuple[str, ...]:
    return (text(t.get("id")), text(t.get("date")), "In" if t.get("direction") == "in" else "Out",
            money(t.get("amount"), t.get("currency")), text(t.get("counterparty")),
            text(t.get("counterparty_country")), text(t.get("channel")))


def _flows(transactions: list[dict[str, Any]]) -> str:
    incoming = sum(1 for t in transactions if t.get("direction") == "in")
    return f"{len(transactions)} ({incoming} in, {len(transactions) - incoming} out)"


def present_kyc_review(data: dict[str, Any]) -> CaseView:
    applicant, documents = data.get("applicant", {}), data.get("documents", [])
    screening = data.get("screening", {})
    address = applicant.get("address", {})
    media = screening.get("adverse_media_hits", 0)
    hits = len(screening.get("sanctions_hits", [])) + len(screening.get("pep_hits", []))
    document_columns = (Column("Type"), Column("Number"), Column("Issued by"), Column("Expires"),
                        Column("Name on document", wrap=True), Column("Date of birth on document"))
    sections = (
        Section("Applicant", (
            *_items(applicant, "applicant", ("type", "Type", str.capitalize), ("name", "Name", text),
                    ("date_of_birth", "Date of birth", text), ("nationality", "Nationality", text)),
            Item("Address", ", ".join(text(address.get(k)) for k in ("line1", "city", "postcode", "country")),
                 "applicant.address"),
        )),
        Section("Required documents", _required_documents(data), empty="No documents required."),
        _table("Documents", "documents", documents, document_columns, _document_cells,
               empty="No documents provided."),
        _sanctions_table("screening.sanctions_hits", screening.get("sanctions_hits", []), with_dob=True),
        _pep_table("screening.pep_hits", screening.get("pep_hits", [])),
        Section("Adverse media", (Item("Adverse media hits", text(media), "screening.adverse_media_hits",
                                       "warn" if media else ""),)),
    )
    summary = (
        Item("Applicant", text(applicant.get("name")), "applicant.name"),
        Item("Type", text(applicant.get("type")).capitalize(), "applicant.type"),
        Item("Documents", str(len(documents)), "documents"),
        Item("Screening hits", str(hits), "screening", "warn" if hits else ""),
    )
    return CaseView(summary, sections)


def _document_cells(d: dict[str, Any]) -> tuple[str, ...]:
    return (humanize(d.get("type")), text(d.get("number")), text(d.get("issuing_country")),
            text(d.get("expires_on")), text(d.get("name_on_document")), text(d.get("date_of_birth_on_document")))


def _required_documents(data: dict[str, Any]) -> tuple[Item, ...]:
    """Each required document, and whether the application carries it."""
    provided = {d.get("type") for d in data.get("documents", [])}
    items = []
    for name in required_documents(KycReview.model_validate(data)):
        wanted = set(IDENTITY_DOCUMENT_TYPES) if name == IDENTITY_DOCUMENT else {name}
        present = bool(provided & wanted)
        items.append(Item(humanize(name), "Provided" if present else "Missing", "required_documents",
                          "good" if present else "bad"))
    return tuple(items)


def present_generic(data: dict[str, Any]) -> CaseView:
    """Fallback for a case type without a presenter: the top-level fields as text."""
    items = tuple(Item(humanize(key), "(see the raw JSON)" if isinstance(value, dict | list) else text(value), key)
                  for key, value in data.items())
    return CaseView((), (Section("Data", items),))


PRESENTERS: dict[str, Callable[[dict[str, Any]], CaseView]] = {
    "payment_release": present_payment_release,
    "credit_limit_change": present_credit_limit_change,
    "contract_review": present_contract_review,
    "aml_alert": present_aml_alert,
    "kyc_review": present_kyc_review,
}


def present_case(case: Case) -> CaseView:
    return PRESENTERS.get(case.case_type, present_generic)(case.payload)


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
    "prompt_injection": ("Possible prompt injection",
                         "The case text contains instructions aimed at the AI. Read the flagged fields yourself "
                         "and do not rely on the recommendation."),
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
    signals = tuple(Flag(code, humanize(code)) for code in rec.flags if code not in FLAG_EXPLANATIONS)
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
    )


def _warning(code: str, details: dict[str, Any]) -> Flag:
    label, explanation = FLAG_EXPLANATIONS[code]
    lines: tuple[str, ...] = ()
    if code == "prompt_injection":
        lines = tuple(f"{f.get('path')}: “{f.get('excerpt')}”" for f in details.get("injection", []))
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
    tone = "bad" if code in ("prompt_injection", "unverified_citation") else "warn"
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
        Item("Prompt template", rec.template_version),
        Item("Cost", f"USD {Decimal(rec.cost_usd):.4f}"),
        Item("Latency", f"{rec.latency_ms:,} ms"),
        Item("Tokens in / out", f"{rec.tokens_in:,} / {rec.tokens_out:,}"),
        Item("Cache hit", yes_no(rec.cache_hit)),
        Item("Generated", when(rec.created_at)),
    )


# --- the timeline ----------------------------------------------------------------------------------------

SHOWN_DATA = ("kind", "action", "parameters", "diff", "reason_code", "queue", "from_queue", "to_queue", "assignee",
              "error", "provider", "model", "confidence", "flags")


@dataclass(frozen=True)
class TimelineEntry:
    seq: int
    time: datetime
    actor: str
    action: str
    label: str
    from_status: str | None
    to_status: str | None
    reason: str | None
    details: tuple[Item, ...]


AI_VIEW = frozenset({"action", "parameters", "confidence", "flags", "diff"})  # what a blind reviewer may not see


def timeline(session: Session, case_id: int, *, hide_ai: bool = False) -> list[TimelineEntry]:
    """The case's audit events, newest first, with actors named; ``hide_ai`` leaves out what
    would reveal the AI's recommendation (blind review)."""
    events = session.scalars(
        select(AuditEvent).where(AuditEvent.case_id == case_id).order_by(AuditEvent.seq.desc())
    ).all()
    names = _actor_names(session, [e.actor for e in events])
    return [_entry(event, names, hide_ai) for event in events]


def _entry(event: AuditEvent, names: dict[str, str], hide_ai: bool) -> TimelineEntry:
    data = event.data if isinstance(event.data, dict) else {}
    if hide_ai:
        data = {key: value for key, value in data.items() if key not in AI_VIEW}
    details = tuple(Item(humanize(key), _shown(key, data[key])) for key in SHOWN_DATA
                    if key in data and data[key] not in (None, "", [], {}))
    return TimelineEntry(
        seq=event.seq, time=event.time, actor=names.get(event.actor, event.actor), action=event.action,
        label=humanize(event.action.removeprefix("case.")), from_status=data.get("from"), to_status=data.get("to"),
        reason=data.get("reason"), details=details,
    )


CODE_VALUES = frozenset({"kind", "action", "reason_code"})  # machine codes, shown humanized


def _shown(key: str, value: Any) -> str:
    if key in CODE_VALUES and isinstance(value, str):
        return humanize(value)
    if key == "diff" and isinstance(value, dict):
        action = value.get("action")
        readable = {**value, "action": [humanize(a) for a in action]} if isinstance(action, list) else value
        return _detail(readable, changes=True)
    return _detail(value)


def _detail(value: Any, *, changes: bool = False) -> str:
    """A compact rendering of an audit value; in a diff (``changes``) each [old, new] reads "old → new"."""
    if isinstance(value, dict):
        return "; ".join(f"{humanize(k).lower()}: {_detail(v, changes=changes)}" for k, v in value.items()) or DASH
    if changes and isinstance(value, list) and len(value) == 2:
        return f"{_detail(value[0])} → {_detail(value[1])}"
    if isinstance(value, list):
        return ", ".join(_detail(v) for v in value) or DASH
    if isinstance(value, float):
        return f"{value:.2f}"
    return text(value)


def _actor_names(session: Session, actors: list[str]) -> dict[str, str]:
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


def latest_event(session: Session, case_id: int, action: str) -> AuditEvent | None:
    return session.scalars(
        select(AuditEvent).where(AuditEvent.case_id == case_id, AuditEvent.action == action)
        .order_by(AuditEvent.seq.desc()).limit(1)
    ).first()


def failure_reason(session: Session, case_id: int) -> str:
    event = latest_event(session, case_id, "case.analysis_failed")
    if event is None:
        return "The AI analysis failed; no reason was recorded."
    return str((event.data or {}).get("error") or "The AI analysis failed; no reason was recorded.")
