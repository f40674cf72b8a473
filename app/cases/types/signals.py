"""Building blocks shared by the local analyzers: name matching, country and currency risk, scoring.

Every analyzer gathers `Signal`s (a flag, a weight, a sentence with the numbers, the payload paths read),
decides on an action, and hands both to `conclude`, which assembles the `Analysis`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from difflib import SequenceMatcher

from pydantic import BaseModel

from .base import Analysis

# --- names -----------------------------------------------------------------------------------

# Legal-form tokens, dropped from the end of a name (after dots are removed: "S.A." -> "sa").
LEGAL_SUFFIXES = frozenset(
    (
        *("ab", "ag", "aps", "as", "asa", "bv", "co", "company", "corp", "corporation", "cv", "fze", "fzco"),
        *("fzllc", "gmbh", "inc", "incorporated", "kft", "kg", "lp", "llc", "llp", "ltd", "limited", "nv"),
        *("oy", "oyj", "oo", "plc", "pte", "pty", "sa", "sarl", "sas", "se", "sp", "spa", "sro", "srl"),
        *("uab", "z"),  # "sp z oo" is the Polish "Sp. z o.o."
    )
)
NAME_MATCH = 0.9  # similarity at or above which two names are taken for the same party
NAME_LOOKALIKE = 0.75  # similar enough to be a deliberate look-alike, not enough to be the same


def normalize_name(name: str) -> str:
    """Lower case, accents and punctuation removed, "&" as "and", legal-form suffixes dropped."""
    decomposed = unicodedata.normalize("NFKD", name.replace("ß", "ss").replace("\u2019", "'"))
    ascii_name = decomposed.encode("ascii", "ignore").decode()
    joined = re.sub(r"[.']", "", ascii_name.lower().replace("&", " and "))
    tokens = re.sub(r"[^a-z0-9]+", " ", joined).split()
    while len(tokens) > 1 and tokens[-1] in LEGAL_SUFFIXES:
        tokens.pop()
    return " ".join(tokens)


def _ratio(a: str, b: str) -> float:
    return SequenceMatcher(None, a, b).ratio()


def token_set_ratio(a: str, b: str) -> float:
    """Token-set ratio, order ignored: the shared words are also compared with each side's full word set,
    but only when they are at least half of the longer name (so one shared "Freight" is no match)."""
    words_a, words_b = set(a.split()), set(b.split())
    shared = words_a & words_b
    common = " ".join(sorted(shared))
    with_a = f"{common} {' '.join(sorted(words_a - words_b))}".strip()
    with_b = f"{common} {' '.join(sorted(words_b - words_a))}".strip()
    pairs = [(with_a, with_b)]
    if 2 * len(shared) >= max(len(words_a), len(words_b)):
        pairs += [(common, with_a), (common, with_b)]
    return max(_ratio(x, y) for x, y in pairs)


def name_similarity(a: str, b: str) -> float:
    """0..1: the better of the plain and the token-set ratio of the normalised names."""
    left, right = normalize_name(a), normalize_name(b)
    if not left or not right:
        return 0.0
    return round(max(_ratio(left, right), token_set_ratio(left, right)), 3)


def best_match(name: str, candidates: Sequence[str]) -> tuple[int, float] | None:
    """Index and similarity of the candidate most like `name` (first wins a tie), None if there are none."""
    scored = [(name_similarity(name, candidate), -index) for index, candidate in enumerate(candidates)]
    if not scored:
        return None
    score, index = max(scored)
    return -index, score


# --- countries -------------------------------------------------------------------------------

# Comprehensive or broad sanctions programmes (UN, EU, UK, US OFAC), reviewed 2025: payments to
# them are refused, contracts with parties there are not signed.
SANCTIONED_COUNTRIES = {
    "AF": "Afghanistan: UN 1988 sanctions on the Taliban authorities",
    "BY": "Belarus: broad EU, UK and US financial sanctions",
    "CU": "Cuba: US embargo",
    "IR": "Iran: UN, EU, UK and US sanctions, FATF call for action",
    "KP": "North Korea: UN, EU, UK and US sanctions, FATF call for action",
    "MM": "Myanmar: sanctions on the military regime and state banks, FATF call for action",
    "RU": "Russia: broad EU, UK and US financial sanctions",
    "SY": "Syria: EU, UK and US programmes, being eased since 2025 but still screened",
}
# FATF "jurisdictions under increased monitoring" (grey list), 2025 snapshot: refresh after every
# FATF plenary (February, June, October). Syria, also listed there, is in SANCTIONED_COUNTRIES.
HIGH_RISK_COUNTRIES = {
    "AO": "Angola",
    "BG": "Bulgaria",
    "BO": "Bolivia",
    "CD": "DR Congo",
    "CI": "Côte d'Ivoire",
    "CM": "Cameroon",
    "DZ": "Algeria",
    "HT": "Haiti",
    "KE": "Kenya",
    "LA": "Laos",
    "LB": "Lebanon",
    "MC": "Monaco",
    "NA": "Namibia",
    "NP": "Nepal",
    "SS": "South Sudan",
    "VE": "Venezuela",
    "VG": "British Virgin Islands",
    "VN": "Vietnam",
    "YE": "Yemen",
}
SANCTIONED_COUNTRY_WEIGHT = 0.7
HIGH_RISK_COUNTRY_WEIGHT = 0.3


# --- currencies ------------------------------------------------------------------------------

# Approximate value of one unit in EUR (2025 averages): only to size amounts and compare them
# across currencies, never to book anything.
EUR_RATES = {
    "EUR": Decimal("1"),
    "USD": Decimal("0.88"),
    "GBP": Decimal("1.16"),
    "CHF": Decimal("1.07"),
    "JPY": Decimal("0.0059"),
    "CAD": Decimal("0.63"),
    "AUD": Decimal("0.57"),
    "NZD": Decimal("0.52"),
    "SEK": Decimal("0.091"),
    "NOK": Decimal("0.086"),
    "DKK": Decimal("0.134"),
    "PLN": Decimal("0.235"),
    "CZK": Decimal("0.040"),
    "HUF": Decimal("0.0025"),
    "RON": Decimal("0.197"),
    "CNY": Decimal("0.122"),
    "HKD": Decimal("0.113"),
    "SGD": Decimal("0.67"),
    "INR": Decimal("0.0102"),
    "AED": Decimal("0.24"),
    "SAR": Decimal("0.235"),
    "ZAR": Decimal("0.049"),
    "BRL": Decimal("0.16"),
    "MXN": Decimal("0.047"),
    "TRY": Decimal("0.022"),
}
# Statutory or customary cash-reporting thresholds, in the currency itself: US CTR (FinCEN),
# Canada LCTR (FINTRAC), Australia TTR (AUSTRAC), the EU 10,000 cash thresholds, and the GBP
# 10,000 line UK banks monitor. Other currencies have no structuring band here.
CASH_REPORTING_THRESHOLDS = {code: Decimal(10_000) for code in ("USD", "EUR", "GBP", "CAD", "AUD")}
STRUCTURING_BAND = Decimal("0.8")  # deposits from 80 % up to just below the threshold


def in_eur(amount: Decimal, currency: str) -> Decimal | None:
    """`amount` in approximate EUR, None for a currency not in EUR_RATES."""
    rate = EUR_RATES.get(currency)
    return None if rate is None else amount * rate


def from_eur(amount_eur: Decimal, currency: str) -> Decimal | None:
    """An EUR amount expressed in `currency`, rounded to two significant digits (for thresholds)."""
    rate = EUR_RATES.get(currency)
    if rate is None:
        return None
    value = amount_eur / rate
    step = Decimal(10) ** max(value.adjusted() - 1, 0)
    return (value / step).quantize(Decimal(1)) * step


def just_below_cash_threshold(amount: Decimal, currency: str) -> bool:
    threshold = CASH_REPORTING_THRESHOLDS.get(currency)
    return threshold is not None and threshold * STRUCTURING_BAND <= amount < threshold


def is_round(amount: Decimal, unit: int = 1000) -> bool:
    return amount >= unit and amount % unit == 0


def money(amount: Decimal, currency: str) -> str:
    return f"{currency} {amount:,.2f}"


# --- paths, signals, the conclusion ----------------------------------------------------------

MAX_CITATIONS = 100  # what a Recommendation may carry


def loc(*parts: str | int) -> str:
    """A payload path in pydantic-loc style: loc("clauses", 2, "text") == "clauses[2].text"."""
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path


@dataclass(frozen=True)
class Signal:
    """One piece of evidence. A negative weight mitigates (e.g. a regular salary pattern)."""

    flag: str  # short snake_case tag
    weight: float  # -1..1
    detail: str  # a clause naming the evidence and its numbers
    paths: tuple[str, ...] = ()  # the payload paths it was read from


def risk_score(signals: Iterable[Signal]) -> float:
    """Aggravating weights combined as independent odds (noisy-or), then scaled down by mitigating ones."""
    clear, mitigation = 1.0, 1.0
    for signal in signals:
        if signal.weight >= 0:
            clear *= 1 - signal.weight
        else:
            mitigation *= 1 + signal.weight
    return round((1 - clear) * mitigation, 3)


def margin_confidence(value: float, boundary: float, scale: float) -> float:
    """How clear-cut a decision is: 0.5 on its boundary, rising to 0.95 at `scale` away from it."""
    return round(0.5 + 0.45 * min(1.0, abs(value - boundary) / scale), 2)


def country_signal(country: str, role: str, paths: Sequence[str]) -> Signal | None:
    """The sanctioned / high-risk signal for a country code, None for any other country."""
    if country in SANCTIONED_COUNTRIES:
        why = SANCTIONED_COUNTRIES[country]
        return Signal("sanctioned_country", SANCTIONED_COUNTRY_WEIGHT, f"{role} country {country} ({why})", (*paths,))
    if country in HIGH_RISK_COUNTRIES:
        where = HIGH_RISK_COUNTRIES[country]
        detail = f"{role} country {country} ({where}) is on the FATF increased-monitoring list"
        return Signal("high_risk_country", HIGH_RISK_COUNTRY_WEIGHT, detail, (*paths,))
    return None


def describe(signals: Iterable[Signal]) -> str:
    """The signals' details as one clause list: "a; b; c"."""
    return "; ".join(signal.detail for signal in signals)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _bounded(paths: list[str]) -> list[str]:
    """At most MAX_CITATIONS paths: past that, the fields of a list item collapse into the item."""
    if len(paths) <= MAX_CITATIONS:
        return paths
    return _unique(re.sub(r"(\[\d+\])\..*$", r"\1", path) for path in paths)[:MAX_CITATIONS]


# --- ambiguity -------------------------------------------------------------------------------

AMBIGUOUS_CONFIDENCE = 0.65  # the most an ambiguous case may carry: an expert could go either way
CONFLICT_WEIGHT = 0.3  # an aggravating signal this strong, beside a mitigating one, is a conflict


def doubts(
    risk: float, middle_band: tuple[float, float], signals: Sequence[Signal], missing: Iterable[str] = ()
) -> list[str]:
    """Why a case is ambiguous: its risk in the type's middle band, aggravating and mitigating signals
    that pull against each other, or evidence the decision needs that the case lacks."""
    found = []
    low, high = middle_band
    if low <= risk < high:
        found.append(f"risk {risk:.2f} lies in the middle band {low:.2f}-{high:.2f}, where an expert could go"
                     " either way")
    against = [signal.flag for signal in signals if signal.weight >= CONFLICT_WEIGHT]
    mitigating = [signal.flag for signal in signals if signal.weight < 0]
    if against and mitigating:
        found.append(f"conflicting signals: {', '.join(against)} against {', '.join(mitigating)}")
    found += [f"missing evidence: {what}" for what in missing]
    return found


def conclude(
    action: str,
    parameters: BaseModel,
    summary: str,
    signals: Sequence[Signal],
    *,
    confidence: float,
    paths: Iterable[str] = (),
    uncertain: Sequence[str] = (),
) -> Analysis:
    """The Analysis: flags and citations from the signals, a rationale of the summary plus the evidence.
    Each reason the case is `uncertain` (see `doubts`) is stated, and caps the confidence."""
    evidence = f" Evidence: {describe(signals)}." if signals else ""
    doubt = f" Uncertain: {'; '.join(uncertain)}." if uncertain else ""
    if uncertain:
        confidence = min(confidence, AMBIGUOUS_CONFIDENCE)
    return Analysis(
        action=action,
        parameters=parameters.model_dump(mode="json"),
        rationale=f"{summary}{evidence}{doubt}",
        confidence=min(round(confidence, 2), 0.95),
        risk_score=risk_score(signals),
        risk_flags=_unique(signal.flag for signal in signals),
        citations=_bounded(_unique([*paths, *(path for signal in signals for path in signal.paths)])),
    )
