"""The local analyzer of contract_review: deterministic, no network; what it concludes from the data."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from app.cases.types.base import Analysis, NoParams, Reason
from app.cases.types.signals import (
    Signal,
    conclude,
    country_signal,
    describe,
    doubts,
    loc,
    margin_confidence,
    risk_score,
)
from app.cases.types.text import affirmed, affirms, denies, sentences, without_negated

from .schema import ContractReview, Redline, RequestChanges

# The review takes the supplier's side of the usual positions and proposes mutual wording.
# Liability caps are measured in multiples of the annual fees (contract_value spread over the term,
# a term under a year counting as one year). Without a policy: any governing law, a cap of 1x the
# annual fees, payment within 60 days, and auto-renewal of any length provided it has a notice window.

DEFAULT_LIABILITY_MULTIPLE = 1.0
DEFAULT_PAYMENT_DAYS = 60
MAX_TERMINATION_NOTICE_DAYS = 90
MIDDLE_BAND = (0.25, 0.6)  # the risk of a contract whose findings are all within policy, yet not clean
NEAR_THE_LINE = 0.25  # a departure less than this far past its policy line (25 %) is a judgement call
DAYS = {"day": 1, "month": 30, "year": 360}
WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "fourteen": 14, "fifteen": 15, "eighteen": 18, "twenty": 20,
    "twenty-four": 24, "thirty": 30, "thirty-six": 36, "forty-five": 45, "sixty": 60, "ninety": 90,
    "one hundred and twenty": 120, "one hundred and eighty": 180,
}
# A number in words and/or digits ("ninety (90)", "90", "ninety"), then an optional unit.
_NUMBER = r"\b(\d+(?:\.\d+)?|" + "|".join(sorted(WORDS, key=len, reverse=True)) + r")(?:\s*\((\d+(?:\.\d+)?)\))?"
_DURATION = _NUMBER + r"[\s-]*(day|month|year)s?\b"


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


DURATION = _re(_DURATION)
NOTICE = (
    _re(_DURATION + r"['\u2019]?\s*(?:(?:prior|advance|written)\s+)*notice"),
    _re(r"notice\s+(?:period\s+)?of\s+(?:at\s+least\s+|not\s+less\s+than\s+)?" + _DURATION),
)
# A payment clause: by its heading, or by a body that ties a period to paying.
PAYMENT_HEADING = _re(r"pay|invoic|fees|charges")
PAYMENT_BODY = _re(r"shall\s+pay|(?:payable|paid)\s+(?:within|net)|payment\s+terms|\bnet\s*\d")
PAYMENT_DAYS = (
    _re(r"\bnet\s*" + _NUMBER + "()"),
    _re(r"\bwithin\s+" + _DURATION),
    _re(_DURATION + r"\s+(?:of|from|after|following)\s+(?:the\s+)?(?:receipt|date|invoice|delivery)"),
)
IS_CAP = _re(r"shall\s+not\s+exceed|limited\s+to|capped\s+at|not\s+(?:be\s+)?(?:more|greater)\s+than")
CAP_TIMES = _re(_NUMBER + r"\s*(?:times|x)\s+(?:the\s+)?(total\s+|annual\s+)?")
CAP_PERCENT = _re(r"(\d+(?:\.\d+)?)\s*(?:%|per\s*cent)\s+of\s+the\s+(total\s+|annual\s+)?")
CAP_PERIOD = _re(r"(?:fees|charges|amounts)\s+(?:paid|payable)[^.]*?" + _DURATION)
CAP_TOTAL = _re(r"(?:fees|charges)\s+(?:paid\s+or\s+)?payable\s+under\s+this\s+agreement|contract\s+value")
# "shall not be limited" and "is not limited to X" are themselves unlimited; "including but not limited to"
# only lists examples.
UNLIMITED = _re(
    r"\bunlimited\b|\buncapped\b|without\s+(?:any\s+)?(?:limit|cap)"
    r"|(?:shall|will|is|are)\s+not\s+(?:be\s+)?(?:limited|capped)(?!\s+to\b)"
    r"|(?<!but\s)\bnot\s+(?:be\s+)?limited\s+to\b"
)
CARVE_OUT = _re(r"death|personal\s+injury|fraud|wil+ful|gross\s+negligence|cannot\s+be\s+(?:limited|excluded)")
INDEMNITY = _re(r"indemn|hold\s+harmless")
UNCAPPED_INDEMNITY = _re(
    r"\bunlimited\b|\buncapped\b|without\s+(?:any\s+)?limit|not\s+(?:be\s+)?subject\s+to\s+(?:any|the)\s+(?:limit|cap)"
    r"|notwithstanding\s+(?:(?:clause|section)\s+\d|any\s+limitation)|(?:excluded|exempt)\s+from\s+(?:the\s+)?(?:cap|limit)"
)
BROAD_INDEMNITY = _re(r"any\s+and\s+all|howsoever\s+arising|whether\s+or\s+not|regardless\s+of|all\s+losses")
AUTO_RENEWAL = _re(r"renew\w*\s+automatically|automatic\w*\s+renew|auto-?renew|tacit\w*\s+renew|evergreen")
TERMINATION = _re(r"terminat")
TERMINATION_RIGHT = _re(r"(?:may|right\s+to|entitled\s+to)\s+terminate|terminate\s+this\s+agreement")
NO_CONVENIENCE = _re(
    r"may\s+not\s+terminate|shall\s+not\s+(?:be\s+entitled\s+to\s+|have\s+the\s+right\s+to\s+)?terminate"
    r"|no\s+right\s+to\s+terminate|non-?cancell?able|irrevocable"
)
CONVENIENCE = _re(r"convenience|without\s+cause|for\s+any\s+reason|at\s+any\s+time")
FOR_CAUSE = _re(r"breach|insolven|bankrupt|default|fails?\s+to|change\s+of\s+control")
GOVERNING = _re(r"governing\s+law|applicable\s+law|governed\s+by|construed\s+in\s+accordance")
LAW_ALIASES = {"english": "england and wales", "irish": "ireland", "scots": "scotland", "scottish": "scotland"}
LAW_FILLER = frozenset({"the", "law", "laws", "of", "state", "commonwealth"})

LIABILITY_TEXT = (
    "The aggregate liability of either party arising out of or in connection with this Agreement shall not"
    " exceed {cap}the fees paid or payable in the twelve (12) months preceding the claim."
)
INDEMNITY_TEXT = (
    "Each party shall indemnify the other against losses arising from third-party claims to the extent caused"
    " by its breach of this Agreement or its negligence, subject to the limitation of liability in this Agreement."
)
TERMINATION_TEXT = (
    "Either party may terminate this Agreement for convenience on ninety (90) days' written notice, in addition"
    " to its rights to terminate for material breach or insolvency."
)
NO_RENEWAL_TEXT = (
    "This Agreement shall not renew automatically; any renewal requires the written agreement of both parties."
)
RENEWAL_TEXT = (
    "On expiry, this Agreement shall renew for successive periods of {months} months unless either party gives"
    " written notice of non-renewal at least thirty (30) days before the end of the then-current term."
)
PAYMENT_TEXT = "The Customer shall pay each undisputed invoice within {days} days of receipt."
GOVERNING_LAW_TEXT = (
    "This Agreement and any dispute or claim arising out of or in connection with it shall be governed by the"
    " laws of {law}."
)


@dataclass(frozen=True)
class Rules:
    """The policy the contract is held to; `cite` gives the policy path of a rule (none when defaulted)."""

    allowed_laws: list[str]  # empty: any
    liability_multiple: float
    payment_days: int
    renewal_months: int | None  # None: any length
    from_policy: bool

    def cite(self, field: str) -> tuple[str, ...]:
        return (f"policy.{field}",) if self.from_policy else ()


def rules_of(data: ContractReview) -> Rules:
    policy = data.policy
    if policy is None:
        return Rules([], DEFAULT_LIABILITY_MULTIPLE, DEFAULT_PAYMENT_DAYS, None, from_policy=False)
    return Rules(
        list(policy.allowed_governing_law),
        policy.max_liability_multiple,
        policy.max_payment_terms_days,
        policy.max_auto_renewal_months,
        from_policy=True,
    )


@dataclass(frozen=True)
class Finding:
    """A problem in one clause, the replacement proposed, how far past the policy line it is (1: plainly)."""

    clause_id: str
    issue: str
    proposed_text: str
    signal: Signal
    excess: float = 1.0


@dataclass(frozen=True)
class ClauseText:
    """One clause as the detectors read it."""

    id: str
    heading: str
    body: str
    path: str
    label: str  # how the evidence names it: "clause 9.1"

    def finding(self, flag: str, weight: float, issue: str, proposed: str, *paths: str, excess: float = 1.0) -> Finding:
        """A Finding on this clause, its signal citing the clause text and `paths`."""
        signal = Signal(flag, weight, f"{self.label}: {issue}", (self.path, *paths))
        return Finding(self.id, issue, proposed, signal, excess)


def _value(match: re.Match[str]) -> float:
    """The number of a _NUMBER match: the digits in brackets win over the words."""
    text = match.group(2) or match.group(1)
    return float(WORDS.get(text.lower()) or text)


def _days(match: re.Match[str]) -> int:
    """A _DURATION match in days (a month is 30 days, a year 360); no unit means days."""
    return round(_value(match) * DAYS[(match.group(3) or "day").lower()])


def _spoken(number: int) -> str:
    """ "sixty (60)" when the number has a word, else its digits."""
    word = next((word for word, value in WORDS.items() if value == number), None)
    return f"{word} ({number})" if word else str(number)


def _notices(text: str) -> list[re.Match[str]]:
    return [match for pattern in NOTICE for match in pattern.finditer(text)]


def _cap_multiple(sentence: str, data: ContractReview) -> float | None:
    """The cap a sentence sets, in multiples of the annual fees; None when it sets none we can read."""
    years = max(data.term_months, 12) / 12
    annual = data.contract_value / Decimal(str(years))
    if match := CAP_TIMES.search(sentence):
        return _value(match) * (years if (match.group(3) or "").strip().lower() == "total" else 1)
    if match := CAP_PERCENT.search(sentence):
        return float(match.group(1)) / 100 * (years if (match.group(2) or "").strip().lower() == "total" else 1)
    if match := CAP_PERIOD.search(sentence):
        return _days(match) / 360
    amount = re.search(rf"(?:[£€$]|\b{data.currency}\b)\s?(\d[\d,]*(?:\.\d+)?)", sentence)
    if amount and annual:
        return float(Decimal(amount.group(1).replace(",", "")) / annual)
    return years if CAP_TOTAL.search(sentence) else None


def _liability(clause: ClauseText, data: ContractReview, rules: Rules) -> list[Finding]:
    if "liabil" not in f"{clause.heading} {clause.body}".lower():
        return []
    cap = "" if rules.liability_multiple == 1 else f"{rules.liability_multiple:g} times "
    proposed = LIABILITY_TEXT.format(cap=cap)
    for sentence in sentences(clause.body):
        # Unlimited for death, injury or fraud is the usual carve-out, however it is worded: a negation before
        # those nouns ("nothing limits liability for death") is about the verb, so any mention of them counts.
        if affirms(UNLIMITED, sentence) and not CARVE_OUT.search(sentence):
            return [clause.finding("unlimited_liability", 0.6, "liability is unlimited", proposed)]
        multiple = _cap_multiple(sentence, data) if affirms(IS_CAP, sentence) else None
        if multiple is not None and multiple > rules.liability_multiple:
            issue = f"liability cap of {multiple:.2f}x the annual fees exceeds the {rules.liability_multiple:g}x"
            issue += " maximum"
            paths = ("contract_value", "term_months", *rules.cite("max_liability_multiple"))
            excess = multiple / rules.liability_multiple - 1
            return [clause.finding("liability_cap_above_policy", 0.35, issue, proposed, *paths, excess=excess)]
    return []


def _indemnity(clause: ClauseText, data: ContractReview, rules: Rules) -> list[Finding]:
    if not affirms(INDEMNITY, clause.body):
        return []
    if affirms(UNCAPPED_INDEMNITY, clause.body):
        return [clause.finding("uncapped_indemnity", 0.5, "the indemnity is not capped", INDEMNITY_TEXT)]
    if affirms(BROAD_INDEMNITY, clause.body):
        return [clause.finding("broad_indemnity", 0.3, "the indemnity covers any and all losses", INDEMNITY_TEXT)]
    return []


def _auto_renewal(clause: ClauseText, data: ContractReview, rules: Rules) -> list[Finding]:
    if not affirms(AUTO_RENEWAL, clause.body):
        return []
    notices = _notices(clause.body)
    periods = [
        _days(match) // 30
        for match in DURATION.finditer(clause.body)
        if not any(notice.start() <= match.start() < notice.end() for notice in notices)
    ]
    period, limit = (periods[0] if periods else None), rules.renewal_months
    months = min(period or 12, limit) if limit else period or 12
    proposed = NO_RENEWAL_TEXT if limit == 0 else RENEWAL_TEXT.format(months=_spoken(months))
    findings = []
    if limit == 0 or (limit is not None and period is not None and period > limit):
        issue = (
            "the policy allows no auto-renewal"
            if limit == 0
            else f"auto-renewal for {period} months exceeds the {limit}-month maximum"
        )
        excess = (period - limit) / limit if period and limit else 1.0
        paths = rules.cite("max_auto_renewal_months")
        findings.append(clause.finding("auto_renewal_too_long", 0.25, issue, proposed, *paths, excess=excess))
    if not notices and "notice" not in clause.body.lower():
        issue = "auto-renewal has no notice window"
        findings.append(clause.finding("auto_renewal_without_notice", 0.3, issue, proposed))
    return findings


def _has_convenience_exit(text: str) -> bool:
    """A right to terminate without cause: said so, or a right to terminate on notice that names no cause."""
    return any(
        affirms(CONVENIENCE, sentence)
        or (affirms(TERMINATION_RIGHT, sentence) and _notices(sentence) and not affirms(FOR_CAUSE, sentence)
            and not denies(CONVENIENCE, sentence))
        for sentence in sentences(text)
    )


def _termination(clause: ClauseText, data: ContractReview, rules: Rules) -> list[Finding]:
    is_termination = TERMINATION.search(clause.heading) or TERMINATION_RIGHT.search(clause.body)
    if not is_termination or affirms(AUTO_RENEWAL, clause.body):
        return []
    findings = []
    notice = max((_days(match) for match in _notices(clause.body)), default=0)
    if notice > MAX_TERMINATION_NOTICE_DAYS:
        issue = f"termination notice of {notice} days exceeds {MAX_TERMINATION_NOTICE_DAYS} days"
        excess = notice / MAX_TERMINATION_NOTICE_DAYS - 1
        findings.append(clause.finding("long_termination_notice", 0.2, issue, TERMINATION_TEXT, excess=excess))
    locked_in = data.term_months > 12 and not _has_convenience_exit(clause.body)
    ruled_out = affirms(NO_CONVENIENCE, clause.body) or denies(CONVENIENCE, clause.body)
    if ruled_out or locked_in:
        issue = f"no termination for convenience over a {data.term_months}-month term"
        flag = "no_termination_for_convenience"
        findings.append(clause.finding(flag, 0.2, issue, TERMINATION_TEXT, "term_months"))
    return findings


def _payment_terms(clause: ClauseText, data: ContractReview, rules: Rules) -> list[Finding]:
    if not (PAYMENT_HEADING.search(clause.heading) or PAYMENT_BODY.search(clause.body)):
        return []
    # A longer period in an exception ("unless paid by cheque, within 120 days") is still a period to pay in.
    periods = [affirmed(pattern, clause.body, with_exceptions=True) for pattern in PAYMENT_DAYS]
    days = max((_days(match) for found in periods for match in found), default=0)
    if days <= rules.payment_days:
        return []
    issue = f"payment terms of {days} days exceed the {rules.payment_days}-day maximum"
    proposed = PAYMENT_TEXT.format(days=_spoken(rules.payment_days))
    excess = days / rules.payment_days - 1 if rules.payment_days else 1.0
    paths = rules.cite("max_payment_terms_days")
    return [clause.finding("payment_terms_too_long", 0.2, issue, proposed, *paths, excess=excess)]


def _law_key(text: str) -> str:
    """Law names compared word by word: "the laws of England & Wales" -> " england and wales "."""
    words = re.sub(r"[^a-z]+", " ", text.lower().replace("&", " and ")).split()
    return f" {' '.join(LAW_ALIASES.get(word, word) for word in words if word not in LAW_FILLER)} "


def _governing_law(clauses: list[ClauseText], data: ContractReview, rules: Rules) -> list[Finding]:
    """The governing law (top-level field and governing-law clauses) must be one the policy allows."""
    if not rules.allowed_laws:
        return []
    allowed = [_law_key(law) for law in rules.allowed_laws]
    proposed = GOVERNING_LAW_TEXT.format(law=rules.allowed_laws[0])
    paths = ("governing_law", *rules.cite("allowed_governing_law"))
    governing = [c for c in clauses if GOVERNING.search(f"{c.heading} {c.body}")]
    listed = ", ".join(rules.allowed_laws)
    findings = [
        clause.finding("governing_law_not_allowed", 0.3, f"it names none of the allowed laws ({listed})", proposed,
                       *paths)
        for clause in governing
        if not any(law in _law_key(without_negated(GOVERNING, clause.body)) for law in allowed)
    ]
    if _law_key(data.governing_law) not in allowed and not findings:
        issue = f"governing law {data.governing_law} is not allowed ({listed})"
        # Without a governing-law clause the redline adds one, against the contract's governing_law field.
        where = governing[0] if governing else ClauseText("governing_law", "", "", "governing_law", "contract")
        findings.append(where.finding("governing_law_not_allowed", 0.3, issue, proposed, *paths))
    return findings


DETECTORS = (_liability, _indemnity, _auto_renewal, _termination, _payment_terms)


def _sentence(text: str) -> str:
    return f"{text[:1].upper()}{text[1:]}."


def _redlines(findings: list[Finding]) -> list[Redline]:
    """One redline per clause: its issues together, its proposed texts together."""
    by_clause: dict[str, list[Finding]] = {}
    for finding in findings:
        by_clause.setdefault(finding.clause_id, []).append(finding)
    return [
        Redline(
            clause_id=clause_id,
            issue=_sentence("; ".join(dict.fromkeys(f.issue for f in group))),
            proposed_text=" ".join(dict.fromkeys(f.proposed_text for f in group)),
        )
        for clause_id, group in by_clause.items()
    ]


def analyze(data: ContractReview) -> Analysis:
    """Reject deal-breakers, redline clauses outside policy, approve a clean contract."""
    rules = rules_of(data)
    clauses = [
        ClauseText(c.id, c.heading, c.text, loc("clauses", i, "text"), f"clause {c.id}")
        for i, c in enumerate(data.clauses)
    ]
    findings = [finding for clause in clauses for detect in DETECTORS for finding in detect(clause, data, rules)]
    findings += _governing_law(clauses, data, rules)
    country = country_signal(data.counterparty.country, "counterparty", ["counterparty.country"])
    signals = [*filter(None, [country]), *(finding.signal for finding in findings)]
    flags = {signal.flag for signal in signals}
    paths = ["counterparty.country", "governing_law"]
    if "sanctioned_country" in flags or {"unlimited_liability", "uncapped_indemnity"} <= flags:
        blocking = [s for s in signals if s.flag in ("sanctioned_country", "unlimited_liability", "uncapped_indemnity")]
        reason = f"Do not sign: {describe(blocking)}."
        summary = "Reject: the contract has a deal-breaker."
        return conclude("reject", Reason(reason=reason), summary, signals, confidence=0.9, paths=paths)
    if findings:
        summary = f"Request changes to {len({f.clause_id for f in findings})} clause(s) outside policy."
        furthest = max(f.excess for f in findings)
        confidence = min(0.9, margin_confidence(furthest, 0, 0.5))
        changes = RequestChanges(redlines=_redlines(findings))
        uncertain = (
            [f"every departure is within {NEAR_THE_LINE:.0%} of its policy line (at most {furthest:.0%} past it)"]
            if furthest < NEAR_THE_LINE else []
        )
        return conclude("request_changes", changes, summary, signals, confidence=confidence, paths=paths,
                        uncertain=uncertain)
    summary = f"Approve: none of the {len(clauses)} clause(s) departs from policy."
    confidence = min(0.85, margin_confidence(risk_score(signals), 0.5, 0.5))
    paths += ["clauses", *(["policy"] if data.policy else [])]
    # Held only to the defaults, a clean reading says less: the customer's own limits may be stricter.
    missing = [] if data.policy else ["no contract policy given, so the clauses were held to the defaults"]
    uncertain = doubts(risk_score(signals), MIDDLE_BAND, signals, missing)
    return conclude("approve", NoParams(), summary, signals, confidence=confidence, paths=paths, uncertain=uncertain)
