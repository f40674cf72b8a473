"""The local analyzer of aml_alert: deterministic, no network; what it concludes from the data."""

from __future__ import annotations

import re
from decimal import Decimal
from itertools import pairwise

from app.cases.types.base import Analysis, NoParams, Reason
from app.cases.types.signals import (
    NAME_MATCH,
    Signal,
    conclude,
    country_signal,
    describe,
    doubts,
    in_eur,
    is_round,
    just_below_cash_threshold,
    loc,
    margin_confidence,
    money,
    name_similarity,
    normalize_name,
    risk_score,
)
from app.cases.types.text import affirms

from .schema import AmlAlert, FileSar, Transaction

CLOSE_BELOW = 0.35  # combined risk under this closes the alert as a false positive
SAR_AT = 0.7  # at or above this, with a typology present, a SAR is drafted
CORROBORATED_SAR = 0.9  # confidence in a SAR on sanctioned-country exposure or two typologies
STRUCTURING_WINDOW_DAYS = 14
PASS_THROUGH_DAYS = 7  # an outflow this soon after inflows of about the same size is a pass-through
PASS_THROUGH_RATIO = (Decimal("0.8"), Decimal("1.25"))
PASS_THROUGH_MIN_EUR = Decimal(5_000)
LOW_INCOME_OCCUPATION = re.compile(r"student|unemployed|retired|pensioner|homemaker|housewife", re.IGNORECASE)
RETIRED = re.compile(r"retired|pensioner", re.IGNORECASE)
# State and statutory pension payers a retiree's pension comes from: only these explain a pension, not
# any payer whose name mentions one ("Pension Holdings Ltd" is a private company).
STATE_PENSION_PAYERS = (
    "Deutsche Rentenversicherung", "Pensionsversicherungsanstalt", "Department for Work and Pensions",
    "Social Security Administration", "Caisse nationale d'assurance vieillesse", "Sociale Verzekeringsbank",
    "Pensionsmyndigheten", "Instituto Nacional de la Seguridad Social", "Istituto Nazionale della Previdenza Sociale",
    "Zaklad Ubezpieczen Spolecznych", "Office national des pensions", "Ausgleichskasse AHV", "Service Canada",
    "Centrelink", "Kela", "Udbetaling Danmark", "Social Insurance Agency",
)
REFUND = re.compile(r"refund|reimburs|chargeback|returned\s+(?:goods|order|purchase)", re.IGNORECASE)
EXPLAINED_SHARE = Decimal("0.8")  # inflows at least this share explained by legitimate sources mitigate
LOW_INCOME_MAX_EUR = Decimal(20_000)  # inflows above this do not fit such an occupation
SALARY_GAP_DAYS = range(25, 36)
SALARY_SPREAD = Decimal("0.15")  # amounts within 15 % of their median
RATING_WEIGHTS = {"high": 0.2, "medium": 0.05}
TYPOLOGIES = frozenset({"structuring", "rapid_movement", "sanctioned_country", "activity_inconsistent_with_occupation"})

Indexed = list[tuple[int, Transaction]]


def _paths(items: Indexed, *fields: str) -> tuple[str, ...]:
    return tuple(loc("transactions", index, field) for index, _ in items for field in fields)


def _ids(items: Indexed, shown: int = 10) -> str:
    """The transactions by id, amount and date: the first `shown` of them, then a count of the rest."""
    listed = ", ".join(f"{t.id} {money(t.amount, t.currency)} on {t.date}" for _, t in items[:shown])
    return listed + (f" and {len(items) - shown} more" if len(items) > shown else "")


def _is_cash(transaction: Transaction) -> bool:
    return any(word in transaction.channel.lower() for word in ("cash", "atm"))


def _eur_total(items: Indexed) -> Decimal:
    return sum((in_eur(t.amount, t.currency) or Decimal(0) for _, t in items), Decimal(0))


def _rule_signal(data: AmlAlert) -> Signal:
    top = max(hit.score for hit in data.rule_hits)
    detail = "rule hits " + ", ".join(f"{hit.rule_id} ({hit.score:.2f})" for hit in data.rule_hits)
    paths = tuple(loc("rule_hits", index, "score") for index in range(len(data.rule_hits)))
    return Signal("strong_rule_hit" if top >= 0.8 else "rule_hit", round(0.45 * top, 3), detail, paths)


def _structuring(indexed: Indexed) -> Signal | None:
    """Two or more cash deposits just below a reporting threshold within STRUCTURING_WINDOW_DAYS."""
    band = [
        (i, t) for i, t in indexed
        if t.direction == "in" and _is_cash(t) and just_below_cash_threshold(t.amount, t.currency)
    ]
    windows = [[(j, u) for j, u in band if 0 <= (u.date - t.date).days <= STRUCTURING_WINDOW_DAYS] for _, t in band]
    cluster = max(windows, key=len, default=[])
    if len(cluster) < 2:
        return None
    span = (cluster[-1][1].date - cluster[0][1].date).days
    detail = f"{len(cluster)} cash deposits just below the cash-reporting threshold within {span} days"
    detail += f" ({_ids(cluster)})"
    weight = 0.65 if len(cluster) >= 3 else 0.45
    return Signal("structuring", weight, detail, _paths(cluster, "amount", "date", "channel"))


def _rapid_movement(indexed: Indexed) -> Signal | None:
    """The largest outflow that passes on, within PASS_THROUGH_DAYS, about what came in just before it."""
    found = []
    for i, out in ((i, t) for i, t in indexed if t.direction == "out"):
        ins = [(j, t) for j, t in indexed if t.direction == "in" and 0 <= (out.date - t.date).days <= PASS_THROUGH_DAYS]
        out_eur, in_eur_total = in_eur(out.amount, out.currency), _eur_total(ins)
        if out_eur and in_eur_total >= PASS_THROUGH_MIN_EUR:
            ratio = out_eur / in_eur_total
            if PASS_THROUGH_RATIO[0] <= ratio <= PASS_THROUGH_RATIO[1]:
                found.append((out_eur, i, out, ins, ratio))
    if not found:
        return None
    _, i, out, ins, ratio = max(found, key=lambda item: item[0])
    days = (out.date - ins[0][1].date).days
    detail = f"inflows {_ids(ins)} left within {days} days as {out.id} {money(out.amount, out.currency)} to"
    detail += f" {out.counterparty} ({out.counterparty_country}), a {ratio:.0%} pass-through"
    paths = _paths([*ins, (i, out)], "amount", "date", "direction")
    return Signal("rapid_movement", 0.4, detail, (*paths, loc("transactions", i, "counterparty")))


def _country_signals(data: AmlAlert, indexed: Indexed) -> list[Signal]:
    by_country: dict[str, Indexed] = {}
    for i, t in indexed:
        by_country.setdefault(t.counterparty_country, []).append((i, t))
    signals = [
        country_signal(country, "counterparty", _paths(items, "counterparty_country"))
        for country, items in by_country.items()
    ]
    signals.append(country_signal(data.customer.country, "customer", ["customer.country"]))
    return [signal for signal in signals if signal]


def _profile_signals(data: AmlAlert, indexed: Indexed) -> list[Signal]:
    signals = []
    rating = data.customer.risk_rating
    if rating in RATING_WEIGHTS:
        detail = f"customer risk rating {rating}"
        signals.append(Signal(f"{rating}_risk_customer", RATING_WEIGHTS[rating], detail, ("customer.risk_rating",)))
    if data.prior_alerts_12m:
        repeat = data.prior_alerts_12m >= 3
        detail = f"{data.prior_alerts_12m} prior alert(s) in 12 months"
        signals.append(Signal("repeat_alerts" if repeat else "prior_alerts", 0.3 if repeat else 0.1, detail,
                              ("prior_alerts_12m",)))
    rounds = [(i, t) for i, t in indexed if is_round(t.amount)]
    if len(rounds) >= 2:
        signals.append(Signal("round_amounts", 0.1, f"round amounts ({_ids(rounds)})", _paths(rounds, "amount")))
    occupation = data.customer.occupation
    explained = {i for i, _ in _legitimate_sources(data, indexed)}
    unexplained = [(i, t) for i, t in indexed if t.direction == "in" and i not in explained]
    inflow = _eur_total(unexplained)
    if occupation and affirms(LOW_INCOME_OCCUPATION, occupation) and inflow > LOW_INCOME_MAX_EUR:
        detail = f"inflows of about EUR {inflow:,.0f} from sources that do not explain them do not fit the"
        detail += f" occupation '{occupation}'"
        paths = ("customer.occupation", *_paths(unexplained, "amount"))
        signals.append(Signal("activity_inconsistent_with_occupation", 0.3, detail, paths))
    return signals


def _source_of(data: AmlAlert, indexed: Indexed, index: int, credit: Transaction) -> str | None:
    """Why an inflow is legitimate, in an analyst's words; None when nothing on file explains it."""
    customer = data.customer
    if customer.employer and name_similarity(credit.counterparty, customer.employer) >= NAME_MATCH:
        return f"salary from the customer's employer {customer.employer}"
    retired = customer.occupation and affirms(RETIRED, customer.occupation)
    if retired and any(name_similarity(credit.counterparty, payer) >= NAME_MATCH for payer in STATE_PENSION_PAYERS):
        return f"state pension from {credit.counterparty}"
    if credit.reference and affirms(REFUND, credit.reference):
        purchases = [
            t for j, t in indexed[:index]
            if t.direction == "out" and t.currency == credit.currency and t.amount >= credit.amount
            and name_similarity(t.counterparty, credit.counterparty) >= NAME_MATCH
        ]
        if purchases:
            paid = money(purchases[0].amount, purchases[0].currency)
            return f"refund from {credit.counterparty}, a merchant the customer paid {paid}"
    return None


def _legitimate_sources(data: AmlAlert, indexed: Indexed) -> list[tuple[int, str]]:
    """The inflows a known legitimate source explains (employer, state pension payer, refunding merchant)."""
    found = []
    for position, (i, t) in enumerate(indexed):
        source = _source_of(data, indexed, position, t) if t.direction == "in" and not _is_cash(t) else None
        if source:
            found.append((i, source))
    return found


def _explained_inflows(data: AmlAlert, indexed: Indexed) -> Signal | None:
    """Mitigating: most of the inflow comes from sources an analyst would accept as legitimate."""
    sources = _legitimate_sources(data, indexed)
    explained = {i for i, _ in sources}
    credits = [(i, t) for i, t in indexed if t.direction == "in"]
    total = _eur_total(credits)
    explained_total = _eur_total([(i, t) for i, t in credits if i in explained])
    if not sources or total <= 0 or explained_total < EXPLAINED_SHARE * total:
        return None
    reasons = "; ".join(dict.fromkeys(source for _, source in sources))
    paths = _paths([(i, t) for i, t in credits if i in explained], "counterparty", "reference")
    detail = f"{len(explained)} of {len(credits)} inflows come from legitimate sources ({reasons})"
    return Signal("explained_inflows", -0.6, detail, ("customer.occupation", "customer.employer", *paths))


def _regular_income(indexed: Indexed) -> Signal | None:
    """Mitigating: most of the inflow is regular monthly credits of similar size from one payer (a salary)."""
    payers: dict[str, Indexed] = {}
    for i, t in indexed:
        if t.direction == "in" and not _is_cash(t):
            payers.setdefault(normalize_name(t.counterparty), []).append((i, t))
    credits = max(payers.values(), key=len, default=[])
    all_in = [(i, t) for i, t in indexed if t.direction == "in"]
    if len(credits) < 2 or _eur_total(credits) < Decimal("0.8") * _eur_total(all_in):
        return None
    amounts = sorted(t.amount for _, t in credits)
    median = amounts[len(amounts) // 2]
    gaps = [(later.date - earlier.date).days for (_, earlier), (_, later) in pairwise(credits)]
    steady = all(abs(amount - median) <= SALARY_SPREAD * median for amount in amounts)
    if not steady or not all(gap in SALARY_GAP_DAYS for gap in gaps):
        return None
    detail = f"{len(credits)} regular monthly credits of about {money(median, credits[0][1].currency)} from"
    detail += f" {credits[0][1].counterparty}"
    return Signal("regular_income_pattern", -0.6, detail, _paths(credits, "amount", "date", "counterparty"))


def _totals(indexed: Indexed, direction: str) -> str:
    sums: dict[str, Decimal] = {}
    for _, t in indexed:
        if t.direction == direction:
            sums[t.currency] = sums.get(t.currency, Decimal(0)) + t.amount
    return " and ".join(money(amount, currency) for currency, amount in sums.items()) or "nothing"


def _narrative(data: AmlAlert, indexed: Indexed, signals: list[Signal]) -> str:
    """Who, when, how much, which typologies and which transactions, for the SAR."""
    customer = data.customer
    facts = [customer.id, customer.country, f"{customer.risk_rating} risk", customer.occupation]
    profile = ", ".join(fact for fact in facts if fact)
    activity = (
        f" Between {indexed[0][1].date} and {indexed[-1][1].date} the customer received {_totals(indexed, 'in')}"
        f" and sent {_totals(indexed, 'out')} in {len(indexed)} transactions."
        if indexed
        else ""
    )
    indicators = describe(signal for signal in signals if signal.weight > 0)
    return f"Alert {data.alert_id} on customer {customer.name} ({profile}).{activity} Indicators: {indicators}."


def analyze(data: AmlAlert) -> Analysis:
    """Close weak alerts, investigate the middle band, draft a SAR when a typology makes the evidence strong."""
    indexed = sorted(enumerate(data.transactions), key=lambda item: (item[1].date, item[0]))
    found = [
        _structuring(indexed), _rapid_movement(indexed), _regular_income(indexed), _explained_inflows(data, indexed)
    ]
    signals = [
        _rule_signal(data),
        *filter(None, found),
        *_country_signals(data, indexed),
        *_profile_signals(data, indexed),
    ]
    risk = risk_score(signals)
    typology = any(signal.flag in TYPOLOGIES for signal in signals)
    paths = ["customer.risk_rating", "prior_alerts_12m", "transactions"]
    missing = [] if indexed else ["the alert lists no transactions to judge it by"]
    uncertain = doubts(risk, (CLOSE_BELOW, SAR_AT), signals, missing)
    if risk >= SAR_AT and typology:
        narrative = FileSar(narrative=_narrative(data, indexed, signals))
        summary = f"File a SAR: risk {risk:.2f} reaches {SAR_AT:.2f} with a money-laundering typology."
        # Sanctioned-country exposure, or two typologies that corroborate each other, is no judgement call.
        found = {signal.flag for signal in signals} & TYPOLOGIES
        corroborated = "sanctioned_country" in found or len(found) >= 2
        confidence = max(margin_confidence(risk, SAR_AT, 0.3), CORROBORATED_SAR if corroborated else 0)
        return conclude("file_sar", narrative, summary, signals, confidence=confidence, paths=paths,
                        uncertain=uncertain)
    if risk >= CLOSE_BELOW or typology:
        summary = f"Open an investigation: risk {risk:.2f}"
        summary += " with a typology short of a SAR." if typology else " in the middle band, no typology found."
        confidence = min(margin_confidence(risk, CLOSE_BELOW, 0.3), margin_confidence(risk, SAR_AT, 0.3))
        return conclude("open_investigation", NoParams(), summary, signals, confidence=confidence, paths=paths,
                        uncertain=uncertain)
    mitigating = [signal for signal in signals if signal.weight < 0]
    reason = f"Weak evidence: risk {risk:.2f} is below {CLOSE_BELOW:.2f} and the {len(indexed)} transactions show no"
    reason += " structuring, pass-through, sanctioned-country exposure or activity out of profile"
    reason += f"; explained by {describe(mitigating)}." if mitigating else "."
    summary = "Close as a false positive: the evidence is weak."
    confidence = margin_confidence(risk, CLOSE_BELOW, 0.3)
    return conclude("close_false_positive", Reason(reason=reason), summary, signals, confidence=confidence, paths=paths,
                    uncertain=uncertain)
