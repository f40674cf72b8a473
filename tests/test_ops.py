"""Prometheus metrics and the health endpoints."""

from __future__ import annotations

from rq import SimpleWorker

from tests.conftest import case_body


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


def test_readiness_needs_a_worker(client, redis_conn):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["workers"].startswith("none")
    worker = SimpleWorker(["ai"], connection=redis_conn)
    worker.register_birth()
    try:
        response = client.get("/readyz")
        assert response.status_code == 200
        assert response.get_json() == {"ready": True, "checks": {"database": "ok", "redis": "ok",
                                                                  "workers": "1 alive"}, "paused": []}
    finally:
        worker.register_death()
