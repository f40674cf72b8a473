"""Prometheus metrics and the health endpoints."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rq import SimpleWorker
from sqlalchemy import select

from app.db import utcnow
from app.extensions import db
from app.users import User
from tests.conftest import case_body
from tests.review_helpers import make_user


@pytest.fixture
def worker(redis_conn) -> Iterator[SimpleWorker]:
    listening = SimpleWorker(["ai"], connection=redis_conn)
    listening.register_birth()
    yield listening
    listening.register_death()


@pytest.fixture
def configured(queues) -> None:
    """What `setup` makes: an admin, and a default queue in every domain."""
    make_user("admin", "admin", [])
    db.session.commit()


def test_metrics_count_cases_recommendations_and_queues(client, upstream, redis_conn):
    upstream.post_case(case_body("payment_release"))
    upstream.post_case(case_body("aml_alert"))
    text = client.get("/metrics").get_data(as_text=True)
    assert 'countersign_cases{case_type="payment_release",status="received"} 1.0' in text
    assert 'countersign_queue_jobs{queue="ai"} 2.0' in text
    SimpleWorker(["ai"], connection=redis_conn).work(burst=True)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'countersign_recommendations{model="rules-v1",provider="local"} 2.0' in text
    assert 'countersign_queue_jobs{queue="ai"} 0.0' in text


def test_readiness_needs_a_worker(client, redis_conn, configured):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["workers"].startswith("none")
    worker = SimpleWorker(["ai"], connection=redis_conn)
    worker.register_birth()
    try:
        response = client.get("/readyz")
        assert response.status_code == 200
        assert response.get_json() == {"ready": True, "missing": [], "paused": [], "checks": {
            "database": "ok", "configuration": "ok", "redis": "ok", "workers": "1 alive"}}
    finally:
        worker.register_death()


def test_readiness_names_every_missing_piece_of_configuration(client, worker):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json() == {"ready": False, "checks": {
        "database": "ok", "configuration": "4 item(s) missing", "redis": "ok", "workers": "1 alive"}, "missing": [
        "admin: no active admin user; run flask --app wsgi setup",
        "queue: no default queue for the finance domain; run flask --app wsgi setup or create one at /admin/queues",
        "queue: no default queue for the legal domain; run flask --app wsgi setup or create one at /admin/queues",
        "queue: no default queue for the compliance domain; run flask --app wsgi setup or create one at "
        "/admin/queues"], "paused": []}


def test_a_deactivated_admin_or_an_archived_default_leaves_a_gap(client, worker, configured, queues):
    assert client.get("/readyz").status_code == 200
    make_user("former", "admin", []).active = False
    queues["legal"].archived_at = utcnow()  # only possible behind the service's back: it refuses to archive a default
    db.session.commit()
    assert client.get("/readyz").get_json()["missing"] == [
        "queue: no default queue for the legal domain; run flask --app wsgi setup or create one at /admin/queues"]
    db.session.scalars(select(User).where(User.email == "admin@example.com")).one().active = False
    db.session.commit()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["missing"][0] == "admin: no active admin user; run flask --app wsgi setup"
