"""Read-only inbox queries: queue counts and one page of a queue, fast at 100,000 cases.

The queue page finds the ids of one page from the index ``ix_cases_inbox (queue_id, status,
priority, sla_due_at)`` (see `inbox_order_ids`), then loads only those rows and only the columns
a list shows (never the JSON payload), and counts at most ``COUNT_CAP + 1`` matching cases: a page
costs about the same at 1,000 and at 100,000 cases.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    Text,
    bindparam,
    case,
    cast,
    func,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from app.cases import policy
from app.cases.models import Case, Priority, Queue, Recommendation, Status
from app.cases.types import REGISTRY
from app.db import utcnow
from app.escalation.sla import Standing, at_risk_sql, overdue_sql, standing
from app.users import User

S = Status
COUNT_CAP = 1000
MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 25

WITH_REVIEWERS = (S.PENDING_REVIEW, S.AI_FAILED, S.IN_REVIEW, S.AWAITING_SECOND_APPROVAL)
STATUS_GROUPS: dict[str, tuple[Status, ...]] = {
    "open": WITH_REVIEWERS,
    **{s.value: (s,) for s in (*WITH_REVIEWERS, S.NEEDS_INFO)},
    "processing": (S.RECEIVED, S.ANALYZING),
    "decided": (S.APPROVED, S.REJECTED, S.EXECUTING, S.EXECUTED, S.EXECUTION_FAILED, S.RESPONDED, S.EXPIRED),
    "withdrawn": (S.WITHDRAWN,),
    "all": tuple(Status),
}
FLAGS = ("contradicts_screening", "prompt_injection", "unverified_citation", "disagreement", "budget_fallback",
         "provider_fallback")


# --- My queues -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueSummary:
    queue: Queue
    open: int = 0
    mine: int = 0
    overdue: int = 0
    at_risk: int = 0


def queue_summaries(session: Session, user: User, queues: list[Queue]) -> list[QueueSummary]:
    """Open / mine / overdue / at-risk counts of each queue, in one grouped query."""
    if not queues:
        return []
    now = utcnow()
    rows = session.execute(
        select(
            Case.queue_id,
            func.count(),
            _count_if(Case.assignee_id == user.id),
            _count_if(overdue_sql(now)),
            _count_if(at_risk_sql(now)),
        )
        .where(Case.queue_id.in_([q.id for q in queues]), Case.status.in_([s.value for s in WITH_REVIEWERS]))
        .group_by(Case.queue_id)
    ).all()
    counts = {row[0]: row[1:] for row in rows}
    return [QueueSummary(q, *(int(n or 0) for n in counts.get(q.id, ()))) for q in queues]


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.sum(case((condition, 1), else_=0))


# --- One page of a queue --------------------------------------------------------------------------


@dataclass(frozen=True)
class Sort:
    label: str
    descending: bool  # the natural direction, e.g. the highest priority first


SORTS: dict[str, Sort] = {
    "priority": Sort("Priority", True),
    "sla": Sort("SLA due", False),
    "age": Sort("Age", False),  # oldest first
    "amount": Sort("Amount", True),
    "confidence": Sort("AI confidence", False),  # least confident first
}
SORT_COLUMNS: dict[str, Any] = {
    "priority": Case.priority,
    "sla": Case.sla_due_at,
    "age": Case.created_at,
    "amount": Case.amount,
    "confidence": Recommendation.confidence,
}


@dataclass(frozen=True)
class InboxFilters:
    status: str = "open"
    case_type: str = ""
    flag: str = ""
    assignee: str = "anyone"
    sla: str = "any"
    q: str = ""
    sort: str = "priority"
    direction: str = ""  # "asc" | "desc" | "" (the sort's natural direction)
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE

    @property
    def descending(self) -> bool:
        return SORTS[self.sort].descending if not self.direction else self.direction == "desc"

    @property
    def is_filtered(self) -> bool:
        defaults = InboxFilters()
        return any(getattr(self, name) != getattr(defaults, name)
                   for name in ("status", "case_type", "flag", "assignee", "sla", "q"))

    def args(self, **changes: Any) -> dict[str, Any]:
        """Query-string arguments of these filters with ``changes``, omitting defaults."""
        changed = replace(self, **changes)
        defaults = InboxFilters()
        return {URL_NAMES.get(name, name): getattr(changed, name) for name in self.__dataclass_fields__
                if getattr(changed, name) != getattr(defaults, name)}


URL_NAMES = {"direction": "dir"}


@dataclass(frozen=True)
class InboxRow:
    id: int
    external_id: str
    title: str
    case_type: str
    status: str
    priority: int
    amount: Decimal | None
    currency: str | None
    created_at: datetime
    sla_due_at: datetime | None
    sla_paused_at: datetime | None
    assignee_id: int | None
    assignee_name: str | None
    action: str | None
    confidence: float | None
    flags: list[str] = field(default_factory=list)
    sla: Standing = Standing.NONE
    final_action: str | None = None  # approved for delivery; None until then (and for rejected cases)


@dataclass(frozen=True)
class InboxPage:
    rows: list[InboxRow]
    filters: InboxFilters
    has_next: bool
    total: int  # capped at COUNT_CAP + 1

    @property
    def total_label(self) -> str:
        return f"{COUNT_CAP:,}+" if self.total > COUNT_CAP else f"{self.total:,}"

    @property
    def first_index(self) -> int:
        return (self.filters.page - 1) * self.filters.per_page + 1 if self.rows else 0

    @property
    def last_index(self) -> int:
        return self.first_index + len(self.rows) - 1 if self.rows else 0


# The action an approved case stands on: a decided case shows it, not the AI's proposal.
FINAL_ACTION = policy.approved_action_column().label("final_action")
LIST_COLUMNS = (
    Case.id, Case.external_id, Case.title, Case.case_type, Case.status, Case.priority, Case.amount, Case.currency,
    Case.created_at, Case.sla_due_at, Case.sla_paused_at, Case.assignee_id, User.name.label("assignee_name"),
    Recommendation.action, Recommendation.confidence, Recommendation.flags, FINAL_ACTION,
    Case.sla_notified_pct, Case.sla_next_at, Case.sla_stopped_at,
)


def inbox_page(session: Session, user: User, queue: Queue, filters: InboxFilters) -> InboxPage:
    """One page of a queue: the ids first (from the index), then the rows of just those ids."""
    per_page = max(1, min(filters.per_page, MAX_PER_PAGE))
    filters = replace(filters, per_page=per_page, page=max(1, filters.page))
    shape = Shape.of(filters)
    params = _params(user, queue, filters)
    ids = list(session.scalars(_ids_statement(shape), params))
    rows = _rows(session, ids[:per_page])
    has_next = len(ids) > per_page
    total = len(rows)
    if filters.page > 1 or has_next:  # a single partial page needs no count
        total = session.scalar(_count_statement(shape), params) or 0
    return InboxPage(rows, filters, has_next, total)


@dataclass(frozen=True)
class Shape:
    """What a page's SQL depends on, apart from values: one statement is built per shape and reused
    with bound parameters (building a statement costs more than running it)."""

    statuses: tuple[Status, ...]
    case_type: bool
    flag: bool
    assignee: str
    sla: str
    search: bool
    sort: str
    descending: bool

    @classmethod
    def of(cls, filters: InboxFilters) -> Shape:
        return cls(STATUS_GROUPS.get(filters.status, WITH_REVIEWERS), bool(filters.case_type), filters.flag in FLAGS,
                   filters.assignee, filters.sla, bool(filters.q), filters.sort, filters.descending)

    @property
    def joins_recommendation(self) -> bool:
        return self.flag or self.sort == "confidence"


def _params(user: User, queue: Queue, filters: InboxFilters) -> dict[str, Any]:
    now = utcnow()
    offset = (filters.page - 1) * filters.per_page
    return {
        "queue_id": queue.id, "user_id": user.id, "case_type": filters.case_type, "q": filters.q,
        "flag_like": f'%"{escape_like(filters.flag)}"%', "q_like": f"%{escape_like(filters.q.lower())}%",
        "now": now, "cap": COUNT_CAP + 1,
        "offset": offset, "limit": filters.per_page + 1, "reach": offset + filters.per_page + 1,
    }


def escape_like(text: str) -> str:
    """``text`` matched literally by LIKE ... ESCAPE '/'."""
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


def _conditions(shape: Shape) -> list[ColumnElement[bool]]:
    """The filters as SQL conditions on bound parameters (the status group is applied by the caller)."""
    conditions: list[ColumnElement[bool]] = [Case.queue_id == bindparam("queue_id")]
    if shape.case_type:
        conditions.append(Case.case_type == bindparam("case_type"))
    if shape.flag:
        # Flags come from a closed vocabulary; the JSON text holds each one quoted.
        conditions.append(cast(Recommendation.flags, Text).like(bindparam("flag_like"), escape="/"))
    if shape.assignee == "me":
        conditions.append(Case.assignee_id == bindparam("user_id"))
    elif shape.assignee == "unassigned":
        conditions.append(Case.assignee_id.is_(None))
    if shape.sla == "overdue":
        conditions.append(overdue_sql(bindparam("now")))
    elif shape.sla == "at_risk":
        conditions.append(at_risk_sql(bindparam("now")))
    if shape.search:
        conditions.append(or_(Case.external_id == bindparam("q"),
                              func.lower(Case.title).like(bindparam("q_like"), escape="/")))
    return conditions


def _base(shape: Shape, *columns: Any) -> Select[Any]:
    """``columns`` of the cases that match, joined to their recommendation only when needed."""
    stmt = select(*columns).select_from(Case)
    if shape.joins_recommendation:
        stmt = stmt.outerjoin(Recommendation, Recommendation.id == Case.recommendation_id)
    return stmt.where(*_conditions(shape))


def _in_statuses(shape: Shape) -> ColumnElement[bool]:
    return Case.status.in_([s.value for s in shape.statuses])


@functools.lru_cache(maxsize=256)
def _ids_statement(shape: Shape) -> Select[Any]:
    offset, limit = bindparam("offset", type_=Integer), bindparam("limit", type_=Integer)
    if shape.sort == "priority" and shape.descending:
        base = _base(shape, Case.id, Case.priority, Case.sla_due_at)
        return inbox_order_ids(base, shape.statuses, offset=offset, limit=limit,
                               reach=bindparam("reach", type_=Integer))
    column = SORT_COLUMNS[shape.sort]
    ordered = (column.desc() if shape.descending else column.asc()).nulls_last()
    then_due = [Case.sla_due_at.asc().nulls_last()] if shape.sort == "priority" else []
    stmt = _base(shape, Case.id).where(_in_statuses(shape))
    return stmt.order_by(ordered, *then_due, Case.id.asc()).offset(offset).limit(limit)


@functools.lru_cache(maxsize=256)
def _count_statement(shape: Shape) -> Select[Any]:
    """How many cases match, counting no further than ``cap``."""
    limited = _base(shape, Case.id).where(_in_statuses(shape)).limit(bindparam("cap", type_=Integer)).subquery()
    return select(func.count()).select_from(limited)


Limit = int | ColumnElement[int]


def inbox_order_ids(base: Select[Any], statuses: Iterable[Status], *, offset: Limit = 0, limit: Limit,
                    reach: Limit | None = None) -> Select[Any]:
    """Ids of the cases ``base`` selects (``Case.id, Case.priority, Case.sla_due_at``), in inbox order:
    highest priority first, then soonest SLA due (none last), then oldest id.

    A plain ORDER BY sorts every open case of the queue. Here each (status, priority) pair is a
    range of ``ix_cases_inbox`` already ordered by due time, so each part reads at most ``reach``
    (``offset + limit``) entries and the merge sorts a few hundred rows, however large the queue.
    """
    if reach is None:
        if not isinstance(offset, int) or not isinstance(limit, int):
            raise TypeError("pass reach (offset + limit) when offset or limit is an SQL expression")
        reach = offset + limit
    parts = []
    for status in statuses:
        for priority in sorted(Priority, reverse=True):
            same = base.where(Case.status == status.value, Case.priority == int(priority))
            parts.append(same.where(Case.sla_due_at.is_not(None)).order_by(Case.sla_due_at, Case.id).limit(reach))
            parts.append(same.where(Case.sla_due_at.is_(None)).order_by(Case.id).limit(reach))
    # Each part as a subquery: SQLite allows no ORDER BY / LIMIT on the members of a UNION.
    merged = union_all(*(select(part.subquery()) for part in parts)).subquery()
    order = (merged.c.priority.desc(), merged.c.sla_due_at.asc().nulls_last(), merged.c.id.asc())
    return select(merged.c.id).order_by(*order).offset(offset).limit(limit)


def _rows(session: Session, ids: list[int]) -> list[InboxRow]:
    if not ids:
        return []
    stmt = (select(*LIST_COLUMNS).select_from(Case)
            .outerjoin(Recommendation, Recommendation.id == Case.recommendation_id)
            .outerjoin(User, User.id == Case.assignee_id)
            .where(Case.id.in_(ids)))
    now = utcnow()
    found = {r.id: _row(r, now) for r in session.execute(stmt)}
    return [found[i] for i in ids if i in found]


def _row(r: Any, now: datetime) -> InboxRow:
    return InboxRow(
        r.id, r.external_id, r.title, r.case_type, r.status, r.priority, r.amount, r.currency, r.created_at,
        r.sla_due_at, r.sla_paused_at, r.assignee_id, r.assignee_name, r.action, r.confidence, list(r.flags or []),
        standing(r.status, r.sla_due_at, r.sla_paused_at, r.sla_notified_pct, r.sla_next_at, r.sla_stopped_at,
                     now), r.final_action,
    )


def case_types_in(queue: Queue) -> list[str]:
    """The case types a queue can hold (those of its domain), for the filter select."""
    return sorted(name for domain, name in REGISTRY if domain == queue.domain)
