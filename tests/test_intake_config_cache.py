"""Intake keeps the API client, queue routing and rules it reads per process while the database's
stamp is unchanged (app.intake.config_cache): a change committed elsewhere (another process: here
another engine, as another process has) takes effect with the next request."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from app import create_app
from app.actors import Actor
from app.cases.models import Case, Queue
from app.escalation.models import EscalationRule
from app.escalation.services import load_rules, validate_file
from app.extensions import db
from app.intake.models import ApiClient, IntakeConfigStamp
from tests.conftest import assert_problem, case_body, make_config

CACHED_TABLES = ("api_clients", "queues", "escalation_rules")


@pytest.fixture
def elsewhere(app) -> Iterator[Session]:
    """A session of another app on the same database: another process's view, with its own cache."""
    other = create_app(make_config(app.config["SQLALCHEMY_DATABASE_URI"], app.config["REDIS_URL"]))
    with other.app_context():
        yield db.session
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def statements(app) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn, cursor, statement, *args) -> None:
        seen.append(statement.lower())

    sa.event.listen(db.engine, "before_cursor_execute", record)
    yield seen
    sa.event.remove(db.engine, "before_cursor_execute", record)


def reads_of_cached_tables(statements: list[str]) -> list[str]:
    return [s for s in statements if s.lstrip().startswith("select")
            and any(f"from {table}" in s for table in CACHED_TABLES)]


def stamp() -> int:
    return db.session.scalar(sa.select(IntakeConfigStamp.stamp))


def test_a_second_intake_reads_no_client_queue_or_rule(upstream, statements):
    assert upstream.post_case(case_body()).status_code == 202
    assert reads_of_cached_tables(statements)  # the first one reads them
    statements.clear()
    assert upstream.post_case(case_body()).status_code == 202
    assert reads_of_cached_tables(statements) == []
    assert any("intake_config_stamp" in s for s in statements)


def test_an_unknown_token_is_looked_up_each_time(upstream, statements):
    upstream.token = "cs_not-a-token"
    for _ in range(2):
        statements.clear()
        assert_problem(upstream.post_case(case_body()), 401, "unauthenticated")
        assert any("from api_clients" in s for s in statements)


@pytest.mark.parametrize("change", ["insert", "update", "delete"])
def test_every_change_to_a_cached_table_gives_a_new_stamp(app, queues, change):
    before = stamp()
    if change == "insert":
        db.session.add(Queue(name="payments", domain="finance", sla_minutes=30))
    elif change == "update":
        queues["legal"].sla_minutes = 90
    else:
        db.session.delete(queues["legal"])
    db.session.commit()
    assert stamp() != before


def test_a_rolled_back_change_leaves_the_stamp(app, queues):
    before = stamp()
    queues["legal"].sla_minutes = 90
    db.session.flush()
    assert stamp() != before  # seen by its own transaction
    db.session.rollback()
    assert stamp() == before


def test_a_client_revoked_by_another_process_is_refused_at_once(upstream, elsewhere):
    assert upstream.post_case(case_body()).status_code == 202
    elsewhere.get(ApiClient, upstream.id).active = False
    elsewhere.commit()
    assert_problem(upstream.post_case(case_body()), 401, "unauthenticated")


def test_a_queue_made_by_another_process_receives_the_next_case(upstream, elsewhere):
    first = upstream.post_case(case_body("payment_release")).get_json()
    assert db.session.get(Case, first["id"]).queue.name == "finance"
    elsewhere.add(Queue(name="payments", domain="finance", sla_minutes=30, case_types=["payment_release"]))
    elsewhere.commit()
    second = upstream.post_case(case_body("payment_release")).get_json()
    assert db.session.get(Case, second["id"]).queue.name == "payments"


def test_a_rule_disabled_by_another_process_stops_firing(upstream, elsewhere):
    rules = [{"name": "payments-urgent", "conditions": {"case_type": "payment_release"},
              "actions": [{"set_priority": {"priority": "urgent"}}]}]
    load_rules(db.session, validate_file(db.session, rules), Actor.system("test"))
    db.session.commit()
    first = upstream.post_case(case_body()).get_json()
    assert db.session.get(Case, first["id"]).priority_label == "urgent"
    elsewhere.scalar(sa.select(EscalationRule)).enabled = False
    elsewhere.commit()
    second = upstream.post_case(case_body()).get_json()
    assert db.session.get(Case, second["id"]).priority_label == "normal"
