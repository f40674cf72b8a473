"""The queues dashboard: where the open cases stand now, and how cases were decided in the range."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.cases import policy
from app.cases.models import Case, Decision, Queue, Recommendation, Status
from app.dashboards.filters import Selection
from app.dashboards.stats import Cells, Count, Rate, day_of, percentile
from app.escalation.sla import STOPPED_STATUSES, Standing, at_risk_sql, decided_standing, overdue_sql

# Waiting for a reviewer: nobody holds the case (awaiting_second_approval: the first approver let go).
WAITING_FOR_A_REVIEWER = (Status.PENDING_REVIEW.value, Status.AI_FAILED.value,
                          Status.AWAITING_SECOND_APPROVAL.value)
# What a decision of each kind is called on the page, in the order the charts stack them.
DECISION_KINDS = {"approve": "approved", "edit": "edited", "second_approval": "second approval",
                  "reject": "rejected", "escalate": "escalated", "request_info": "information requested"}
NO_QUEUE = "(no queue)"


@dataclass(frozen=True)
class QueueRow:
    queue: str
    open: Count
    unassigned: Count
    at_risk: Count
    overdue: Count


@dataclass(frozen=True)
class DecisionDay:
    day: date
    by_kind: dict[str, Count]  # DECISION_KINDS key → decisions of that kind that day
    total: Count


@dataclass(frozen=True)
class SlaDay:
    day: date
    met: Count
    breached: Count

    @property
    def compliance(self) -> Rate:
        return Rate(self.met, self.met.value + self.breached.value)


@dataclass(frozen=True)
class QueuesDashboard:
    now: datetime
    queues: list[QueueRow]
    decisions: list[DecisionDay]
    decided: Count  # cases decided in the range
    time_to_decision_p50: float | None  # seconds
    time_to_decision_p90: float | None
    sla_days: list[SlaDay]
    sla_met: Count
    sla_breached: Count
    cells: Cells

    @property
    def sla_compliance(self) -> Rate:
        return Rate(self.sla_met, self.sla_met.value + self.sla_breached.value)


def queues_dashboard(session: Session, selection: Selection, now: datetime) -> QueuesDashboard:
    cells = Cells()
    decided = _decided_cases(session, selection)
    durations = [(stopped - created).total_seconds() for _, created, stopped, _ in decided]
    sla_days, met, breached = _sla(cells, selection, decided)
    return QueuesDashboard(
        now=now, queues=_queue_rows(session, selection, now, cells), decisions=_decisions(session, selection, cells),
        decided=cells.count("decided", (case_id for case_id, *_ in decided)),
        time_to_decision_p50=percentile(durations, 50), time_to_decision_p90=percentile(durations, 90),
        sla_days=sla_days, sla_met=met, sla_breached=breached, cells=cells)


def _queue_rows(session: Session, selection: Selection, now: datetime, cells: Cells) -> list[QueueRow]:
    """Every queue in scope, with its open cases as they stand now (the badges' clock)."""
    queues = select(Queue.id, Queue.name).order_by(Queue.name)
    if selection.queue_ids is not None:
        queues = queues.where(Queue.id.in_(sorted(selection.queue_ids)))
    names: dict[int | None, str] = dict(session.execute(queues).all())
    found: dict[int | None, dict[str, list[int]]] = {queue_id: defaultdict(list) for queue_id in names}
    rows = session.execute(select(Case.id, Case.queue_id, Case.status, Case.assignee_id,
                                  at_risk_sql(now).label("at_risk"), overdue_sql(now).label("overdue"))
                           .where(Case.status.not_in(sorted(STOPPED_STATUSES)), *selection.case_conditions()))
    for case_id, queue_id, status, assignee_id, at_risk, overdue in rows:
        where = found.setdefault(queue_id, defaultdict(list))
        names.setdefault(queue_id, NO_QUEUE)
        where["open"].append(case_id)
        if assignee_id is None and status in WAITING_FOR_A_REVIEWER:
            where["unassigned"].append(case_id)
        if at_risk:
            where["at_risk"].append(case_id)
        if overdue:
            where["overdue"].append(case_id)
    return [QueueRow(names[queue_id], *(cells.count(f"queue/{names[queue_id]}/{what}", found[queue_id][what])
                                        for what in ("open", "unassigned", "at_risk", "overdue")))
            for queue_id in sorted(found, key=lambda q: names[q])]


def _decisions(session: Session, selection: Selection, cells: Cells) -> list[DecisionDay]:
    """Decisions made each day, by kind (a blind assessment decides nothing: not counted)."""
    stmt = (select(Decision.case_id, Decision.kind, Decision.created_at)
            .join(Case, Case.id == Decision.case_id)
            .where(Decision.created_at >= selection.start, Decision.created_at < selection.end,
                   Decision.kind.in_(list(DECISION_KINDS)), policy.standing(), *selection.case_conditions()))
    if selection.filters.model:
        stmt = stmt.join(Recommendation, Recommendation.id == Decision.recommendation_id).where(
            Recommendation.model == selection.filters.model)
    if selection.filters.reviewer is not None:
        stmt = stmt.where(Decision.reviewer_id == selection.filters.reviewer)
    by_day: dict[tuple[date, str], list[int]] = defaultdict(list)
    for case_id, kind, created_at in session.execute(stmt):
        by_day[day_of(created_at), kind].append(case_id)
    days = []
    for day in selection.days:
        kinds = {kind: cells.count(f"decisions/{day}/{kind}", by_day[day, kind], len(by_day[day, kind]))
                 for kind in DECISION_KINDS}
        every = [case_id for kind in DECISION_KINDS for case_id in by_day[day, kind]]
        days.append(DecisionDay(day, kinds, cells.count(f"decisions/{day}/all", every, len(every))))
    return days


def _decided_cases(session: Session, selection: Selection) -> list[tuple[int, datetime, datetime, datetime | None]]:
    """(id, created, decided, SLA due) of the cases whose clock stopped in the range by a decision
    (withdrawn cases left out). The model filter: the model of the recommendation they were decided on."""
    stmt = (select(Case.id, Case.created_at, Case.sla_stopped_at, Case.sla_due_at)
            .where(Case.sla_stopped_at >= selection.start, Case.sla_stopped_at < selection.end,
                   Case.status != Status.WITHDRAWN.value, *selection.case_conditions()))
    if selection.filters.model:
        stmt = stmt.join(Recommendation, Recommendation.id == Case.recommendation_id).where(
            Recommendation.model == selection.filters.model)
    return [tuple(row) for row in session.execute(stmt.order_by(Case.id))]


def _sla(cells: Cells, selection: Selection, decided: list[tuple[int, datetime, datetime, datetime | None]],
         ) -> tuple[list[SlaDay], Count, Count]:
    """Per day of decision, the decided cases that had an SLA: met (decided by their due time) or breached."""
    standing: dict[tuple[date, Standing], list[int]] = defaultdict(list)
    for case_id, _, stopped, due in decided:
        if due is not None:
            standing[day_of(stopped), decided_standing(due, stopped)].append(case_id)
    days = [SlaDay(day, cells.count(f"sla/{day}/met", standing[day, Standing.MET]),
                   cells.count(f"sla/{day}/breached", standing[day, Standing.BREACHED])) for day in selection.days]
    met = cells.count("sla/met", (i for d in days for i in d.met.case_ids))
    breached = cells.count("sla/breached", (i for d in days for i in d.breached.case_ids))
    return days, met, breached
