"""Registry of case types: adding one is a module plus one line here."""

from __future__ import annotations

from typing import Any

from . import (
    aml_alert,
    contract_review,
    credit_limit_change,
    kyc_review,
    payment_release,
)
from .base import CaseType, UnknownAction

__all__ = [
    "DOMAINS",
    "REGISTRY",
    "CaseType",
    "UnknownAction",
    "UnknownCaseType",
    "get_case_type",
]

DOMAINS = ("finance", "legal", "compliance")

REGISTRY: dict[tuple[str, str], CaseType[Any]] = {
    (case_type.domain, case_type.name): case_type
    for case_type in (
        payment_release.CASE_TYPE,
        credit_limit_change.CASE_TYPE,
        contract_review.CASE_TYPE,
        aml_alert.CASE_TYPE,
        kyc_review.CASE_TYPE,
    )
}


class UnknownCaseType(LookupError):
    """No case type of that name, or not in that domain."""


def get_case_type(domain: str, case_type: str) -> CaseType[Any]:
    found = REGISTRY.get((domain, case_type))
    if found is not None:
        return found
    if domain not in DOMAINS:
        raise UnknownCaseType(
            f"unknown domain {domain!r}; allowed: {', '.join(DOMAINS)}"
        )
    in_domain = ", ".join(name for d, name in REGISTRY if d == domain)
    home = next((d for d, name in REGISTRY if name == case_type), None)
    if home is None:
        raise UnknownCaseType(
            f"unknown case type {case_type!r}; allowed in {domain!r}: {in_domain}"
        )
    raise UnknownCaseType(
        f"case type {case_type!r} belongs to domain {home!r}, not {domain!r}; allowed in {domain!r}: {in_domain}"
    )
