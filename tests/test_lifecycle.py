"""The case state machine against a matrix written out by hand from the product rules
(README, "Case lifecycle"): every allowed move works and lands where the rules
say, every other move is refused, and only the actors the rules name may make each move."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.actors import Actor
from app.audit.models import AuditEvent
from app.cases.lifecycle import TRANSITIONS, ActorNotAllowed, IllegalTransition, StaleVersion, transition
from app.cases.models import Case, Recommendation, Status
from app.extensions import db
from tests.conftest import case_body

S = Status
CODES = {
    "rcv": S.RECEIVED, "ana": S.ANALYZING, "pnd": S.PENDING_REVIEW, "aif": S.AI_FAILED, "inr": S.IN_REVIEW,
    "aw2": S.AWAITING_SECOND_APPROVAL, "nin": S.NEEDS_INFO, "apr": S.APPROVED, "rej": S.REJECTED,
    "exg": S.EXECUTING, "exd": S.EXECUTED, "exf": S.EXECUTION_FAILED, "wdn": S.WITHDRAWN,
    "rsp": S.RESPONDED, "exp": S.EXPIRED,
}
CODE_OF = {status: code for code, status in CODES.items()}

# Each event (row) from each status (column): the status it leads to, or "-" where it is refused.
# "pnd/aif": back to an inbox, pending_review when the case has an AI recommendation, else ai_failed.
# Not written from app/cases/lifecycle.py: a wrong entry there must fail here.
MATRIX = """
event                  rcv  ana  pnd      aif      inr      aw2  nin  apr  rej  exg  exd  exf  wdn  rsp  exp
analysis_started       ana  -    -        -        -        -    -    -    -    -    -    -    -    -    -
recommendation_stored  -    pnd  -        -        -        -    -    -    -    -    -    -    -    -    -
analysis_failed        -    aif  -        -        -        -    -    -    -    -    -    -    -    -    -
analysis_retried       -    -    -        ana      -        -    -    -    -    -    -    -    -    -    -
claimed                -    -    inr      inr      -        -    -    -    -    -    -    -    -    -    -
assigned               -    -    inr      inr      inr      -    -    -    -    -    -    -    -    -    -
released               -    -    -        -        pnd/aif  -    -    -    -    -    -    -    -    -    -
approved               -    -    -        -        apr      -    -    -    -    -    -    -    -    -    -
first_approval         -    -    -        -        aw2      -    -    -    -    -    -    -    -    -    -
second_approval        -    -    -        -        -        apr  -    -    -    -    -    -    -    -    -
approval_undone        -    -    -        -        -        -    -    inr  -    -    -    -    -    -    -
rejected               -    -    -        -        rej      rej  -    -    -    -    -    -    -    -    -
info_requested         -    -    -        -        nin      -    -    -    -    -    -    -    -    -    -
info_received          -    -    -        -        -        -    ana  -    -    -    -    -    -    -    -
escalated              -    -    pnd/aif  pnd/aif  pnd/aif  -    -    -    -    -    -    -    -    -    -
execution_started      -    -    -        -        -        -    -    exg  -    -    -    -    -    -    -
executed               -    -    -        -        -        -    -    -    -    exd  -    -    -    -    -
execution_failed       -    -    -        -        -        -    -    -    -    exf  -    -    -    -    -
execution_retried      -    -    -        -        -        -    -    -    -    -    -    exg  -    -    -
withdrawn              wdn  wdn  wdn      wdn      wdn      wdn  wdn  -    -    -    -    -    -    -    -
responded              -    -    -        -        rsp      -    -    -    -    -    -    -    -    -    -
expired                exp  exp  exp      exp      exp      exp  exp  exp  -    -    -    -    -    -    -
"""

# Who may make each move: "x" where that actor may, "-" where it is refused.
ACTORS = """
event                  system  client  reviewer  senior_reviewer  admin  auditor
analysis_started       x       -       -         -                -      -
recommendation_stored  x       -       -         -                -      -
analysis_failed        x       -       -         -                -      -
analysis_retried       x       -       x         x                x      -
claimed                -       -       x         x                -      -
assigned               -       -       -         x                x      -
released               x       -       x         x                x      -
approved               -       -       x         x                -      -
first_approval         -       -       x         x                -      -
second_approval        -       -       -         x                -      -
approval_undone        -       -       x         x                -      -
rejected               -       -       x         x                -      -
info_requested         -       -       x         x                -      -
info_received          -       x       -         -                -      -
escalated              x       -       x         x                -      -
execution_started      x       -       -         -                -      -
executed               x       -       -         -                -      -
execution_failed       x       -       -         -                -      -
execution_retried      -       -       -         -                x      -
withdrawn              -       x       -         -                -      -
responded              -       -       x         x                -      -
expired                x       -       -         -                -      -
"""


def parse(table: str) -> tuple[list[str], dict[str, dict[str, str]]]:
    header, *rows = (line.split() for line in table.strip().splitlines())
    columns = header[1:]
    assert all(len(row) == len(header) for row in rows), "a row with a missing or extra cell"
    return columns, {row[0]: dict(zip(columns, row[1:], strict=True)) for row in rows}


COLUMNS, EXPECTED = parse(MATRIX)
ACTOR_NAMES, MAY = parse(ACTORS)
ACTOR_OF = {
    "system": Actor.system("test"),
    "client": Actor("client", 1, None, "upstream"),
    **{role: Actor("user", 1, role, f"{role}@example.com")
       for role in ("reviewer", "senior_reviewer", "admin", "auditor")},
}


def expected_target(cell: str, with_recommendation: bool) -> Status:
    with_it, _, without_it = cell.partition("/")
    return CODES[with_it if with_recommendation or not without_it else without_it]


ALLOWED = [(event, CODES[code], with_rec) for event, cells in EXPECTED.items() for code, cell in cells.items()
           if cell != "-" for with_rec in ((True, False) if "/" in cell else (True,))]
REFUSED = [(event, CODES[code]) for event, cells in EXPECTED.items() for code, cell in cells.items() if cell == "-"]


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


def permitted_actor(event: str) -> Actor:
    return ACTOR_OF[next(name for name, may in MAY[event].items() if may == "x")]


def test_the_tables_name_every_status_event_and_actor():
    assert [CODES[code] for code in COLUMNS] == list(Status)
    assert set(EXPECTED) == set(TRANSITIONS) == set(MAY)
    assert list(ACTOR_OF) == ACTOR_NAMES
    assert all(cell == "-" or all(part in CODES for part in cell.split("/"))
               for cells in EXPECTED.values() for cell in cells.values())
    assert {may for cells in MAY.values() for may in cells.values()} == {"x", "-"}


def test_terminal_states_have_no_way_out():
    for code in ("rej", "exd", "wdn"):
        assert all(cells[code] == "-" for cells in EXPECTED.values()), code


@pytest.mark.parametrize(("event", "source", "with_recommendation"), ALLOWED,
                         ids=[f"{e}-from-{s.value}{'' if r else '-without-recommendation'}" for e, s, r in ALLOWED])
def test_every_allowed_move_lands_where_the_matrix_says(upstream, event, source, with_recommendation):
    case = make_case(upstream, source, with_recommendation=with_recommendation)
    before = case.version
    expected = expected_target(EXPECTED[event][CODE_OF[source]], with_recommendation)
    target = transition(db.session, case, event, permitted_actor(event), expected_version=before)
    db.session.commit()
    db.session.refresh(case)
    assert target is expected
    assert case.status == expected.value
    assert case.version == before + 1
    event_row = db.session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert event_row.action == f"case.{event}"
    assert event_row.case_id == case.id
    assert event_row.data["from"] == source.value and event_row.data["to"] == expected.value


@pytest.mark.parametrize(("event", "state"), REFUSED, ids=[f"{e}-from-{s.value}" for e, s in REFUSED])
def test_every_other_move_is_refused_without_change(upstream, event, state):
    case = make_case(upstream, state, with_recommendation=True)
    before = (case.status, case.version)
    with pytest.raises(IllegalTransition, match=f"cannot apply '{event}' to a case in '{state.value}'"):
        transition(db.session, case, event, permitted_actor(event))
    db.session.rollback()
    db.session.refresh(case)
    assert (case.status, case.version) == before


@pytest.mark.parametrize("event", list(MAY))
def test_only_the_actors_the_rules_name_may_make_a_move(upstream, event):
    source = next(CODES[code] for code, cell in EXPECTED[event].items() if cell != "-")
    case = make_case(upstream, source, with_recommendation=True)
    outcomes = {}
    for name, actor in ACTOR_OF.items():
        try:
            transition(db.session, case, event, actor)
            outcomes[name] = "x"
        except ActorNotAllowed as refused:
            assert str(refused).endswith(f"may not make the move {event!r}")
            outcomes[name] = "-"
        db.session.rollback()
        db.session.refresh(case)
        assert case.status == source.value
    assert outcomes == MAY[event]


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
