"""How the case page shows a KYC review (kyc_review): headline items and sections of its data."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.cases.types.view import (
    CaseView,
    Column,
    Item,
    Section,
    humanize,
    items_of,
    pep_table,
    sanctions_table,
    table,
    text,
)

from .schema import IDENTITY_DOCUMENT, IDENTITY_DOCUMENT_TYPES, KycReview, required_documents


def present(data: dict[str, Any]) -> CaseView:
    applicant, documents = data.get("applicant", {}), data.get("documents", [])
    screening = data.get("screening", {})
    address = applicant.get("address", {})
    media = screening.get("adverse_media_hits", 0)
    hits = len(screening.get("sanctions_hits", [])) + len(screening.get("pep_hits", []))
    document_columns = (Column("Type"), Column("Number"), Column("Issued by"), Column("Expires"),
                        Column("Name on document", wrap=True), Column("Date of birth on document"))
    sections = (
        Section("Applicant", (
            *items_of(applicant, "applicant", ("type", "Type", str.capitalize), ("name", "Name", text),
                      ("date_of_birth", "Date of birth", text), ("nationality", "Nationality", text)),
            Item("Address", ", ".join(text(address.get(k)) for k in ("line1", "city", "postcode", "country")),
                 "applicant.address"),
        )),
        Section("Required documents", _required_documents(data), empty="No documents required."),
        table("Documents", "documents", documents, document_columns, _document_cells,
              empty="No documents provided."),
        sanctions_table("screening.sanctions_hits", screening.get("sanctions_hits", []), with_dob=True),
        pep_table("screening.pep_hits", screening.get("pep_hits", [])),
        Section("Adverse media", (Item("Adverse media hits", text(media), "screening.adverse_media_hits",
                                       "warn" if media else ""),)),
    )
    summary = (
        Item("Applicant", text(applicant.get("name")), "applicant.name"),
        Item("Type", text(applicant.get("type")).capitalize(), "applicant.type"),
        Item("Documents", str(len(documents)), "documents"),
        Item("Screening hits", str(hits), "screening", "warn" if hits else ""),
    )
    return CaseView(summary, sections)


def _document_cells(d: dict[str, Any]) -> tuple[str, ...]:
    return (humanize(d.get("type")), text(d.get("number")), text(d.get("issuing_country")),
            text(d.get("expires_on")), text(d.get("name_on_document")), text(d.get("date_of_birth_on_document")))


def _required_documents(data: dict[str, Any]) -> tuple[Item, ...]:
    """Each required document, and whether the application carries a valid one: an expired
    document is provided but does not count."""
    application = KycReview.model_validate(data)
    today = datetime.now(UTC).date()
    items = []
    for name in required_documents(application):
        wanted = set(IDENTITY_DOCUMENT_TYPES) if name == IDENTITY_DOCUMENT else {name}
        found = [d for d in application.documents if d.type in wanted]
        valid = [d for d in found if d.expires_on is None or d.expires_on >= today]
        shown, tone = (("Provided", "good") if valid else ("Provided, but expired", "bad") if found
                       else ("Missing", "bad"))
        items.append(Item(humanize(name), shown, "required_documents", tone))
    return tuple(items)
