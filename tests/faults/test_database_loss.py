"""The database backend of a request terminated while the request runs (PostgreSQL:
``pg_terminate_backend``), over real HTTP. Runs with TEST_DATABASE_URL (``make test`` does)."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from app.audit.models import AuditEvent
from app.cases.models import Case
from app.extensions import db
from app.intake.models import WebhookReceipt
from tests.conftest import TestDatabase as Database
from tests.conftest import audit_log_intact, case_body
from tests.faults.conftest import wait_for

pytestmark = pytest.mark.faults

WAITING_ON_A_LOCK = sa.text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                            "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")
OTHER_BACKENDS = sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE datname = current_database() AND pid <> pg_backend_pid()")


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    # As in production: an unexpected error goes to the app's error handlers, not up to the test.
    return {"PROPAGATE_EXCEPTIONS": False}


@pytest.fixture
def postgres(database: Database) -> Database:
    if not database.is_postgres:
        pytest.skip("terminating a backend needs PostgreSQL (TEST_DATABASE_URL)")
    return database


@pytest.fixture
def operator(postgres: Database) -> Iterator[sa.Connection]:
    """A connection of our own beside the app's, as a DBA's session would be."""
    engine = sa.create_engine(postgres.url, poolclass=sa.pool.NullPool)
    with engine.connect() as connection:
        yield connection
    engine.dispose()


def post(url: str, upstream, raw: bytes, webhook_id: str) -> tuple[int, str, Any]:
    request = urllib.request.Request(f"{url}/api/v1/cases", data=raw, method="POST", headers={
        "Authorization": f"Bearer {upstream.token}", "Content-Type": "application/json",
        **upstream.sign(raw, webhook_id=webhook_id)})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers["Content-Type"], json.load(response)
    except urllib.error.HTTPError as failed:
        body = failed.read()
        try:
            return failed.code, failed.headers["Content-Type"], json.loads(body)
        except ValueError:
            return failed.code, failed.headers["Content-Type"], body


def stored() -> tuple[int, int, int]:
    db.session.rollback()  # a fresh snapshot
    return tuple(db.session.scalar(sa.select(sa.func.count()).select_from(model))
                 for model in (Case, WebhookReceipt, AuditEvent))


def test_a_terminated_backend_fails_the_request_cleanly(postgres, app, upstream, live_server, operator):
    """Pass: an intake whose database backend is terminated mid-transaction answers a 5xx problem
    detail, having stored nothing (no case, receipt or audit event); every pooled connection
    killed too, the next requests work (pool_pre_ping), the same delivery sent again is accepted
    once, and the audit log verifies."""
    raw = json.dumps(case_body("aml_alert")).encode()
    before = stored()
    db.session.commit()  # the test holds no lock of its own

    with operator.begin():
        # The intake's audit event waits on this lock: the request is mid-transaction, its case written.
        operator.exec_driver_sql("LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE")
        answers: list[tuple[int, str, Any]] = []
        request = threading.Thread(target=lambda: answers.append(post(live_server, upstream, raw, "msg_cut")))
        request.start()
        wait_for(lambda: operator.execute(WAITING_ON_A_LOCK).first() is not None, "the request to wait on the lock")
        [waiting] = operator.execute(WAITING_ON_A_LOCK).scalars().all()
        assert operator.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": waiting}).scalar()
    request.join(timeout=30)

    [(status, content_type, problem)] = answers
    assert 500 <= status < 600 and content_type == "application/problem+json", (status, problem)
    assert problem["status"] == status
    assert stored() == before  # nothing half-written
    db.session.commit()  # its connection goes back to the app's pool...
    with operator.begin():
        operator.execute(OTHER_BACKENDS)  # ...and dies there, as every other connection of the app

    status, _, accepted = post(live_server, upstream, raw, "msg_cut")  # the upstream system tries again
    assert status == 202, accepted
    status, _, replayed = post(live_server, upstream, raw, "msg_cut")
    assert (status, replayed["id"]) == (202, accepted["id"])  # a replay, not a second case
    assert stored()[0] == before[0] + 1
    assert audit_log_intact()
