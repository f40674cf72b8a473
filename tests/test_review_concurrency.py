"""Claims and approvals under contention: each thread has its own session, as each request would."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.cases.models import Case, Decision, Status
from app.errors import Conflict
from app.extensions import db
from app.review import services
from app.users import User
from tests.review_helpers import claim, command, make_case, make_user

pytest_plugins = ["tests.review_fixtures"]

THREADS = 20
CASES = 30


def run_together(app: Flask, workers: list[Callable[[Session], Any]]) -> tuple[list[Any], list[BaseException]]:
    """Run each worker in its own thread and session, all starting at once; collect results and errors."""
    barrier = threading.Barrier(len(workers))
    results: list[Any] = []
    errors: list[BaseException] = []
    engine = db.engine

    def run(work: Callable[[Session], Any]) -> None:
        with app.app_context(), Session(engine) as session:
            barrier.wait()
            try:
                results.append(work(session))
                session.commit()
            except BaseException as exc:  # reported to the test
                session.rollback()
                errors.append(exc)

    threads = [threading.Thread(target=run, args=(work,)) for work in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return results, errors


def test_twenty_reviewers_claiming_at_once_never_share_a_case(app, upstream, queues):
    reviewers = [make_user(f"claimer{i}", "reviewer", [queues["finance"]]) for i in range(THREADS)]
    db.session.commit()
    case_ids = {make_case(upstream).id for _ in range(CASES)}
    queue_id, user_ids = queues["finance"].id, [r.id for r in reviewers]

    def claimer(user_id: int) -> Callable[[Session], list[tuple[int, int]]]:
        def work(session: Session) -> list[tuple[int, int]]:
            user = session.get(User, user_id)
            taken = []
            for _ in range(2):  # 40 attempts for 30 cases
                case = services.claim_next(session, user, queue_id)
                if case is not None:
                    taken.append((case.id, user_id))
                session.commit()
            return taken

        return work

    results, errors = run_together(app, [claimer(uid) for uid in user_ids])
    assert errors == []
    claims = [pair for taken in results for pair in taken]
    claimed_ids = [case_id for case_id, _ in claims]
    assert len(claimed_ids) == len(set(claimed_ids)) == CASES
    assert set(claimed_ids) == case_ids
    db.session.expire_all()
    rows = db.session.execute(select(Case.id, Case.assignee_id, Case.status).where(Case.id.in_(case_ids))).all()
    assert {row.id: row.assignee_id for row in rows} == dict(claims)  # each case: exactly its one claimer
    assert {row.status for row in rows} == {Status.IN_REVIEW}
    assert max(Counter(uid for _, uid in claims).values()) <= 2


def test_two_simultaneous_approvals_produce_exactly_one_decision(app, upstream, people):
    case = claim(people.reviewer, make_case(upstream))
    approve = command(case, "approve")
    case_id, user_id = case.id, people.reviewer.id

    def approver(session: Session) -> int:
        return services.decide(session, session.get(User, user_id), case_id, approve).id

    results, errors = run_together(app, [approver, approver])
    assert len(results) == 1
    assert len(errors) == 1 and isinstance(errors[0], Conflict), errors
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Decision).where(Decision.case_id == case_id)) == 1
    assert db.session.get(Case, case_id).status == Status.APPROVED


def test_two_simultaneous_second_approvals_produce_exactly_one(app, upstream, people):
    case = claim(people.reviewer, make_case(upstream, data={"amount": "250000.00"}, recommendation=("release", {})))
    services.decide(db.session, people.reviewer, case.id, command(case, "approve"))
    db.session.commit()
    second = command(case, "approve")
    case_id, seniors = case.id, [people.senior.id, people.senior2.id]

    def approver(user_id: int) -> Callable[[Session], int]:
        return lambda session: services.decide(session, session.get(User, user_id), case_id, second).id

    results, errors = run_together(app, [approver(uid) for uid in seniors])
    assert len(results) == 1 and len(errors) == 1 and isinstance(errors[0], Conflict), errors
    db.session.expire_all()
    kinds = db.session.scalars(select(Decision.kind).where(Decision.case_id == case_id)).all()
    assert sorted(kinds) == ["approve", "second_approval"]
