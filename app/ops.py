"""Operations endpoints: Prometheus metrics, liveness and readiness.

``/metrics`` answers a scraper that presents ``METRICS_TOKEN`` or comes from one of
``METRICS_ALLOW_NETWORKS``. Its gauges are read from the database and Redis at scrape time, so
they are right whatever the number of gunicorn and worker processes; its event counters and
histograms come from app/metrics.py (added up across processes in multiprocess mode).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from redis.exceptions import RedisError
from rq import Queue as RQQueue
from rq import Worker
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from app.cases.models import Case, Queue, Recommendation
from app.cases.queues import domains_without_default
from app.controls import switch
from app.controls.models import What
from app.extensions import db
from app.forwarded import parse_address, within
from app.install import admin_emails
from app.jobs import QUEUE_NAMES, redis_connection
from app.metrics import add_events
from app.problems import Problem, problem_response

bp = Blueprint("ops", __name__)


class CountersignCollector:
    def collect(self) -> Iterator[Metric]:
        cases = GaugeMetricFamily("countersign_cases", "Cases by status and case type", labels=["status", "case_type"])
        for status, case_type, count in db.session.execute(
            select(Case.status, Case.case_type, func.count()).group_by(Case.status, Case.case_type)
        ):
            cases.add_metric([status, case_type], count)
        yield cases
        ai = GaugeMetricFamily("countersign_recommendations", "Recommendations by provider and model",
                               labels=["provider", "model"])
        cost = GaugeMetricFamily("countersign_ai_cost_usd", "AI cost in USD by provider and model",
                                 labels=["provider", "model"])
        for provider, model, count, usd in db.session.execute(
            select(Recommendation.provider, Recommendation.model, func.count(),
                   func.coalesce(func.sum(Recommendation.cost_usd), 0))
            .group_by(Recommendation.provider, Recommendation.model)
        ):
            ai.add_metric([provider, model], count)
            cost.add_metric([provider, model], float(usd))
        yield ai
        yield cost
        yield _paused()
        yield from _rq_metrics()


def _paused() -> Metric:
    """The kill switch: 1 where a pause is in force. ``queue=""`` is the pause of every queue; a
    queue's own sample is its own pause (its work stops when either is 1)."""
    paused = GaugeMetricFamily("countersign_paused", "Kill switch: 1 while the work is paused for the queue "
                               "(an empty queue: every queue)", labels=["what", "queue"])
    in_force = {(p.what, p.queue.name if p.queue else "") for p in switch.in_force(db.session)}
    names = ["", *db.session.scalars(select(Queue.name).order_by(Queue.name))]
    for what in What:
        for name in names:
            paused.add_metric([what.value, name], 1 if (what.value, name) in in_force else 0)
    return paused


def _rq_metrics() -> Iterator[Metric]:
    jobs = GaugeMetricFamily("countersign_queue_jobs", "Jobs waiting in each RQ queue", labels=["queue"])
    workers = GaugeMetricFamily("countersign_workers", "RQ workers alive")
    try:
        connection = redis_connection()
        for name in QUEUE_NAMES:
            jobs.add_metric([name], RQQueue(name, connection=connection).count)
        workers.add_metric([], Worker.count(connection=connection))
    except RedisError:
        return  # Redis down: /readyz says so; the database metrics still answer
    yield jobs
    yield workers


@bp.get("/metrics")
def metrics() -> Response:
    refusal = _scraper_refused()
    if refusal is not None:
        return refusal
    registry = CollectorRegistry(auto_describe=False)
    add_events(registry)
    registry.register(CountersignCollector())
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def _scraper_refused() -> Response | None:
    """None when the scraper may read the metrics: it presents the right bearer token, or presents
    none from an allow-listed network. A wrong token is refused wherever it comes from."""
    expected = current_app.config["METRICS_TOKEN"]
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme or presented:
        if scheme.lower() == "bearer" and expected and hmac.compare_digest(presented.strip().encode(),
                                                                           expected.encode()):
            return None
        return _unauthorized("invalid-token", "Invalid bearer token", "the metrics token is not the one configured")
    if _allow_listed(request.remote_addr):
        return None
    if expected:
        return _unauthorized("unauthorized", "Authentication required",
                             "send Authorization: Bearer <METRICS_TOKEN> to read the metrics")
    return problem_response(Problem(403, "forbidden", "Forbidden",
                                    "the metrics are open to the networks of METRICS_ALLOW_NETWORKS only"))


def _unauthorized(slug: str, title: str, detail: str) -> Response:
    response = problem_response(Problem(401, slug, title, detail))
    response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


def _allow_listed(remote_addr: str | None) -> bool:
    """``remote_addr`` is the client's (app/forwarded.py: the peer's, or behind a trusted proxy the
    address it forwarded)."""
    return within(parse_address(remote_addr), current_app.config["METRICS_ALLOW_NETWORKS"])


@bp.get("/healthz")
def healthz() -> Response:
    return jsonify(status="ok")


def missing_configuration() -> list[str]:
    """What an installation needs before it can work: an admin, and a default queue in every domain
    (intake refuses the cases no queue receives)."""
    missing = [] if admin_emails(db.session) else ["admin: no active admin user; run flask --app wsgi setup"]
    return missing + [f"queue: no default queue for the {domain} domain; run flask --app wsgi setup or create one "
                      "at /admin/queues" for domain in domains_without_default(db.session)]


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Ready when the database and Redis answer, at least one worker listens and nothing of the
    configuration is missing (``missing`` names each gap). ``paused`` lists the kill switch's pauses
    in force: a deliberate state, not unreadiness (null when the database is down)."""
    checks: dict[str, str] = {}
    missing: list[str] = []
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
        missing = missing_configuration()
        checks["configuration"] = "ok" if not missing else f"{len(missing)} item(s) missing"
    except Exception as exc:
        db.session.rollback()
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        connection = redis_connection()
        connection.ping()
        count = Worker.count(connection=connection)
        checks["redis"] = "ok"
        checks["workers"] = f"{count} alive" if count else "none: jobs would wait forever"
    except RedisError as exc:
        checks["redis"] = f"error: {exc.__class__.__name__}"
    ready = (checks.get("database") == "ok" and not missing and checks.get("redis") == "ok"
             and "alive" in checks.get("workers", ""))
    current_app.logger.debug("readiness %s %s", checks, missing)
    return jsonify(ready=ready, checks=checks, missing=missing, paused=_pauses_in_force()), 200 if ready else 503


def _pauses_in_force() -> list[dict[str, Any]] | None:
    try:
        return [switch.describe(p) for p in switch.in_force(db.session)]
    except SQLAlchemyError:
        db.session.rollback()
        return None
