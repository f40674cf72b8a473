"""How the case page shows a credit limit change (credit_limit_change): headline items and sections of its data."""

from __future__ import annotations

from functools import partial
from typing import Any

from app.cases.types.view import DASH, CaseView, Item, Section, decimal_of, items_of, money, percent, text, years_since


def present(data: dict[str, Any]) -> CaseView:
    cash = partial(money, currency=data.get("currency"))
    customer = data.get("customer", {})
    utilization, missed = float(data.get("utilization") or 0), data.get("missed_payments_12m") or 0
    request = [*items_of(data, "", ("account_id", "Account", text), ("current_limit", "Current limit", cash),
                         ("requested_limit", "Requested limit", cash)),
               Item("Change", _change(data.get("current_limit"), data.get("requested_limit"), data.get("currency")))]
    if data.get("reason"):
        request.append(Item("Reason given", text(data["reason"]), "reason", long=True))
    sections = (
        Section("Request", tuple(request)),
        Section("Customer", (
            *items_of(customer, "customer", ("id", "Customer ID", text), ("name", "Name", text),
                      ("since", "Customer since", text)),
            Item("Tenure", years_since(customer.get("since")) or DASH, "customer.since"),
        )),
        Section("Affordability", (
            *items_of(data, "", ("annual_income", "Annual income", cash),
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
