"""What starts once a reviewer's decision is committed: the approved action goes to the
executor, other outcomes are told to the upstream system. Called after the commit, never before."""

from __future__ import annotations

from app.cases.models import Decision, Status
from app.execution.services import enqueue_execution
from app.execution.upstream import enqueue_notification

UPSTREAM_EVENTS = {"reject": "case.decided", "escalate": "case.decided", "request_info": "case.needs_info"}


def start_followups(case_id: int, status: str, decision: Decision) -> None:
    if status == Status.APPROVED:
        enqueue_execution(case_id)
    elif decision.kind in UPSTREAM_EVENTS:
        enqueue_notification(case_id, UPSTREAM_EVENTS[decision.kind], decision.id)
