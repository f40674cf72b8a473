"""Registry of case types. A case type is one folder in this package (its schema, analyzer,
presenter, prompt template and example); registering it is one line in CASE_TYPES below.
Everything else (intake, the AI runtime, the case page, the demo, the tests) finds it here."""

from __future__ import annotations

from dataclasses import replace
from importlib import import_module
from typing import Any

from .base import EVERY_DOMAIN, CaseType, UnknownAction

__all__ = [
    "CASE_TYPES",
    "DOMAINS",
    "REGISTRY",
    "CaseType",
    "UnknownAction",
    "UnknownCaseType",
    "examples",
    "get_case_type",
    "load",
    "named",
]

DOMAINS = ("finance", "legal", "compliance")

# The registered case types: one line each, the name of the type's folder in this package.
CASE_TYPES = (
    "payment_release",
    "credit_limit_change",
    "contract_review",
    "aml_alert",
    "kyc_review",
    "agent_action",
)


class UnknownCaseType(LookupError):
    """No case type of that name, or not in that domain."""


def load(folder: str) -> CaseType[Any]:
    """The CASE_TYPE that the folder (package) ``folder`` of this package defines."""
    case_type = import_module(f"{__name__}.{folder}").CASE_TYPE
    allowed = (*DOMAINS, EVERY_DOMAIN)
    if not isinstance(case_type, CaseType) or case_type.name != folder or case_type.domain not in allowed:
        raise TypeError(f"{__name__}.{folder}.CASE_TYPE must be a CaseType named {folder!r} in one of {allowed}")
    return case_type


def _index(case_types: list[CaseType[Any]]) -> dict[tuple[str, str], CaseType[Any]]:
    """By (domain, name); a type of EVERY_DOMAIN is listed once in each domain, as that domain's."""
    names = [case_type.name for case_type in case_types]
    if len(set(names)) != len(names):
        raise ValueError(f"case type names must be unique across domains: {names}")
    return {(domain, case_type.name): replace(case_type, domain=domain) for case_type in case_types
            for domain in (DOMAINS if case_type.domain == EVERY_DOMAIN else (case_type.domain,))}


REGISTRY: dict[tuple[str, str], CaseType[Any]] = _index([load(folder) for folder in CASE_TYPES])


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


def named(case_type: str) -> CaseType[Any]:
    """The registered case type called ``case_type`` (names are unique across domains)."""
    found = next((found for (_, name), found in REGISTRY.items() if name == case_type), None)
    if found is None:
        raise UnknownCaseType(f"unknown case type {case_type!r}; registered: {', '.join(n for _, n in REGISTRY)}")
    return found


def examples() -> dict[str, dict[str, Any]]:
    """Each registered type's example payload by type name (fresh copies: change them freely)."""
    return {case_type.name: case_type.example for case_type in REGISTRY.values()}
