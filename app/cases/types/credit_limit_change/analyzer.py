"""The local analyzer of credit_limit_change: deterministic, no network; what it concludes from the data."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from app.cases.types.base import Analysis, Reason
from app.cases.types.signals import Signal, conclude, describe, doubts, margin_confidence, money, risk_score

from .schema import CreditLimitChange, Limit

# Credit-score bands (FICO style): the share of annual income a card limit may reach.
SCORE_BANDS = (
    (800, "exceptional", Decimal("0.40")),
    (740, "very good", Decimal("0.30")),
    (670, "good", Decimal("0.20")),
    (580, "fair", Decimal("0.10")),
)
MIN_SCORE = 580  # below: "poor", declined
MAX_DTI = Decimal("0.45")  # debt-to-income above this is declined
ELEVATED_DTI = Decimal("0.36")
MAX_MISSED = 3  # missed payments in 12 months that decline
DECLINE_RISK = 0.6  # combined risk of the soft signals that declines
MIDDLE_BAND = (0.45, 0.75)  # soft risk where granting or declining is a judgement call
STEP = Decimal(100)  # limits are offered in whole hundreds, rounded down
CENTS = Decimal("0.01")


def _band(score: int) -> tuple[str, Decimal]:
    """The score's band and income share; ("poor", 0) below MIN_SCORE."""
    return next(((name, share) for floor, name, share in SCORE_BANDS if score >= floor), ("poor", Decimal(0)))


def _months_between(start: date, end: date) -> int:
    return (end.year - start.year) * 12 + end.month - start.month - (end.day < start.day)


def _hard_declines(data: CreditLimitChange, dti: Decimal) -> list[tuple[Signal, float]]:
    """Rules that decline on their own, each with how clear-cut it is."""
    found = []
    if data.credit_score < MIN_SCORE:
        detail = f"credit score {data.credit_score} is below the {MIN_SCORE} minimum"
        clear = margin_confidence(data.credit_score, MIN_SCORE, 60)
        found.append((Signal("low_credit_score", 0.8, detail, ("credit_score",)), clear))
    if data.missed_payments_12m >= MAX_MISSED:
        detail = f"{data.missed_payments_12m} missed payments in 12 months (at most {MAX_MISSED - 1} accepted)"
        clear = margin_confidence(data.missed_payments_12m, MAX_MISSED - 1, 2)
        found.append((Signal("missed_payments", 0.7, detail, ("missed_payments_12m",)), clear))
    if not data.annual_income:
        found.append((Signal("no_income", 0.8, "no declared income", ("annual_income",)), 0.9))
    elif dti > MAX_DTI:
        detail = f"debt-to-income {dti:.1%} is above the {MAX_DTI:.0%} maximum"
        clear = margin_confidence(float(dti), float(MAX_DTI), 0.15)
        found.append((Signal("dti_above_limit", 0.7, detail, ("monthly_debt_payments", "annual_income")), clear))
    return found


def _soft_signals(data: CreditLimitChange, dti: Decimal, today: date) -> list[Signal]:
    signals = []
    if data.utilization >= 0.75:
        weight = 0.3 if data.utilization >= 0.9 else 0.15
        signals.append(Signal("high_utilization", weight, f"utilisation {data.utilization:.0%}", ("utilization",)))
    if data.missed_payments_12m:
        detail = f"{data.missed_payments_12m} missed payment(s) in 12 months"
        weight = 0.2 * data.missed_payments_12m
        signals.append(Signal("missed_payments", weight, detail, ("missed_payments_12m",)))
    if _band(data.credit_score)[0] == "fair":
        signals.append(Signal("fair_credit_score", 0.2, f"fair credit score {data.credit_score}", ("credit_score",)))
    if dti >= ELEVATED_DTI:
        paths = ("monthly_debt_payments", "annual_income")
        signals.append(Signal("elevated_dti", 0.2, f"debt-to-income {dti:.1%}", paths))
    months = _months_between(data.customer.since, today)
    if months < 24:
        weight = 0.3 if months < 6 else 0.15
        signals.append(Signal("short_tenure", weight, f"customer for {months} months", ("customer.since",)))
    elif months >= 60:
        signals.append(Signal("long_tenure", -0.2, f"customer for {months // 12} years", ("customer.since",)))
    if data.current_limit and data.requested_limit >= 3 * data.current_limit:
        detail = f"requested limit is {data.requested_limit / data.current_limit:.1f}x the current one"
        signals.append(Signal("large_increase", 0.1, detail, ("requested_limit", "current_limit")))
    return signals


def affordable_limit(data: CreditLimitChange, dti: Decimal, risk: float) -> Decimal:
    """Income x the score band's share, reduced by the existing debt burden (x (1 - DTI)) and by the
    soft risk (x (1 - risk)), rounded down to STEP."""
    raw = data.annual_income * _band(data.credit_score)[1] * (1 - dti) * (1 - Decimal(str(risk)))
    return ((raw // STEP) * STEP).quantize(CENTS)


def _closeness(data: CreditLimitChange, dti: Decimal, risk: float) -> float:
    """How far the case stays from every decline line: the nearest one sets the confidence."""
    return min(
        margin_confidence(data.credit_score, MIN_SCORE, 60),
        margin_confidence(float(dti), float(MAX_DTI), 0.15),
        margin_confidence(risk, DECLINE_RISK, 0.3),
    )


def _decrease(data: CreditLimitChange) -> Analysis:
    detail = f"requested {data.requested_limit:,.2f} is not above the current {data.current_limit:,.2f}"
    signal = Signal("limit_decrease", 0.0, detail, ("requested_limit", "current_limit"))
    summary = "Approve: a lower limit only reduces the exposure."
    return conclude("approve", Limit(limit=data.requested_limit), summary, [signal], confidence=0.95)


def analyze(data: CreditLimitChange, *, today: date | None = None) -> Analysis:
    """Decline on hard rules or high risk; else approve up to the affordable limit, counter-offer above it."""
    if data.requested_limit <= data.current_limit:
        return _decrease(data)
    paths = ["requested_limit", "current_limit", "credit_score", "annual_income", "monthly_debt_payments"]
    dti = data.monthly_debt_payments * 12 / data.annual_income if data.annual_income else Decimal("Infinity")
    hard = _hard_declines(data, dti)
    if hard:
        signals = [signal for signal, _ in hard]
        reason = f"Declined: {describe(signals)}."
        summary = f"Decline: {len(signals)} lending rule(s) rule the increase out."
        confidence = max(clear for _, clear in hard)
        return conclude("decline", Reason(reason=reason), summary, signals, confidence=confidence, paths=paths)
    signals = _soft_signals(data, dti, today or date.today())
    risk = risk_score(signals)
    limit = affordable_limit(data, dti, risk)
    requested, current = money(data.requested_limit, data.currency), money(data.current_limit, data.currency)
    band = _band(data.credit_score)[0]
    context = f"affordable limit {money(limit, data.currency)} ({band} score {data.credit_score}, debt-to-income"
    context += f" {dti:.1%}, risk {risk:.2f})"
    uncertain = doubts(risk, MIDDLE_BAND, signals)
    if risk >= DECLINE_RISK:
        reason = f"Declined: combined risk {risk:.2f} reaches the {DECLINE_RISK:.2f} line ({describe(signals)})."
        summary = f"Decline: the risk signals outweigh the {context}."
        confidence = margin_confidence(risk, DECLINE_RISK, 0.3)
        return conclude("decline", Reason(reason=reason), summary, signals, confidence=confidence, paths=paths,
                        uncertain=uncertain)
    if limit <= data.current_limit:
        reason = f"Declined: the {context} does not exceed the current {current}."
        summary = f"Decline: no affordable increase on the current {current}."
        return conclude("decline", Reason(reason=reason), summary, signals, confidence=0.8, paths=paths,
                        uncertain=uncertain)
    headroom = float((limit - data.requested_limit) / limit)
    confidence = min(_closeness(data, dti, risk), margin_confidence(headroom, 0, 0.3))
    if headroom >= 0:
        summary = f"Approve {requested}: within the {context}."
        return conclude("approve", Limit(limit=data.requested_limit), summary, signals, confidence=confidence,
                        paths=paths, uncertain=uncertain)
    summary = f"Counter-offer {money(limit, data.currency)} instead of {requested}: the {context}."
    return conclude("counter_offer", Limit(limit=limit), summary, signals, confidence=confidence, paths=paths,
                    uncertain=uncertain)
