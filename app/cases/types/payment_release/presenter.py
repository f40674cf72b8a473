"""How the case page shows a payment held for release (payment_release): headline items and sections of its data."""

from __future__ import annotations

from functools import partial
from typing import Any

from app.cases.types.view import CaseView, Item, Section, items_of, money, pep_table, sanctions_table, text, yes_no


def present(data: dict[str, Any]) -> CaseView:
    cash = partial(money, currency=data.get("currency"))
    beneficiary, history, screening = data.get("beneficiary", {}), data.get("history"), data.get("screening")
    party = (("name", "Name", text), ("account", "Account", text), ("country", "Country", text))
    is_new = beneficiary.get("is_new")
    sections = [
        Section("Payment", (
            *items_of(data, "", ("payment_id", "Payment ID", text), ("amount", "Amount", cash),
                      ("value_date", "Value date", text), ("channel", "Channel", str.upper)),
            Item("Purpose", text(data.get("purpose")), "purpose", long=True),
        )),
        Section("Originator", tuple(items_of(data.get("originator", {}), "originator", *party,
                                             ("customer_id", "Customer ID", text)))),
        Section("Beneficiary", (
            *items_of(beneficiary, "beneficiary", *party, ("bank_bic", "Bank BIC", text)),
            Item("New beneficiary", yes_no(is_new), "beneficiary.is_new", "warn" if is_new else ""),
        )),
    ]
    if history:
        sections.append(Section("Payment history", tuple(items_of(
            history, "history", ("payments_last_30d", "Payments, last 30 days", text),
            ("amount_last_30d", "Amount, last 30 days", cash), ("average_amount", "Average payment", cash),
            ("known_beneficiary_names", "Known beneficiaries", text)))))
    if screening:
        sections.append(sanctions_table("screening.sanctions_hits", screening.get("sanctions_hits", [])))
        sections.append(pep_table("screening.pep_hits", screening.get("pep_hits", [])))
    summary = (
        Item("Amount", cash(data.get("amount")), "amount"),
        Item("Beneficiary", text(beneficiary.get("name")), "beneficiary.name"),
        Item("Channel", text(data.get("channel")).upper(), "channel"),
        Item("Value date", text(data.get("value_date")), "value_date"),
    )
    return CaseView(summary, tuple(sections))
