"""How the case page shows an AML alert (aml_alert): headline items and sections of its data."""

from __future__ import annotations

from typing import Any

from app.cases.types.view import DASH, CaseView, Column, Item, Section, items_of, money, score, score_tone, table, text


def present(data: dict[str, Any]) -> CaseView:
    customer, transactions = data.get("customer", {}), data.get("transactions", [])
    rating = customer.get("risk_rating") or ""
    rating_tone = {"high": "bad", "medium": "warn"}.get(rating, "")
    transaction_columns = (Column("ID"), Column("Date"), Column("Direction"), Column("Amount", numeric=True),
                           Column("Counterparty", wrap=True), Column("Country"), Column("Channel"),
                           Column("Reference", wrap=True))
    sections = (
        Section("Customer", (
            *items_of(customer, "customer", ("id", "Customer ID", text), ("name", "Name", text)),
            Item("Risk rating", rating.capitalize() or DASH, "customer.risk_rating", rating_tone),
            *items_of(customer, "customer", ("country", "Country", text), ("occupation", "Occupation", text),
                       ("employer", "Employer", text)),
        )),
        Section("Alert", tuple(items_of(data, "", ("alert_id", "Alert ID", text),
                                        ("prior_alerts_12m", "Prior alerts, 12 months", text)))),
        table("Rule hits", "rule_hits", data.get("rule_hits", []),
              (Column("Rule"), Column("Description", wrap=True), Column("Score", numeric=True)),
              lambda h: (text(h.get("rule_id")), text(h.get("description")), score(h.get("score"))),
              empty="No rule hits.", tone=lambda h: score_tone(h.get("score"), 0.8, 0.5)),
        table("Transactions", "transactions", transactions, transaction_columns, _transaction_cells,
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
            text(t.get("counterparty_country")), text(t.get("channel")),
            text(t.get("reference")))


def _flows(transactions: list[dict[str, Any]]) -> str:
    incoming = sum(1 for t in transactions if t.get("direction") == "in")
    return f"{len(transactions)} ({incoming} in, {len(transactions) - incoming} out)"
