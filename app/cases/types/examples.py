"""One realistic, valid, JSON-ready `data` payload per case type (used by tests and the demo seed)."""

from __future__ import annotations

from typing import Any

EXAMPLES: dict[str, dict[str, Any]] = {
    "payment_release": {
        "payment_id": "PAY-2026-118734",
        "amount": "48250.00",
        "currency": "EUR",
        "value_date": "2026-11-27",
        "channel": "sepa",
        "originator": {
            "name": "Hartmann Logistik GmbH",
            "account": "DE89370400440532013000",
            "country": "DE",
            "customer_id": "CUST-004512",
        },
        "beneficiary": {
            "name": "Baltic Freight Solutions UAB",
            "account": "LT121000011101001000",
            "country": "LT",
            "bank_bic": "CBVILT2X",
            "is_new": True,
        },
        "purpose": "Invoice INV-2026-0931: road freight Hamburg-Vilnius, October 2026",
        "history": {
            "payments_last_30d": 14,
            "amount_last_30d": "212430.55",
            "average_amount": "15173.61",
            "known_beneficiary_names": ["DHL Freight GmbH", "Raben Logistics Polska"],
        },
        "screening": {
            "sanctions_hits": [
                {
                    "list": "EU Consolidated",
                    "matched_name": "Baltic Freight Services",
                    "score": 0.62,
                }
            ],
            "pep_hits": [],
        },
    },
    "credit_limit_change": {
        "account_id": "CC-7781-2290",
        "customer": {"id": "CUST-208871", "name": "Priya Raman", "since": "2017-03-14"},
        "currency": "GBP",
        "current_limit": "5000.00",
        "requested_limit": "12000.00",
        "annual_income": "68500.00",
        "monthly_debt_payments": "1240.00",
        "utilization": 0.82,
        "missed_payments_12m": 0,
        "credit_score": 742,
        "reason": "Home renovation: kitchen refit quoted at GBP 9,800",
    },
    "contract_review": {
        "contract_id": "CTR-2026-0457",
        "title": "Master Services Agreement - Northwind Analytics Ltd",
        "counterparty": {"name": "Northwind Analytics Ltd", "country": "GB"},
        "contract_value": "360000.00",
        "currency": "GBP",
        "term_months": 36,
        "governing_law": "England and Wales",
        "clauses": [
            {
                "id": "7.2",
                "heading": "Limitation of Liability",
                "text": "The Supplier's total aggregate liability arising out of or in connection with this "
                "Agreement shall not exceed the fees paid in the three (3) months preceding the claim.",
            },
            {
                "id": "9.1",
                "heading": "Payment Terms",
                "text": "The Customer shall pay each undisputed invoice within ninety (90) days of receipt.",
            },
            {
                "id": "14.3",
                "heading": "Renewal",
                "text": "This Agreement shall renew automatically for successive periods of twenty-four (24) "
                "months unless either party gives six (6) months' written notice.",
            },
        ],
        "policy": {
            "allowed_governing_law": ["England and Wales", "Ireland"],
            "max_liability_multiple": 1.0,
            "max_payment_terms_days": 60,
            "max_auto_renewal_months": 12,
        },
    },
    "aml_alert": {
        "alert_id": "TM-ALERT-550921",
        "customer": {
            "id": "CUST-331207",
            "name": "Marco Bellini",
            "risk_rating": "medium",
            "country": "IT",
            "occupation": "Restaurant owner",
        },
        "rule_hits": [
            {
                "rule_id": "STRUCT-01",
                "description": "Cash deposits just below EUR 10,000 within 7 days",
                "score": 0.81,
            },
            {
                "rule_id": "GEO-04",
                "description": "Outgoing transfer to a high-risk jurisdiction",
                "score": 0.57,
            },
        ],
        "transactions": [
            {
                "id": "TX-88120",
                "date": "2026-11-10",
                "amount": "9500.00",
                "currency": "EUR",
                "direction": "in",
                "counterparty": "Cash deposit, Milano Centrale branch",
                "counterparty_country": "IT",
                "channel": "cash",
            },
            {
                "id": "TX-88197",
                "date": "2026-11-13",
                "amount": "9800.00",
                "currency": "EUR",
                "direction": "in",
                "counterparty": "Cash deposit, Milano Brera branch",
                "counterparty_country": "IT",
                "channel": "cash",
            },
            {
                "id": "TX-88305",
                "date": "2026-11-15",
                "amount": "21000.00",
                "currency": "USD",
                "direction": "out",
                "counterparty": "Golden Crescent Trading FZE",
                "counterparty_country": "AE",
                "channel": "swift",
            },
        ],
        "prior_alerts_12m": 1,
    },
    "kyc_review": {
        "application_id": "ONB-2026-77310",
        "applicant": {
            "type": "individual",
            "name": "Sofia Andersson",
            "date_of_birth": "1991-06-02",
            "nationality": "SE",
            "address": {
                "line1": "Drottninggatan 71",
                "city": "Stockholm",
                "postcode": "111 36",
                "country": "SE",
            },
        },
        "documents": [
            {
                "type": "passport",
                "number": "AA1234567",
                "issuing_country": "SE",
                "expires_on": "2031-04-18",
                "name_on_document": "Sofia Andersson",
                "date_of_birth_on_document": "1991-06-02",
            },
        ],
        "screening": {
            "sanctions_hits": [],
            "pep_hits": [
                {
                    "matched_name": "Sofie Andersen",
                    "score": 0.44,
                    "position": "Municipal councillor, Aarhus",
                }
            ],
            "adverse_media_hits": 0,
        },
    },
}
