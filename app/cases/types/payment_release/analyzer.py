"""The local analyzer of payment_release: deterministic, no network; what it concludes from the data."""

from __future__ import annotations

import re
from decimal import Decimal

from app.cases.types.base import Analysis, NoParams, Reason
from app.cases.types.signals import (
    NAME_LOOKALIKE,
    NAME_MATCH,
    Signal,
    best_match,
    conclude,
    country_signal,
    describe,
    doubts,
    from_eur,
    is_round,
    loc,
    margin_confidence,
    money,
    risk_score,
)

from .schema import Beneficiary, History, PaymentRelease, Screening

LARGE_VALUE_EUR = Decimal(50_000)  # large-value line, converted to the payment's currency
HOLD_AT = 0.4  # combined risk at or above which the payment is held for review
MIDDLE_BAND = (0.3, 0.5)  # combined risk where holding or releasing is a judgement call
STRONG_SANCTIONS_HIT = 0.9  # a screening score at or above this rejects
POSSIBLE_SANCTIONS_HIT = 0.6  # from here up to STRONG the payment is held
PEP_HIT = 0.8
MUST_HOLD = ("possible_sanctions_hit", "pep_hit")  # screening hits held until compliance dispositions them
UNUSUAL_MULTIPLE = Decimal(3)  # amount vs the customer's average payment
EXTREME_MULTIPLE = Decimal(10)
IBAN = re.compile(r"^([A-Z]{2})\d{2}[A-Z0-9]{10,30}$")


def _routing_countries(beneficiary: Beneficiary) -> dict[str, str]:
    """Countries of the beneficiary's bank (BIC letters 5-6) and account (IBAN prefix), by path."""
    found = {}
    if beneficiary.bank_bic and len(beneficiary.bank_bic) >= 6:
        found["beneficiary.bank_bic"] = beneficiary.bank_bic[4:6].upper()
    iban = IBAN.match(beneficiary.account.replace(" ", "").upper())
    if iban:
        found["beneficiary.account"] = iban.group(1)
    return found


def _country_signals(data: PaymentRelease) -> list[Signal]:
    routing = _routing_countries(data.beneficiary)
    parties: dict[tuple[str, str], list[str]] = {
        ("beneficiary", data.beneficiary.country): ["beneficiary.country"],
        ("originator", data.originator.country): ["originator.country"],
    }
    for path, country in routing.items():
        parties.setdefault(("beneficiary bank", country), []).append(path)
    signals = [country_signal(country, role, paths) for (role, country), paths in parties.items()]
    foreign = {path: country for path, country in routing.items() if country != data.beneficiary.country}
    if foreign:
        detail = f"beneficiary bank/account country {'/'.join(sorted(set(foreign.values())))} differs from its country"
        detail += f" {data.beneficiary.country}"
        signals.append(Signal("bank_country_mismatch", 0.2, detail, (*foreign, "beneficiary.country")))
    return [signal for signal in signals if signal]


def _screening_signals(screening: Screening | None) -> list[Signal]:
    if screening is None:
        return []
    signals = []
    for index, hit in enumerate(screening.sanctions_hits):
        path = loc("screening", "sanctions_hits", index, "score")
        detail = f"{hit.list} entry '{hit.matched_name}' (score {hit.score:.2f})"
        if hit.score >= STRONG_SANCTIONS_HIT:
            signals.append(Signal("sanctions_hit", 0.95, f"strong sanctions match on {detail}", (path,)))
        elif hit.score >= POSSIBLE_SANCTIONS_HIT:
            signals.append(Signal("possible_sanctions_hit", 0.5, f"possible sanctions match on {detail}", (path,)))
    for index, pep in enumerate(screening.pep_hits):
        if pep.score >= PEP_HIT:
            detail = f"PEP hit '{pep.matched_name}' (score {pep.score:.2f})"
            signals.append(Signal("pep_hit", 0.3, detail, (loc("screening", "pep_hits", index, "score"),)))
    return signals


def _beneficiary_signal(data: PaymentRelease) -> Signal | None:
    """New, changed or look-alike beneficiary, judged against the names this customer has paid."""
    known = data.history.known_beneficiary_names if data.history else []
    match = best_match(data.beneficiary.name, known)
    paths = ("beneficiary.name", "beneficiary.is_new", *(["history.known_beneficiary_names"] if data.history else []))
    if match is None or match[1] < NAME_LOOKALIKE:
        if data.beneficiary.is_new:
            return Signal("new_beneficiary", 0.2, f"new beneficiary '{data.beneficiary.name}'", paths)
        if known:
            detail = f"beneficiary '{data.beneficiary.name}' matches none of the {len(known)} known beneficiary names"
            return Signal("beneficiary_name_mismatch", 0.4, detail, paths)
        return None
    name, similarity = known[match[0]], match[1]
    if similarity < NAME_MATCH:
        detail = f"beneficiary '{data.beneficiary.name}' resembles known '{name}' (similarity {similarity:.2f})"
        return Signal("lookalike_beneficiary_name", 0.45, detail, paths)
    if data.beneficiary.is_new:
        detail = f"known beneficiary '{name}' with a new account (possible changed bank details)"
        return Signal("changed_beneficiary_account", 0.45, detail, paths)
    return None


def _amount_signals(data: PaymentRelease) -> list[Signal]:
    signals = []
    threshold = from_eur(LARGE_VALUE_EUR, data.currency)
    if threshold is None:
        detail = f"currency {data.currency} has no reference rate, so the amount counts as large"
        signals.append(Signal("unlisted_currency", 0.15, detail, ("currency",)))
    elif data.amount >= threshold:
        detail = f"{money(data.amount, data.currency)} is above the large-value line of"
        detail += f" {money(threshold, data.currency)}"
        signals.append(Signal("large_amount", 0.15, detail, ("amount", "currency")))
    if is_round(data.amount):
        signals.append(Signal("round_amount", 0.1, f"round amount {money(data.amount, data.currency)}", ("amount",)))
    return signals


def _velocity_signals(history: History | None, amount: Decimal) -> list[Signal]:
    if history is None or history.average_amount <= 0:
        return []
    signals = []
    multiple = amount / history.average_amount
    if multiple >= UNUSUAL_MULTIPLE:
        weight = 0.35 if multiple >= EXTREME_MULTIPLE else 0.2
        detail = f"amount is {multiple:.1f}x the average payment of {history.average_amount:,.2f}"
        signals.append(Signal("amount_above_usual", weight, detail, ("amount", "history.average_amount")))
    if history.payments_last_30d:
        recent = history.amount_last_30d / history.payments_last_30d
        if recent >= 2 * history.average_amount:
            detail = f"last-30-day average of {recent:,.2f} over {history.payments_last_30d} payments is"
            detail += f" {recent / history.average_amount:.1f}x the usual average"
            paths = ("history.amount_last_30d", "history.payments_last_30d", "history.average_amount")
            signals.append(Signal("elevated_recent_activity", 0.15, detail, paths))
    return signals


def _missing_evidence(data: PaymentRelease) -> list[str]:
    """What a release or a hold would rest on that the case does not carry."""
    missing = []
    if data.history is None:
        missing.append("no payment history to compare the amount and the beneficiary with")
    if data.screening is None:
        missing.append("no sanctions or PEP screening result")
    return missing


def analyze(data: PaymentRelease) -> Analysis:
    """Release, hold or reject, from countries, screening, beneficiary history, size and velocity."""
    signals = [
        *_country_signals(data),
        *_screening_signals(data.screening),
        *filter(None, [_beneficiary_signal(data)]),
        *_amount_signals(data),
        *_velocity_signals(data.history, data.amount),
    ]
    paths = ["amount", "currency", "beneficiary.country", "beneficiary.name"]
    if data.screening:
        paths += ["screening.sanctions_hits", "screening.pep_hits"]
    blocking = [signal for signal in signals if signal.flag in ("sanctioned_country", "sanctions_hit")]
    if blocking:
        reason = f"Rejected: {describe(blocking)}."
        summary = "Reject: a sanctioned jurisdiction or a strong sanctions match blocks the payment."
        return conclude("reject", Reason(reason=reason), summary, signals, confidence=0.95, paths=paths)
    risk = risk_score(signals)
    confidence = margin_confidence(risk, HOLD_AT, 0.3)
    undispositioned = [signal for signal in signals if signal.flag in MUST_HOLD]
    if undispositioned and risk < HOLD_AT:
        reason = f"Held until compliance dispositions the screening: {describe(undispositioned)}."
        summary = f"Hold: an open screening hit holds the payment whatever its combined risk ({risk:.2f})."
        return conclude("hold", Reason(reason=reason), summary, signals, confidence=0.85, paths=paths)
    uncertain = doubts(risk, MIDDLE_BAND, signals, _missing_evidence(data))
    if risk >= HOLD_AT:
        reason = f"Held for review: {describe(signals)}."
        summary = f"Hold: combined risk {risk:.2f} reaches the {HOLD_AT:.2f} hold line."
        return conclude("hold", Reason(reason=reason), summary, signals, confidence=confidence, paths=paths,
                        uncertain=uncertain)
    summary = f"Release: combined risk {risk:.2f} is below the {HOLD_AT:.2f} hold line."
    return conclude("release", NoParams(), summary, signals, confidence=confidence, paths=paths, uncertain=uncertain)
