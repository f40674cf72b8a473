"""Property tests of the lifecycle (hypothesis): whatever sequence of moves and actors is tried,
nothing reaches execution without a reviewer's approval, nobody but a reviewer approves, and a
finished case stays finished. The moves run through the real `transition` on a real case."""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.actors import Actor
from app.cases.lifecycle import TRANSITIONS, ActorNotAllowed, IllegalTransition, transition
from app.cases.models import Case, Status
from app.extensions import db

S = Status
ACTORS = {
    "system": Actor.system("tests"),
    "client": Actor("client", 1),
    "reviewer": Actor("user", 1, "reviewer"),
    "senior_reviewer": Actor("user", 2, "senior_reviewer"),
    "admin": Actor("user", 3, "admin"),
    "auditor": Actor("user", 4, "auditor"),
}
HUMAN_APPROVERS = {"reviewer", "senior_reviewer"}
FINISHED = {S.REJECTED, S.EXECUTED, S.WITHDRAWN}
STEPS = 30


def a_case(client_id: int) -> Case:
    case = Case(client_id=client_id, external_id=f"prop-{uuid.uuid4().hex}", domain="finance",
                case_type="payment_release", title="property", payload={})
    db.session.add(case)
    db.session.flush()
    return case


def next_move(data: st.DataObject, status: Status) -> tuple[str, str]:
    """Mostly a move the table offers from ``status`` (so the search gets somewhere), sometimes any
    move at all; any actor. The assertions below do not read the table."""
    offered = sorted(event for event, move in TRANSITIONS.items() if status in move.sources)
    events = offered if offered and data.draw(st.integers(0, 3)) else sorted(TRANSITIONS)
    return data.draw(st.sampled_from(events)), data.draw(st.sampled_from(sorted(ACTORS)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_sequence_reaches_execution_without_a_reviewers_approval(upstream, data):
    case = a_case(upstream.id)
    approved_by = None  # who moved the case into approved
    for _ in range(STEPS):
        before = Status(case.status)
        event, who = next_move(data, before)
        try:
            after = transition(db.session, case, event, ACTORS[who])
        except (IllegalTransition, ActorNotAllowed):
            assert Status(case.status) == before  # a refusal changes nothing
            continue
        assert before not in FINISHED, f"{event} by {who} moved a finished case ({before})"
        if after == S.APPROVED:
            assert who in HUMAN_APPROVERS, f"{who} approved a case with {event}"
            approved_by = who
        if after in (S.EXECUTING, S.EXECUTED, S.EXECUTION_FAILED):
            assert approved_by in HUMAN_APPROVERS, f"{event} reached {after} with no reviewer's approval"
    db.session.rollback()
