"""The data of an onboarding application (kyc_review) and its actions' parameters."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal, get_args

from pydantic import Field

from app.cases.types.base import (
    ConsistencyRule,
    Count,
    Country,
    NonEmptyStr,
    NoParams,
    PepHit,
    Reason,
    SanctionsHit,
    ShortText,
    Strict,
)

IdentityDocumentType = Literal["passport", "national_id", "driving_licence"]
DocumentType = Literal[
    IdentityDocumentType, "proof_of_address", "company_registration", "ubo_declaration"
]
# In required_documents, the token "identity_document" is met by any one of these.
IDENTITY_DOCUMENT = "identity_document"
IDENTITY_DOCUMENT_TYPES: tuple[str, ...] = get_args(IdentityDocumentType)


class Address(Strict):
    line1: ShortText
    city: ShortText
    postcode: NonEmptyStr
    country: Country


class Applicant(Strict):
    type: Literal["individual", "business"]
    name: ShortText
    date_of_birth: date | None = None
    nationality: Country
    address: Address


class Document(Strict):
    type: DocumentType
    number: NonEmptyStr
    issuing_country: Country
    expires_on: date | None = None
    name_on_document: ShortText
    date_of_birth_on_document: date | None = None


class KycSanctionsHit(SanctionsHit):
    date_of_birth: date | None = None


class Screening(Strict):
    sanctions_hits: list[KycSanctionsHit]
    pep_hits: list[PepHit]
    adverse_media_hits: Count


class KycReview(Strict):
    application_id: NonEmptyStr
    applicant: Applicant
    documents: list[Document]
    screening: Screening
    required_documents: list[NonEmptyStr] | None = None


class RequestDocuments(Strict):
    documents: Annotated[list[NonEmptyStr], Field(min_length=1)]


def required_documents(data: KycReview) -> list[str]:
    """The documents the application must carry: as given, else the default for the applicant type."""
    if data.required_documents is not None:
        return list(data.required_documents)
    if data.applicant.type == "individual":
        return [IDENTITY_DOCUMENT, "proof_of_address"]
    return ["company_registration", "ubo_declaration", "proof_of_address"]


def amount(data: KycReview) -> None:
    """An onboarding application has no amount at stake."""
    return None


ACTIONS = {
    "approve_onboarding": NoParams,
    "request_documents": RequestDocuments,
    "reject_onboarding": Reason,
}

# Enhanced due diligence a PEP match calls for: the evidence asked for before a senior approves.
EDD_DOCUMENTS = ("source_of_wealth", "source_of_funds")

# The analyzer's hard flags and the actions each rules out: a sanctions match is refused; a possible
# one, a missing or expired document or a PEP match (enhanced due diligence and senior-management
# approval first) never onboarded; a sanctioned or FATF high-risk nationality or residence is always shown.
HARD_FLAGS = {
    "sanctions_match": frozenset({"approve_onboarding", "request_documents"}),
    "possible_sanctions_match": frozenset({"approve_onboarding"}),
    "missing_document": frozenset({"approve_onboarding"}),
    "pep_match": frozenset({"approve_onboarding"}),
    "expired_document": frozenset({"approve_onboarding"}),
    "sanctioned_country": frozenset(),
    "high_risk_country": frozenset(),
}

# What an analysis that takes a ruled-out action is corrected to (app.cases.types.base.ConsistencyRule).
CONSISTENCY_RULES = (
    ConsistencyRule("sanctions_match", "reject_onboarding", "a confirmed sanctions match is never onboarded."),
    ConsistencyRule("possible_sanctions_match", "request_documents",
                    "a potential sanctions match not yet dispositioned cannot be onboarded; an identity document"
                    " with a date of birth confirms or excludes it.", parameters={"documents": ["identity_document"]}),
    ConsistencyRule("pep_match", "request_documents",
                    "a PEP match requires enhanced due diligence and senior-management approval before onboarding.",
                    parameters={"documents": list(EDD_DOCUMENTS)}),
    ConsistencyRule("missing_document", "request_documents",
                    "an application is not onboarded while a required document is missing.",
                    parameters={"documents": ["required_documents"]}),
    ConsistencyRule("expired_document", "request_documents",
                    "an application is not onboarded on an expired document.",
                    parameters={"documents": ["valid_replacement_document"]}),
)
