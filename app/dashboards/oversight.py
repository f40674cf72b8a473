"""The human-oversight dashboard: how often reviewers go along with the AI, why they override it,
whether their own blind calls match it, and who approves faster than a case can be read."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, select
from sqlalchemy.orm import Session

from app.cases import policy
from app.cases.models import Case, Decision, Recommendation
from app.dashboards.filters import Selection
from app.dashboards.stats import Cells, Count, Rate, percentile
from app.db import canonical_json
from app.review.models import CaseOpening, ReasonCode
from app.users import User

# A reviewer's first decision on a recommendation, as the agreement measures name it.
OUTCOMES = {"approve": "approved as recommended", "edit": "edited", "reject": "rejected", "escalate": "escalated"}
AGREEMENT_BY = {"case_type": "Case type", "model": "Model", "template_version": "Template version",
                "reviewer": "Reviewer"}
OVERRIDES = ("edit", "reject", "escalate")
APPROVALS = ("approve", "second_approval")  # a yes to an action as it stands
NO_REASON = "(none given)"


@dataclass(frozen=True)
class AgreementRow:
    group: str
    outcomes: dict[str, Count]  # OUTCOMES key → decisions
    total: Count

    @property
    def agreement(self) -> Rate:
        return Rate(self.outcomes["approve"], self.total.value)


@dataclass(frozen=True)
class ReasonRow:
    code: str
    label: str
    decisions: Count


@dataclass(frozen=True)
class BlindRow:
    reviewer: str
    assessments: Count
    same_action: Count
    same_action_and_parameters: Count

    @property
    def agreement(self) -> Rate:
        return Rate(self.same_action, self.assessments.value)


@dataclass(frozen=True)
class SpeedRow:
    reviewer: str
    approvals: Count
    timed: Count  # approvals of a case whose first opening by the approver is recorded
    fast: Count  # under the threshold in seconds
    fast_for_size: Count  # under the threshold in seconds per KB of case data
    median_seconds: float | None
    median_seconds_per_kb: float | None


@dataclass(frozen=True)
class OversightDashboard:
    agreement: dict[str, list[AgreementRow]]  # AGREEMENT_BY key → rows
    agreement_total: AgreementRow
    reasons: list[ReasonRow]
    blind: list[BlindRow]
    blind_total: BlindRow
    speed: list[SpeedRow]
    fast_seconds: float
    fast_seconds_per_kb: float
    cells: Cells


def oversight_dashboard(session: Session, selection: Selection) -> OversightDashboard:
    cells = Cells()
    fast_seconds, fast_seconds_per_kb = selection.filters.fast_seconds, selection.filters.fast_seconds_per_kb
    groups, total = _agreement(session, selection, cells)
    blind, blind_total = _blind(session, selection, cells)
    return OversightDashboard(
        agreement=groups, agreement_total=total, reasons=_reasons(session, selection, cells), blind=blind,
        blind_total=blind_total, speed=_speed(session, selection, cells, fast_seconds, fast_seconds_per_kb),
        fast_seconds=fast_seconds, fast_seconds_per_kb=fast_seconds_per_kb, cells=cells)


def _decisions(selection: Selection, kinds: tuple[str, ...], *columns: object) -> Select[tuple[object, ...]]:
    """Decisions of ``kinds`` on a recommendation, made in the range, on cases in the selection."""
    stmt = (select(Decision.id, Decision.case_id, Decision.kind, *columns)
            .join(Case, Case.id == Decision.case_id)
            .join(Recommendation, Recommendation.id == Decision.recommendation_id)
            .join(User, User.id == Decision.reviewer_id)
            .where(Decision.kind.in_(kinds), policy.standing(), Decision.created_at >= selection.start,
                   Decision.created_at < selection.end, *selection.case_conditions()))
    if selection.filters.model:
        stmt = stmt.where(Recommendation.model == selection.filters.model)
    if selection.filters.reviewer is not None:
        stmt = stmt.where(Decision.reviewer_id == selection.filters.reviewer)
    return stmt.order_by(Decision.id)


def _agreement(session: Session, selection: Selection, cells: Cells) -> tuple[dict[str, list[AgreementRow]],
                                                                                AgreementRow]:
    """The reviewer's first decision on each recommendation: approved as it was, edited, rejected or
    escalated; grouped by case type, model, template version and reviewer."""
    rows = session.execute(_decisions(selection, tuple(OUTCOMES), Case.case_type, Recommendation.model,
                                      Recommendation.template_version, User.email)).all()
    grouped: dict[str, dict[str, list[tuple[int, str]]]] = {by: defaultdict(list) for by in AGREEMENT_BY}
    for _, case_id, kind, case_type, model, template_version, reviewer in rows:
        for by, group in zip(AGREEMENT_BY, (case_type, model, template_version, reviewer), strict=True):
            grouped[by][group].append((case_id, kind))
    every = [(case_id, kind) for _, case_id, kind, *_ in rows]
    return ({by: [_agreement_row(cells, f"agreement/{by}/{group}", group, found)
                  for group, found in sorted(grouped[by].items())] for by in AGREEMENT_BY},
            _agreement_row(cells, "agreement/all", "All", every))


def _agreement_row(cells: Cells, key: str, group: str, decisions: list[tuple[int, str]]) -> AgreementRow:
    outcomes = {}
    for kind in OUTCOMES:
        ids = [case_id for case_id, decided in decisions if decided == kind]
        outcomes[kind] = cells.count(f"{key}/{kind}", ids, len(ids))
    return AgreementRow(group, outcomes, cells.count(key, (case_id for case_id, _ in decisions), len(decisions)))


def _reasons(session: Session, selection: Selection, cells: Cells) -> list[ReasonRow]:
    """The reason codes given with overrides (edits, rejections, escalations), most given first."""
    found: dict[str, list[int]] = defaultdict(list)
    for _, case_id, _, code in session.execute(_decisions(selection, OVERRIDES, Decision.reason_code)):
        found[code or NO_REASON].append(case_id)
    labels = dict(session.execute(select(ReasonCode.code, ReasonCode.label)).all())
    ordered = sorted(found.items(), key=lambda item: (-len(item[1]), item[0]))
    return [ReasonRow(code, labels.get(code, code), cells.count(f"reasons/{code}", ids, len(ids)))
            for code, ids in ordered]


def _blind(session: Session, selection: Selection, cells: Cells) -> tuple[list[BlindRow], BlindRow]:
    """Each blind assessment (made before the recommendation was shown) against the recommendation:
    the same action, and the same action with the same parameters (its diff is empty)."""
    rows = session.execute(_decisions(selection, ("blind_assessment",), Decision.diff, User.email)).all()
    by_reviewer: dict[str, list[tuple[int, dict[str, object]]]] = defaultdict(list)
    for _, case_id, _, diff, reviewer in rows:
        by_reviewer[reviewer].append((case_id, diff))
    every = [(case_id, diff) for _, case_id, _, diff, _ in rows]
    return ([_blind_row(cells, f"blind/{name}", name, found) for name, found in sorted(by_reviewer.items())],
            _blind_row(cells, "blind/all", "All", every))


def _blind_row(cells: Cells, key: str, reviewer: str, found: list[tuple[int, dict[str, object]]]) -> BlindRow:
    same_action = [case_id for case_id, diff in found if "action" not in diff]
    identical = [case_id for case_id, diff in found if not diff]
    return BlindRow(reviewer, cells.count(key, (case_id for case_id, _ in found), len(found)),
                    cells.count(f"{key}/same_action", same_action, len(same_action)),
                    cells.count(f"{key}/identical", identical, len(identical)))


def _speed(session: Session, selection: Selection, cells: Cells, fast_seconds: float,
           fast_seconds_per_kb: float) -> list[SpeedRow]:
    """Approvals timed from the approver's first opening of the case: those under ``fast_seconds``,
    and those under ``fast_seconds_per_kb`` for each KB (1024 bytes) of the case's data as JSON."""
    opened = and_(CaseOpening.case_id == Decision.case_id, CaseOpening.user_id == Decision.reviewer_id)
    stmt = _decisions(selection, APPROVALS, Decision.created_at, CaseOpening.opened_at, Case.payload, User.email
                      ).outerjoin(CaseOpening, opened)
    by_reviewer: dict[str, list[tuple[int, float | None, float]]] = defaultdict(list)
    for _, case_id, _, decided_at, opened_at, payload, reviewer in session.execute(stmt):
        kb = len(canonical_json(payload).encode()) / 1024
        by_reviewer[reviewer].append((case_id, _seconds(opened_at, decided_at), kb))
    rows = []
    for name, approvals in sorted(by_reviewer.items()):
        timed = [(case_id, seconds, kb) for case_id, seconds, kb in approvals if seconds is not None]
        fast = [case_id for case_id, seconds, _ in timed if seconds < fast_seconds]
        for_size = [case_id for case_id, seconds, kb in timed if seconds / kb < fast_seconds_per_kb]
        key = f"speed/{name}"
        rows.append(SpeedRow(
            name, cells.count(key, (a[0] for a in approvals), len(approvals)),
            cells.count(f"{key}/timed", (t[0] for t in timed), len(timed)),
            cells.count(f"{key}/fast", fast, len(fast)), cells.count(f"{key}/fast_for_size", for_size, len(for_size)),
            percentile([seconds for _, seconds, _ in timed], 50),
            percentile([seconds / kb for _, seconds, kb in timed], 50)))
    return rows


def _seconds(opened_at: datetime | None, decided_at: datetime) -> float | None:
    """Seconds from the first opening to the decision; None when no opening came before it."""
    if opened_at is None or opened_at > decided_at:
        return None
    return (decided_at - opened_at).total_seconds()
