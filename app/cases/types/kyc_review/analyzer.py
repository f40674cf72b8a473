"""The local analyzer of kyc_review: deterministic, no network; what it concludes from the data."""

from __future__ import annotations

from datetime import date

from app.cases.types.base import Analysis, NoParams, Reason
from app.cases.types.signals import (
    NAME_MATCH,
    Signal,
    conclude,
    country_signal,
    describe,
    doubts,
    loc,
    margin_confidence,
    name_similarity,
    risk_score,
)

from .schema import (
    EDD_DOCUMENTS,
    IDENTITY_DOCUMENT,
    IDENTITY_DOCUMENT_TYPES,
    Document,
    KycReview,
    RequestDocuments,
    required_documents,
)

# Whose name each document must carry: the applicant's (a business's identity documents and UBO
# declaration name other people, so they are not compared).
NAME_CHECKED = {
    "individual": frozenset({*IDENTITY_DOCUMENT_TYPES, "proof_of_address"}),
    "business": frozenset({"company_registration", "proof_of_address"}),
}
PEP_MATCH = 0.8  # screening score from which a PEP hit whose name agrees is taken as a match
MIDDLE_BAND = (0.25, 0.6)  # combined risk of a complete application where onboarding is a judgement call


def _satisfies(document: Document, requirement: str) -> bool:
    return document.type == requirement or (
        requirement == IDENTITY_DOCUMENT and document.type in IDENTITY_DOCUMENT_TYPES
    )


def _document_problems(data: KycReview, index: int, today: date) -> list[tuple[Signal, float]]:
    """Why one document cannot be accepted, each reason with how clear-cut it is."""
    doc, applicant = data.documents[index], data.applicant
    path = loc("documents", index)
    problems = []
    if doc.expires_on and doc.expires_on < today:
        detail = f"{doc.type} {doc.number} expired on {doc.expires_on}"
        problems.append((Signal("expired_document", 0.3, detail, (f"{path}.expires_on",)), 0.9))
    similarity = name_similarity(doc.name_on_document, applicant.name)
    if doc.type in NAME_CHECKED[applicant.type] and similarity < NAME_MATCH:
        detail = f"name on {doc.type} '{doc.name_on_document}' does not match '{applicant.name}'"
        detail += f" (similarity {similarity:.2f})"
        paths = (f"{path}.name_on_document", "applicant.name")
        clear = margin_confidence(similarity, NAME_MATCH, 0.3)
        problems.append((Signal("name_mismatch", 0.4, detail, paths), clear))
    born = doc.date_of_birth_on_document
    if applicant.date_of_birth and born and born != applicant.date_of_birth:
        detail = f"date of birth on {doc.type} {born} differs from the declared {applicant.date_of_birth}"
        paths = (f"{path}.date_of_birth_on_document", "applicant.date_of_birth")
        problems.append((Signal("dob_mismatch", 0.5, detail, paths), 0.85))
    if doc.type == "proof_of_address" and doc.issuing_country != applicant.address.country:
        detail = f"proof of address issued in {doc.issuing_country}, address in {applicant.address.country}"
        paths = (f"{path}.issuing_country", "applicant.address.country")
        problems.append((Signal("address_country_mismatch", 0.3, detail, paths), 0.85))
    return problems


def _documents(data: KycReview, today: date) -> tuple[list[str], list[tuple[Signal, float]]]:
    """The required documents not validly on file, and the problems that explain them."""
    problems = [_document_problems(data, index, today) for index in range(len(data.documents))]
    valid = [doc for doc, found in zip(data.documents, problems, strict=True) if not found]
    wanted = [req for req in required_documents(data) if not any(_satisfies(doc, req) for doc in valid)]
    absent = [req for req in wanted if not any(_satisfies(doc, req) for doc in data.documents)]
    reasons = [problem for found in problems for problem in found]
    if absent:
        paths = ("documents", *(["required_documents"] if data.required_documents is not None else []))
        reasons.append((Signal("missing_document", 0.3, f"missing {', '.join(absent)}", paths), 0.9))
    return wanted, reasons


def _dates_of_birth(data: KycReview) -> set[date]:
    """The individual applicant's dates of birth, declared and on documents (none for a business)."""
    if data.applicant.type == "business":
        return set()
    found = {data.applicant.date_of_birth, *(doc.date_of_birth_on_document for doc in data.documents)}
    return {born for born in found if born}


def _sanctions_signals(data: KycReview) -> list[Signal]:
    """Each hit: a match (name and date of birth agree), possible (name agrees, no dates to compare), or excluded."""
    signals = []
    born = _dates_of_birth(data)
    for index, hit in enumerate(data.screening.sanctions_hits):
        similarity = name_similarity(hit.matched_name, data.applicant.name)
        detail = f"{hit.list} entry '{hit.matched_name}' (score {hit.score:.2f}, name similarity {similarity:.2f}"
        paths = (loc("screening", "sanctions_hits", index), "applicant.name")
        if similarity < NAME_MATCH:
            signals.append(Signal("sanctions_hit_excluded", 0.0, f"{detail}, another name)", paths))
        elif hit.date_of_birth and born:
            agrees = hit.date_of_birth in born
            flag, weight = ("sanctions_match", 0.95) if agrees else ("sanctions_hit_excluded", 0.0)
            detail += f", {'same' if agrees else 'other'} date of birth {hit.date_of_birth})"
            signals.append(Signal(flag, weight, detail, paths))
        else:
            signals.append(Signal("possible_sanctions_match", 0.6, f"{detail}, no dates of birth to compare)", paths))
    return signals


def _risk_signals(data: KycReview) -> list[Signal]:
    """PEP, adverse media and country signals: they call for enhanced due diligence, not a refusal."""
    signals = []
    for index, pep in enumerate(data.screening.pep_hits):
        similarity = name_similarity(pep.matched_name, data.applicant.name)
        detail = f"PEP hit '{pep.matched_name}'{f' ({pep.position})' if pep.position else ''}, score {pep.score:.2f}"
        paths = (loc("screening", "pep_hits", index), "applicant.name")
        if pep.score >= PEP_MATCH and similarity >= NAME_MATCH:
            detail += ": enhanced due diligence and senior-management approval required"
            signals.append(Signal("pep_match", 0.35, detail, paths))
        else:
            signals.append(Signal("pep_hit_discounted", 0.0, f"{detail}, name similarity {similarity:.2f}", paths))
    media = data.screening.adverse_media_hits
    if media:
        weight = 0.3 if media >= 3 else 0.15
        detail = f"{media} adverse media hit(s)"
        signals.append(Signal("adverse_media", weight, detail, ("screening.adverse_media_hits",)))
    countries = [("nationality", data.applicant.nationality, "applicant.nationality"),
                 ("residence", data.applicant.address.country, "applicant.address.country")]
    signals += [country_signal(country, role, [path]) for role, country, path in countries]
    return [signal for signal in signals if signal]


def _refuse(hits: list[Signal], signals: list[Signal], paths: list[str], *, confirmed: bool) -> Analysis:
    reason = f"{'Confirmed' if confirmed else 'Unresolved possible'} sanctions match: {describe(hits)}."
    summary = (
        "Reject onboarding: a sanctions list entry matches the applicant's name and date of birth."
        if confirmed
        else "Reject onboarding: a sanctions list entry matches the applicant's name and nothing on file excludes it;"
        " compliance must clear it first."
    )
    confidence = 0.9 if confirmed else 0.55
    return conclude("reject_onboarding", Reason(reason=reason), summary, signals, confidence=confidence, paths=paths)


def analyze(data: KycReview, *, today: date | None = None) -> Analysis:
    """Reject a sanctions match, request what is missing or invalid, else approve (flagging any EDD need)."""
    wanted, problems = _documents(data, today or date.today())
    sanctions = _sanctions_signals(data)
    signals = [*sanctions, *(signal for signal, _ in problems), *_risk_signals(data)]
    paths = ["applicant.name", "documents", "screening.sanctions_hits"]
    matches = [signal for signal in sanctions if signal.flag == "sanctions_match"]
    possible = [signal for signal in sanctions if signal.flag == "possible_sanctions_match"]
    if matches:
        return _refuse(matches, signals, paths, confirmed=True)
    if possible and (data.applicant.type == "business" or _dates_of_birth(data)):
        # The list entries carry no date of birth, or there is none to compare: nothing settles them.
        return _refuse(possible, signals, paths, confirmed=False)
    uncertain = [] if not possible else ["missing evidence: no date of birth to confirm or exclude the possible"
                                         " sanctions match"]
    if possible and IDENTITY_DOCUMENT not in wanted:
        wanted.append(IDENTITY_DOCUMENT)  # its date of birth will confirm or exclude the hit
    if any(signal.flag == "pep_match" for signal in signals):
        # A PEP is onboarded only after enhanced due diligence and a senior manager's approval.
        wanted += [document for document in EDD_DOCUMENTS if document not in wanted]
    if wanted:
        summary = f"Request documents: {', '.join(wanted)} missing, expired or not acceptable."
        # Nothing invalid on file: a PEP's due diligence (a plain rule) or a possible hit (capped as uncertain).
        confidence = min((clear for _, clear in problems), default=0.85)
        return conclude("request_documents", RequestDocuments(documents=wanted), summary, signals,
                        confidence=confidence, paths=paths, uncertain=uncertain)
    risk = risk_score(signals)
    summary = f"Approve onboarding: required documents valid, no sanctions match, risk {risk:.2f}."
    confidence = margin_confidence(risk, 1.0, 1.0)
    return conclude("approve_onboarding", NoParams(), summary, signals, confidence=confidence, paths=paths,
                    uncertain=doubts(risk, MIDDLE_BAND, signals))
