"""The case state machine: every allowed move works, every other move is refused."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.actors import Actor
from app.audit.models import AuditEvent
from app.cases import lifecycle
from app.cases.lifecycle import TRANSITIONS, ActorNotAllowed, IllegalTransition, StaleVersion, transition
from app.cases.models import Case, Recommendation, Status
from app.extensions import db
from tests.conftest import case_body

ALL_STATES = list(Status)


def make_case(upstream, status: Status, *, with_recommendation: bool = False) -> Case:
    case_id = upstream.post_case(case_body()).get_json()["id"]
    case = db.session.get(Case, case_id)
    if with_recommendation:
        rec = Recommendation(case_id=case.id, case_version=case.version, provider="local", model="rules-v1",
                             template_version="t1", prompt_hash="0" * 64, input_hash="0" * 64, action="release",
                             parameters={}, rationale="ok", confidence=0.9, flags=[], citations=[])
        db.session.add(rec)
        db.session.flush()
        case.recommendation_id = rec.id
    case.status = status.value  # test set-up only: put the case in the state under test
    db.session.commit()
    return case


def actor_for(move: lifecycle.Move) -> Actor:
    if move.kinds:
        kind = sorted(move.kinds)[0]
        return Actor.system("test") if kind == "system" else Actor("client", 1, None, "test")
    return Actor("user", 1, sorted(move.roles)[0], "tester@example.com")


ALLOWED = [(event, source) for event, move in TRANSITIONS.items() for source in sorted(move.sources)]
REFUSED = [(event, state) for event, move in TRANSITIONS.items() for state in ALL_STATES if state not in move.sources]


@pytest.mark.parametrize(("event", "source"), ALLOWED, ids=[f"{e}-from-{s.value}" for e, s in ALLOWED])
def test_every_allowed_move_applies_bumps_version_and_audits(upstream, event, source):
    case = make_case(upstream, source, with_recommendation=True)
    before = case.version
    target = transition(db.session, case, event, actor_for(TRANSITIONS[event]), expected_version=before)
    db.session.commit()
    db.session.refresh(case)
    assert case.status == target.value
    assert case.version == before + 1
    event_row = db.session.scalars(select(AuditEvent).order_by(AuditEvent.seq.desc())).first()
    assert event_row.action == f"case.{event}"
    assert event_row.case_id == case.id
    assert event_row.data["from"] == source.value and event_row.data["to"] == target.value


@pytest.mark.parametrize(("event", "state"), REFUSED, ids=[f"{e}-from-{s.value}" for e, s in REFUSED])
def test_every_disallowed_move_is_refused_without_change(upstream, event, state):
    case = make_case(upstream, state)
    before = (case.status, case.version)
    with pytest.raises(IllegalTransition, match=f"cannot apply '{event}' to a case in '{state.value}'"):
        transition(db.session, case, event, actor_for(TRANSITIONS[event]))
    db.session.rollback()
    db.session.refresh(case)
    assert (case.status, case.version) == before


def test_terminal_states_have_no_way_out():
    for state in lifecycle.TERMINAL:
        assert not any(state in move.sources for move in TRANSITIONS.values()), state


def test_release_returns_to_ai_failed_without_recommendation(upstream):
    case = make_case(upstream, Status.IN_REVIEW)
    assert transition(db.session, case, "released", Actor.system("claims")) is Status.AI_FAILED


def test_release_returns_to_pending_review_with_recommendation(upstream):
    case = make_case(upstream, Status.IN_REVIEW, with_recommendation=True)
    assert transition(db.session, case, "released", Actor.system("claims")) is Status.PENDING_REVIEW


@pytest.mark.parametrize("event", sorted(TRANSITIONS))
def test_auditor_may_make_no_move(upstream, event):
    case = make_case(upstream, sorted(TRANSITIONS[event].sources)[0], with_recommendation=True)
    with pytest.raises(ActorNotAllowed, match="role 'auditor' may not"):
        transition(db.session, case, event, Actor("user", 9, "auditor", "audit@example.com"))


@pytest.mark.parametrize(("event", "actor"), [
    ("approved", Actor.system("worker")),
    ("approved", Actor("client", 1, None, "upstream")),
    ("analysis_started", Actor("user", 1, "reviewer", "r@example.com")),
    ("withdrawn", Actor("user", 1, "admin", "a@example.com")),
    ("execution_retried", Actor("user", 1, "reviewer", "r@example.com")),
    ("second_approval", Actor("user", 1, "reviewer", "r@example.com")),
])
def test_wrong_actor_is_refused(upstream, event, actor):
    case = make_case(upstream, sorted(TRANSITIONS[event].sources)[0])
    with pytest.raises(ActorNotAllowed):
        transition(db.session, case, event, actor)


def test_stale_expected_version_is_refused(upstream):
    case = make_case(upstream, Status.RECEIVED)
    with pytest.raises(StaleVersion, match="is at version 1, not 0"):
        transition(db.session, case, "analysis_started", Actor.system("worker"), expected_version=0)
    assert case.status == Status.RECEIVED.value


def test_concurrent_writer_is_refused_not_overwritten(app, upstream):
    case_id = make_case(upstream, Status.RECEIVED).id
    db.session.remove()
    with Session(db.engine, expire_on_commit=False) as mine:
        stale = mine.get(Case, case_id)
        mine.commit()  # our copy stays in memory at version 1
        with Session(db.engine) as other:  # another process moves the case meanwhile
            transition(other, other.get(Case, case_id), "analysis_started", Actor.system("worker-2"))
            other.commit()
        with pytest.raises(StaleVersion, match="changed by someone else"):
            transition(mine, stale, "withdrawn", Actor("client", upstream.id, None, "upstream"))
        mine.rollback()
    case = db.session.get(Case, case_id)
    assert (case.status, case.version) == (Status.ANALYZING.value, 2)


def test_racing_threads_produce_exactly_one_move(app, upstream):
    case_id = make_case(upstream, Status.RECEIVED).id
    db.session.remove()
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def attempt() -> None:
        barrier.wait()
        with app.app_context(), Session(db.engine) as session:
            case = session.get(Case, case_id)
            try:
                transition(session, case, "analysis_started", Actor.system("worker"))
                session.commit()
                outcomes.append("moved")
            except (StaleVersion, IllegalTransition):
                session.rollback()
                outcomes.append("refused")

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["moved", "refused", "refused", "refused"]
    events = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "case.analysis_started")).all()
    assert len(events) == 1
