"""Inbox benchmark: the queue page (first page, default sort) and "next case" (claim_next,
then roll back), at 1,000 and at 100,000 cases, on SQLite and on PostgreSQL.

Rows are bulk-inserted straight into the tables (a realistic spread over queues, statuses,
priorities and ages), the database grows from the small size to the large one, and each
measurement is timed over ``iterations`` runs after a short warm-up.

    python -m benchmarks.inbox [--sizes 1000,100000] [--iterations 200] [--backends sqlite,postgresql]

Targets: p95 < 50 ms, and p95 at the largest size < 1.5 x p95 at the smallest.
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade

from app import create_app
from app.auth.services import create_user, start_session
from app.auth.views import SESSION_KEY
from app.cases.models import Case, Queue, Recommendation, Status
from app.cases.types import REGISTRY, examples
from app.db import utcnow
from app.extensions import db
from app.intake.services import create_client
from app.review import services
from app.users import User
from benchmarks.common import backends_of, bench_config, database_for, over_backends, percentile
from config import BASE_DIR

EXAMPLES = examples()

P95_TARGET_MS = 50.0
RATIO_TARGET = 1.5
WARMUP = 5
BATCH = 5_000

# (name, domain, share of the cases, SLA minutes)
QUEUES = (("payments", "finance", 0.35, 240), ("credit", "finance", 0.15, 1440),
          ("finance-senior", "finance", 0.05, 120), ("legal", "legal", 0.15, 2880),
          ("compliance", "compliance", 0.25, 1440), ("compliance-senior", "compliance", 0.05, 480))
# Most cases in a mature system are decided; about one in six waits in an inbox.
STATUSES = ((Status.EXECUTED, 0.55), (Status.REJECTED, 0.10), (Status.APPROVED, 0.03), (Status.WITHDRAWN, 0.02),
            (Status.NEEDS_INFO, 0.04), (Status.ANALYZING, 0.01), (Status.PENDING_REVIEW, 0.17),
            (Status.IN_REVIEW, 0.04), (Status.AI_FAILED, 0.02), (Status.AWAITING_SECOND_APPROVAL, 0.02))
PRIORITIES = ((0, 0.2), (1, 0.6), (2, 0.15), (3, 0.05))
PAGE_QUEUE = "payments"  # the busiest inbox


@dataclass(frozen=True)
class Measurement:
    backend: str
    cases: int
    what: str
    p50_ms: float
    p95_ms: float


@dataclass(frozen=True)
class Options:
    sizes: tuple[int, ...] = (1_000, 100_000)
    iterations: int = 200
    backends: tuple[str, ...] = ("sqlite", "postgresql")


# --- seeding ----------------------------------------------------------------------------------------


@dataclass
class Fixture:
    app: Flask
    reviewer_id: int
    client_id: int
    queue_ids: dict[str, int]
    rows: int = 0


def prepare(url: str) -> Fixture:
    app = create_app(bench_config(url))
    with app.app_context():
        upgrade(directory=str(BASE_DIR / "migrations"))
        queues = {name: Queue(name=name, domain=domain, sla_minutes=sla) for name, domain, _, sla in QUEUES}
        db.session.add_all(queues.values())
        db.session.flush()
        client = create_client(db.session, "bench-upstream", ["finance", "legal", "compliance"], ["127.0.0.1"])
        reviewer = create_user(db.session, "bench.reviewer@example.com", "bench-password-1", "reviewer",
                               queues=list(queues))
        db.session.commit()
        return Fixture(app, reviewer.id, client.client.id, {n: q.id for n, q in queues.items()})


def _pick(rng: random.Random, weighted: Sequence[tuple[Any, float]]) -> Any:
    return rng.choices([value for value, _ in weighted], weights=[weight for _, weight in weighted])[0]


def _types_by_domain() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for domain, name in REGISTRY:
        found.setdefault(domain, []).append(name)
    return found


def grow(fixture: Fixture, target: int, seed: int = 7) -> None:
    """Bulk-insert cases (and their recommendations) until the database holds ``target``."""
    rng = random.Random(seed + fixture.rows)
    types = _types_by_domain()
    now = utcnow()
    queue_shares = [((name, domain, sla), share) for name, domain, share, sla in QUEUES]
    with fixture.app.app_context():
        for start in range(fixture.rows + 1, target + 1, BATCH):
            ids = range(start, min(start + BATCH, target + 1))
            cases = [_case_row(i, rng, types, queue_shares, fixture, now) for i in ids]
            db.session.execute(sa.insert(Case.__table__), cases)
            db.session.execute(sa.insert(Recommendation.__table__),
                               [_recommendation_row(c, rng, now) for c in cases])
            db.session.execute(sa.update(Case.__table__).where(Case.id.in_(list(ids)))
                               .values(recommendation_id=Case.id))
            db.session.commit()
        fixture.rows = target
        # Fresh statistics (and, on PostgreSQL, a visibility map), as autovacuum keeps them in production.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE" if conn.dialect.name == "postgresql" else "ANALYZE")


def _case_row(case_id: int, rng: random.Random, types: dict[str, list[str]],
              queue_shares: list[tuple[tuple[str, str, int], float]], fixture: Fixture, now: Any) -> dict[str, Any]:
    name, domain, sla = _pick(rng, queue_shares)
    case_type = rng.choice(types[domain])
    status = _pick(rng, STATUSES)
    created = now - timedelta(minutes=rng.uniform(1, 90 * 24 * 60))
    if status in (Status.PENDING_REVIEW, Status.IN_REVIEW, Status.AI_FAILED, Status.AWAITING_SECOND_APPROVAL):
        created = now - timedelta(minutes=rng.uniform(1, 2 * sla))  # open cases are recent
    payload = copy.deepcopy(EXAMPLES[case_type])
    amount = Decimal(rng.randrange(100, 500_000_00)) / 100 if domain == "finance" else None
    return {
        "id": case_id, "client_id": fixture.client_id, "external_id": f"BENCH-{case_id:07d}", "domain": domain,
        "case_type": case_type, "title": f"{case_type.replace('_', ' ').capitalize()} {case_id}",
        "payload": payload, "status": status.value, "priority": _pick(rng, PRIORITIES), "confidential": False,
        "amount": amount, "currency": "EUR" if amount is not None else None, "risk_score": rng.random(),
        "queue_id": fixture.queue_ids[name],
        "assignee_id": fixture.reviewer_id if status == Status.IN_REVIEW and rng.random() < 0.3 else None,
        "sla_due_at": created + timedelta(minutes=sla), "sla_notified_pct": 0, "requires_dual_approval": False,
        "reopen_count": 0, "version": 3, "created_at": created, "updated_at": created,
    }


def _recommendation_row(case: dict[str, Any], rng: random.Random, now: Any) -> dict[str, Any]:
    flags = rng.sample(["prompt_injection", "disagreement", "budget_fallback", "large_amount", "new_beneficiary"],
                       k=rng.choice((0, 0, 0, 1, 2)))
    return {
        "id": case["id"], "case_id": case["id"], "case_version": 2, "provider": "local", "model": "rules-v1",
        "template_version": "v1", "prompt_hash": "0" * 64, "input_hash": "0" * 64, "action": "hold",
        "parameters": {"reason": "benchmark"}, "rationale": "benchmark", "confidence": round(rng.random(), 2),
        "flags": flags, "citations": [], "details": {}, "tokens_in": 0, "tokens_out": 0, "cost_usd": Decimal(0),
        "latency_ms": 0, "cache_hit": False, "fallback_used": False, "created_at": now,
    }


# --- measuring --------------------------------------------------------------------------------------


def timed(action: Callable[[], None], iterations: int) -> tuple[float, float]:
    """(p50, p95) in milliseconds of ``action`` over ``iterations`` runs, after a warm-up."""
    for _ in range(min(WARMUP, iterations)):
        action()
    samples = []
    for _ in range(iterations):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), percentile(samples, 95)


def signed_in(fixture: Fixture) -> FlaskClient:
    """A client signed in as the reviewer, with a server-side session as the login form makes."""
    client = fixture.app.test_client()
    with fixture.app.app_context():
        raw = start_session(db.session, db.session.get_one(User, fixture.reviewer_id))
        db.session.commit()
    with client.session_transaction() as session:
        session["_user_id"], session["_fresh"], session[SESSION_KEY] = str(fixture.reviewer_id), True, raw
    return client


def queue_page(fixture: Fixture, client: FlaskClient) -> Callable[[], None]:
    def load() -> None:
        response = client.get(f"/queues/{PAGE_QUEUE}")
        if response.status_code != 200 or b"data-case-id" not in response.data:
            raise RuntimeError(f"queue page answered {response.status_code}")

    return load


def next_case(fixture: Fixture) -> Callable[[], None]:
    """claim_next in its own app context (as a request has), then roll back."""

    def claim_and_undo() -> None:
        with fixture.app.app_context():
            user = db.session.get(User, fixture.reviewer_id)
            if services.claim_next(db.session, user, fixture.queue_ids[PAGE_QUEUE]) is None:
                raise RuntimeError("no case to claim")
            db.session.rollback()

    return claim_and_undo


def measure_backend(backend: str, options: Options) -> list[Measurement]:
    found: list[Measurement] = []
    with database_for(backend) as url:
        fixture = prepare(url)
        try:
            client = signed_in(fixture)
            for size in sorted(options.sizes):
                grow(fixture, size)
                for what, action in (("queue page", queue_page(fixture, client)), ("next case", next_case(fixture))):
                    p50, p95 = timed(action, options.iterations)
                    found.append(Measurement(backend, size, what, p50, p95))
        finally:
            with fixture.app.app_context():
                db.engine.dispose()
    return found


def run(options: Options) -> list[Measurement]:
    return over_backends(options.backends, lambda backend: measure_backend(backend, options))


# --- reporting --------------------------------------------------------------------------------------


def table(results: list[Measurement]) -> str:
    """One line per backend and measurement: p50/p95 at each size and the p95 growth ratio."""
    sizes = sorted({r.cases for r in results})
    if not sizes:
        return "no results"
    small, large = sizes[0], sizes[-1]
    header = ["backend", "measure"]
    for size in sizes:
        header += [f"p50@{_short(size)} ms", f"p95@{_short(size)} ms"]
    header += [f"p95 {_short(large)}/{_short(small)}", "target"]
    lines = []
    for backend, what in dict.fromkeys((r.backend, r.what) for r in results):
        by_size = {r.cases: r for r in results if (r.backend, r.what) == (backend, what)}
        row = [backend, what]
        for size in sizes:
            row += [f"{by_size[size].p50_ms:.1f}", f"{by_size[size].p95_ms:.1f}"]
        ratio = by_size[large].p95_ms / by_size[small].p95_ms
        ok = all(r.p95_ms < P95_TARGET_MS for r in by_size.values()) and ratio < RATIO_TARGET
        lines.append([*row, f"{ratio:.2f}", "ok" if ok else "MISSED"])
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *lines, strict=True)]
    render = [" | ".join(str(c).rjust(w) if i > 1 else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths,
                                                                                                      strict=True)))
              for r in (header, *lines)]
    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([render[0], rule, *render[1:]])


def _short(size: int) -> str:
    return f"{size // 1000}k" if size >= 1000 and size % 1000 == 0 else str(size)


def parse(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.inbox", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,100000", help="case counts, comma-separated (default: %(default)s)")
    parser.add_argument("--iterations", type=int, default=200, help="timed runs per measurement (default: %(default)s)")
    parser.add_argument("--backends", default="sqlite,postgresql", help="sqlite and/or postgresql")
    args = parser.parse_args(argv)
    return Options(tuple(int(s) for s in args.sizes.split(",")), args.iterations,
                   backends_of(args.backends))


def main(argv: Sequence[str] | None = None) -> int:
    options = parse(argv)
    print(f"Inbox benchmark: {options.iterations} iterations per measurement, sizes "
          f"{', '.join(f'{s:,}' for s in options.sizes)} cases; targets p95 < {P95_TARGET_MS:.0f} ms and "
          f"p95 ratio < {RATIO_TARGET}")
    print(table(run(options)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
