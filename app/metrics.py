"""Event metrics: what happened, counted where it happens (intake answers, RQ jobs, provider
calls, SLA breaches, execution attempts). ``/metrics`` (app/ops.py) shows them beside the gauges
it reads from the database. docs/metrics.md describes each one.

Every process counts its own events. With ``PROMETHEUS_MULTIPROC_DIR`` set (prometheus_client's
multiprocess mode, read by prometheus_client when it is imported) each process, every gunicorn
worker, RQ worker and work horse, writes its counts to its own files in that directory, and
``/metrics`` adds up the files of all of them, whichever process answers the scrape. Without it,
``/metrics`` shows the counts of the process that answers: right for one process only.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy.orm import Session

from app.db import on_outer_commit

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
_COUNT_AFTER_COMMIT = "countersign.metrics.after_commit"  # session.info key

# The metrics of this process (single-process mode); in multiprocess mode they are read from the files.
EVENTS = CollectorRegistry(auto_describe=True)

INTAKE_RESPONSES = Counter(
    "countersign_intake_responses", "Answers to POST /api/v1/cases by HTTP status and the case type the "
    "signed body declares (unknown: none registered, or no verified body)", ["status", "case_type"],
    registry=EVENTS)
JOB_DURATION = Histogram(
    "countersign_job_duration_seconds", "Run time of RQ jobs by queue and job function, failed runs included",
    ["queue", "job"], buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300), registry=EVENTS)
JOB_FAILURES = Counter(
    "countersign_job_failures", "RQ job runs that raised (timeouts included), by queue and job function",
    ["queue", "job"], registry=EVENTS)
PROVIDER_LATENCY = Histogram(
    "countersign_provider_latency_seconds", "AI provider calls by provider and model, cache hits excluded; "
    "outcome ok (an answer) or error (the call raised)", ["provider", "model", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120), registry=EVENTS)
SLA_BREACHES = Counter(
    "countersign_sla_breaches", "SLA breaches by the queue the case breached in", ["queue"], registry=EVENTS)
EXECUTION_OUTCOMES = Counter(
    "countersign_execution_outcomes", "Runs of the execution job by outcome (delivered, retrying, failed, "
    "refused, skipped, superseded, paused)", ["outcome"], registry=EVENTS)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROCESS_DIR_VARIABLE) or None


def check_multiprocess_dir() -> None:
    """Refuse to start when the directory is set but unusable: prometheus_client would fail on the
    first count, inside a request or a job."""
    path = multiprocess_dir()
    if path is not None and not (os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)):
        raise RuntimeError(f"{MULTIPROCESS_DIR_VARIABLE} is {path!r}, which is not a writable directory: create "
                           "it, empty, before starting the web and the workers (docs/metrics.md)")


def add_events(registry: CollectorRegistry) -> None:
    """The event metrics of every process (multiprocess mode), or of this one, into ``registry``."""
    if multiprocess_dir() is not None:
        MultiProcessCollector(registry)
    else:
        registry.register(EVENTS)


@contextmanager
def measured_job(queue: str, job: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    except BaseException:
        JOB_FAILURES.labels(queue, job).inc()
        raise
    finally:
        JOB_DURATION.labels(queue, job).observe(time.perf_counter() - started)


@contextmanager
def provider_call(provider: str, model: str) -> Iterator[None]:
    started = time.perf_counter()
    outcome = "error"
    try:
        yield
        outcome = "ok"
    finally:
        PROVIDER_LATENCY.labels(provider, model, outcome).observe(time.perf_counter() - started)


def count_after_commit(session: Session, counter: Counter) -> None:
    """Count one event (``counter``: a labelled counter) once the session's transaction commits;
    not at all if it rolls back."""
    session.info.setdefault(_COUNT_AFTER_COMMIT, []).append(counter)


def _count_committed(session: Session, counters: list[Counter]) -> None:
    for counter in counters:
        counter.inc()


on_outer_commit(_COUNT_AFTER_COMMIT, _count_committed)
