"""How the case page shows a contract review (contract_review): headline items and sections of its data."""

from __future__ import annotations

from functools import partial
from typing import Any

from app.cases.types.signals import loc
from app.cases.types.view import Block, CaseView, Item, Section, items_of, money, text


def present(data: dict[str, Any]) -> CaseView:
    cash = partial(money, currency=data.get("currency"))
    counterparty, policy = data.get("counterparty", {}), data.get("policy")
    allowed = (policy or {}).get("allowed_governing_law")
    law = Item("Governing law", text(data.get("governing_law")), "governing_law",
               "bad" if allowed and data.get("governing_law") not in allowed else "")
    sections = [Section("Contract", (
        *items_of(data, "", ("contract_id", "Contract ID", text), ("title", "Title", text),
                  ("contract_value", "Value", cash), ("term_months", "Term", _months)),
        law,
        *items_of(counterparty, "counterparty", ("name", "Counterparty", text), ("country", "Country", text)),
    ))]
    if policy:
        sections.append(Section("Policy", tuple(items_of(
            policy, "policy", ("allowed_governing_law", "Allowed governing law", text),
            ("max_liability_multiple", "Max liability", lambda v: f"{text(v)} x fees"),
            ("max_payment_terms_days", "Max payment terms", lambda v: f"{text(v)} days"),
            ("max_auto_renewal_months", "Max auto-renewal", _months)))))
    clauses = tuple(Block(text(c.get("id")), text(c.get("heading")), text(c.get("text")), loc("clauses", i))
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
