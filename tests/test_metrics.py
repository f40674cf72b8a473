"""/metrics: who may read it (a bearer token, or an allow-listed network), and each event metric
moving when its event happens (a real intake post, real RQ jobs, the SLA sweep, an execution).

The counters live in this process for the whole session: each test compares two scrapes."""

from __future__ import annotations

from ipaddress import ip_network
from typing import Any

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue as RQQueue
from rq import SimpleWorker

from app import create_app
from app.ai.jobs import analysis
from app.escalation import sla
from app.execution.jobs import execution_work
from app.extensions import db
from app.jobs import after_commit, enqueue, job
from config import TestConfig
from tests.conftest import assert_problem, case_body
from tests.escalation_helpers import T0, minutes, on_clock
from tests.execution_helpers import approved_case
from tests.review_helpers import make_case
from workers import demo

pytest_plugins = ["tests.review_fixtures"]

TOKEN = "metrics-token-0123456789abcdef"
ELSEWHERE = {"REMOTE_ADDR": "203.0.113.9"}
SCRAPER_NETWORK = {"REMOTE_ADDR": "10.1.2.3"}
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"METRICS_TOKEN": TOKEN, "METRICS_ALLOW_NETWORKS": frozenset({ip_network("10.1.0.0/16")}),
            "INSECURE_CALLBACK_HOSTS": frozenset({"127.0.0.1"}), "CALLBACK_TIMEOUT_SECONDS": 5.0}


def scrape(client: FlaskClient) -> Samples:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.get_data(as_text=True))
            for sample in family.samples}


def moved(before: Samples, after: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """By how much each labelled sample of ``name`` moved between the two scrapes (the ones that did)."""
    return {labels: value - before.get((found, labels), 0.0) for (found, labels), value in after.items()
            if found == name and value != before.get((found, labels), 0.0)}


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


# --- access ----------------------------------------------------------------------------------------


def test_without_a_token_from_elsewhere_the_answer_is_401(client):
    response = client.get("/metrics", environ_base=ELSEWHERE)
    body = assert_problem(response, 401, "unauthorized")
    assert body["detail"] == "send Authorization: Bearer <METRICS_TOKEN> to read the metrics"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'


@pytest.mark.parametrize("authorization", [f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer ", f"Basic {TOKEN}",
                                           TOKEN])
@pytest.mark.parametrize("remote", [ELSEWHERE, SCRAPER_NETWORK])
def test_a_wrong_token_is_401_even_from_an_allowed_network(client, authorization, remote):
    response = client.get("/metrics", headers={"Authorization": authorization}, environ_base=remote)
    assert_problem(response, 401, "invalid-token")
    assert "countersign_cases" not in response.get_data(as_text=True)


def test_the_right_token_reads_the_metrics_from_anywhere(client):
    response = client.get("/metrics", headers={"Authorization": f"bearer {TOKEN}"}, environ_base=ELSEWHERE)
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert "# TYPE countersign_cases gauge" in response.get_data(as_text=True)


@pytest.mark.parametrize("address", ["10.1.2.3", "10.1.255.254", "::ffff:10.1.0.7"])
def test_an_allow_listed_network_reads_them_without_a_token(client, address):
    response = client.get("/metrics", environ_base={"REMOTE_ADDR": address})
    assert response.status_code == 200
    assert "# TYPE countersign_cases gauge" in response.get_data(as_text=True)


@pytest.mark.parametrize("address", ["10.2.0.1", "127.0.0.1", "::1", "not-an-address"])
def test_other_addresses_are_not_allow_listed(client, address):
    assert_problem(client.get("/metrics", environ_base={"REMOTE_ADDR": address}), 401, "unauthorized")


def test_without_a_token_configured_other_networks_are_forbidden(app, client):
    app.config["METRICS_TOKEN"] = ""
    body = assert_problem(client.get("/metrics", environ_base=ELSEWHERE), 403, "forbidden")
    assert body["detail"] == "the metrics are open to the networks of METRICS_ALLOW_NETWORKS only"
    # and no token opens them: an empty configured token matches nothing
    assert_problem(client.get("/metrics", headers={"Authorization": "Bearer "}, environ_base=ELSEWHERE), 401,
                   "invalid-token")
    assert client.get("/metrics", environ_base=SCRAPER_NETWORK).status_code == 200


@pytest.mark.parametrize("made", [None, "file"])
def test_an_unusable_multiprocess_directory_stops_the_start(monkeypatch, tmp_path, made):
    path = tmp_path / "prometheus"
    if made == "file":
        path.write_text("")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(path))
    with pytest.raises(RuntimeError, match=rf"PROMETHEUS_MULTIPROC_DIR is '{path}', which is not a writable "
                                           "directory: create it, empty, before starting the web and the workers"):
        create_app(TestConfig)


# --- the events ------------------------------------------------------------------------------------


def test_every_intake_answer_is_counted_by_status_and_declared_case_type(app, client, upstream):
    app.config["INTAKE_RATE_LIMIT"] = "7 per minute"  # this client's eighth post is refused
    before = scrape(client)
    assert upstream.post_case(case_body("aml_alert")).status_code == 202
    assert upstream.post_case(case_body("payment_release")).status_code == 202
    assert upstream.post_case({**case_body(), "case_type": "no_such_type"}).status_code == 422
    assert upstream.post_case({**case_body(), "case_type": ["a", "list"]}).status_code == 422
    assert upstream.post_case(b"[1, 2]").status_code == 400
    stranger = client.post("/api/v1/cases", json=case_body("aml_alert"), headers={"Authorization": "Bearer nope"})
    assert stranger.status_code == 401
    assert upstream.post_case(case_body("kyc_review"), content_type="text/plain").status_code == 415
    app.config["MAX_CONTENT_LENGTH"] = 2000
    assert upstream.post_case(case_body("aml_alert", title="x" * 2000)).status_code == 413
    assert upstream.post_case(case_body("aml_alert")).status_code == 429
    assert moved(before, scrape(client), "countersign_intake_responses_total") == {
        labels(status="202", case_type="aml_alert"): 1,
        labels(status="202", case_type="payment_release"): 1,
        labels(status="422", case_type="unknown"): 2,  # never the client's text as a label
        labels(status="400", case_type="unknown"): 1,
        labels(status="401", case_type="unknown"): 1,  # no verified body: its case type is not looked at
        labels(status="415", case_type="unknown"): 1,
        labels(status="413", case_type="unknown"): 1,
        labels(status="429", case_type="unknown"): 1,
    }


@job
def failing_job() -> None:
    raise RuntimeError("this job fails")


def test_rq_jobs_are_timed_and_their_failures_counted_by_queue(client, upstream, redis_conn):
    upstream.post_case(case_body("payment_release"))
    upstream.post_case(case_body("contract_review"))
    RQQueue("default", connection=redis_conn).enqueue(failing_job)
    before = scrape(client)
    SimpleWorker(["ai", "default"], connection=redis_conn).work(burst=True)
    after = scrape(client)
    assert moved(before, after, "countersign_job_duration_seconds_count") == {
        labels(queue="ai", job="app.ai.jobs.analyze_case"): 2,
        labels(queue="default", job=f"{__name__}.failing_job"): 1,
    }
    assert moved(before, after, "countersign_job_failures_total") == {
        labels(queue="default", job=f"{__name__}.failing_job"): 1}
    # the local analyzer is a provider too: one call per case, each an answer
    assert moved(before, after, "countersign_provider_latency_seconds_count") == {
        labels(provider="local", model="rules-v1", outcome="ok"): 2}
    durations = moved(before, after, "countersign_job_duration_seconds_sum")
    assert all(0 < seconds < 30 for seconds in durations.values()) and len(durations) == 2


def test_a_job_function_called_outside_rq_is_not_measured(client):
    before = scrape(client)
    with pytest.raises(RuntimeError):
        failing_job()
    assert moved(before, scrape(client), "countersign_job_failures_total") == {}


def test_an_sla_breach_is_counted_by_its_queue_once_committed(client, upstream, people, queues):
    case = on_clock(make_case(upstream, "contract_review"), created=T0, due=minutes(60))  # legal: stays there
    before = scrape(client)
    assert sla.check_case(db.session, case, minutes(61)) is sla.Outcome.BREACHED
    db.session.rollback()  # the breach did not happen after all
    assert moved(before, scrape(client), "countersign_sla_breaches_total") == {}
    assert sla.sweep(db.session, minutes(61), db.session.commit).breached == 1
    assert sla.sweep(db.session, minutes(120), db.session.commit).breached == 0
    assert moved(before, scrape(client), "countersign_sla_breaches_total") == {labels(queue="legal"): 1}


def test_a_count_inside_a_savepoint_waits_for_the_outer_commit(client, upstream, queues):
    case = on_clock(make_case(upstream, "contract_review"), created=T0, due=minutes(60))
    before = scrape(client)
    with db.session.begin_nested():
        assert sla.check_case(db.session, case, minutes(61)) is sla.Outcome.BREACHED
    assert moved(before, scrape(client), "countersign_sla_breaches_total") == {}  # released, not committed
    db.session.commit()
    assert moved(before, scrape(client), "countersign_sla_breaches_total") == {labels(queue="legal"): 1}


def test_a_job_recorded_inside_a_savepoint_is_enqueued_once_the_transaction_commits(upstream, redis_conn):
    case = make_case(upstream, "contract_review")
    ai = RQQueue("ai", connection=redis_conn)
    ai.empty()
    with db.session.begin_nested():
        after_commit(db.session, analysis(case.id, case.version))
    assert ai.count == 0  # released, not committed: a worker would find nothing of it yet
    db.session.commit()
    assert ai.job_ids == [f"analyze-{case.id}-{case.version}"]


def test_execution_outcomes_are_counted(client, upstream, people, receiver, redis_conn):
    delivered = approved_case(upstream, people, receiver.url + "/hooks")
    unanswered = approved_case(upstream, people, "http://127.0.0.1:9/hooks")  # nothing listens: retried later
    before = scrape(client)
    for case_id in (delivered, unanswered):
        assert enqueue(execution_work(db.session, case_id))
    SimpleWorker(["execute"], connection=redis_conn).work(burst=True)
    after = scrape(client)
    assert moved(before, after, "countersign_execution_outcomes_total") == {
        labels(outcome="delivered"): 1, labels(outcome="retrying"): 1}
    assert moved(before, after, "countersign_job_duration_seconds_count") == {
        labels(queue="execute", job="app.execution.jobs.execute_case"): 2}


# --- make demo ---------------------------------------------------------------------------------------


def test_the_demo_gives_its_processes_one_directory_emptied_at_each_start(monkeypatch, tmp_path):
    monkeypatch.setattr(demo, "INSTANCE_DIR", tmp_path)
    directory = tmp_path / "prometheus-multiproc"
    directory.mkdir()
    (directory / "counter_4242.db").write_bytes(b"counts of the previous run")
    env: dict[str, str] = {}
    demo.metrics_directory(env)
    assert env == {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    assert list(directory.iterdir()) == []
    theirs = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "theirs")}
    demo.metrics_directory(theirs)
    assert theirs == {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "theirs")}
    assert not (tmp_path / "theirs").exists()  # the operator's directory is theirs to make and empty
