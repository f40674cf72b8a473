"""SLA sweep benchmark: one sweep over 10,000 and over 100,000 open cases, with the same number
of cases (100) crossing an SLA step since the previous sweep, on PostgreSQL and SQLite.

Open cases are bulk-inserted into a temporary database, spread over six queues and over their
SLA windows (some already warned, some breached long ago and left where they are), each with
``sla_notified_pct``, ``sla_window_minutes`` and ``sla_next_at`` consistent with the clock (as
`sla.next_step_at` computes it). Then ``changes`` cases whose next step came due in the minute
before now are added (a third at each of 50 %, 75 % and 100 %) and one sweep is timed: it warns,
or escalates, exactly those. For contrast, a sweep with nothing due is timed too.

    python -m benchmarks.sweep [--sizes 10000,100000] [--changes 100] [--repeat 3] [--backends postgresql,sqlite]

Targets: a sweep at the largest size < 2 s, and sweep(largest) / sweep(smallest) < 1.5.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask_migrate import upgrade

from app import create_app
from app.cases.models import Case, Queue, Status
from app.db import utcnow
from app.escalation import sla
from app.extensions import db
from app.intake.services import create_client
from app.users import User
from benchmarks.common import backends_of, bench_config, database_for, over_backends
from config import BASE_DIR

SECONDS_TARGET = 2.0
RATIO_TARGET = 1.5
BATCH = 5_000
INTERVAL = timedelta(seconds=60)  # between the previous sweep and the timed one
NO_PASSWORD = "!"  # noqa: S105 (no hash matches it: nobody signs in)
# (name, domain, case type, share of the open cases, SLA minutes, escalation target)
QUEUES = (("payments", "finance", "payment_release", 0.35, 240, "finance-senior"),
          ("credit", "finance", "credit_limit_change", 0.15, 1440, "finance-senior"),
          ("finance-senior", "finance", "payment_release", 0.05, 120, None),
          ("legal", "legal", "contract_review", 0.15, 2880, None),
          ("compliance", "compliance", "aml_alert", 0.25, 1440, "compliance-senior"),
          ("compliance-senior", "compliance", "aml_alert", 0.05, 480, None))
OPEN_STATUSES = (Status.PENDING_REVIEW, Status.AI_FAILED, Status.IN_REVIEW, Status.AWAITING_SECOND_APPROVAL)


@dataclass(frozen=True)
class Options:
    sizes: tuple[int, ...] = (10_000, 100_000)
    changes: int = 100
    repeat: int = 3
    backends: tuple[str, ...] = ("postgresql", "sqlite")


@dataclass(frozen=True)
class Measurement:
    backend: str
    open_cases: int
    changes: int
    seconds: float  # median of the timed sweeps
    idle_seconds: float  # a sweep with nothing due


@dataclass
class Fixture:
    app: Flask
    client_id: int
    reviewer_id: int
    queues: dict[str, tuple[int, int]]  # name → (id, SLA minutes)
    now: datetime
    rows: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(11))

    @property
    def previous(self) -> datetime:
        return self.now - INTERVAL


def prepare(url: str) -> Fixture:
    app = create_app(bench_config(url))
    with app.app_context():
        upgrade(directory=str(BASE_DIR / "migrations"))
        queues: dict[str, Queue] = {}
        for name, domain, _, _, minutes, target in reversed(QUEUES):  # targets first
            lead = User(email=f"lead.{name}@example.com", name=f"Lead {name}", role="senior_reviewer",
                        password_hash=NO_PASSWORD)
            queues[name] = Queue(name=name, domain=domain, sla_minutes=minutes, lead=lead,
                                 escalation_target=queues[target] if target else None)
        reviewer = User(email="bench.reviewer@example.com", name="Reviewer", role="reviewer",
                        password_hash=NO_PASSWORD)
        db.session.add_all([*queues.values(), reviewer])
        client = create_client(db.session, "bench-upstream", ["finance", "legal", "compliance"], ["127.0.0.1"])
        db.session.commit()
        now = utcnow().replace(microsecond=0)
        return Fixture(app, client.client.id, reviewer.id, {n: (q.id, q.sla_minutes) for n, q in queues.items()}, now)


# --- rows ---------------------------------------------------------------------------------------------


def _row(fixture: Fixture, queue: tuple[str, str, str], window: int, due: datetime, notified: int,
         status: Status) -> dict[str, Any]:
    fixture.rows += 1
    name, domain, case_type = queue
    created = due - timedelta(minutes=window)
    step = next((s for s in sla.STEPS if s > notified), None)  # round the clock: no business hours here
    next_at = sla.step_at(due, window, step, None) if step is not None else None
    return {
        "id": fixture.rows, "client_id": fixture.client_id, "external_id": f"SWEEP-{fixture.rows:07d}",
        "domain": domain, "case_type": case_type, "title": f"Bench case {fixture.rows}", "payload": {},
        "status": status.value, "priority": 1, "confidential": False, "queue_id": fixture.queues[name][0],
        "assignee_id": fixture.reviewer_id if status == Status.IN_REVIEW else None, "sla_due_at": due,
        "sla_notified_pct": notified, "sla_window_minutes": window, "sla_next_at": next_at,
        "requires_dual_approval": False, "reopen_count": 0, "version": 1,
        "created_at": created, "updated_at": created,
    }


def _queue(fixture: Fixture) -> tuple[tuple[str, str, str], int]:
    name, domain, case_type, _, minutes, _ = fixture.rng.choices(QUEUES, weights=[q[3] for q in QUEUES])[0]
    return (name, domain, case_type), minutes


def steady_row(fixture: Fixture) -> dict[str, Any]:
    """An open case anywhere in its SLA window (or past it), with every step due so far taken."""
    queue, window = _queue(fixture)
    due = fixture.now + timedelta(minutes=window * (1 - fixture.rng.uniform(0, 1.4)))
    status = fixture.rng.choice(OPEN_STATUSES)
    return _row(fixture, queue, window, due, sla.reached(due, window, None, fixture.now), status)


def crossing_row(fixture: Fixture, step: int) -> dict[str, Any]:
    """An open case whose clock passed ``step`` between the previous sweep and now: its
    ``sla_next_at`` is in that minute."""
    queue, window = _queue(fixture)
    left = timedelta(minutes=window * (100 - step) / 100)
    due = fixture.previous + left + fixture.rng.uniform(0.01, 1) * INTERVAL
    previous_step = {50: 0, 75: 50, 100: 75}[step]
    return _row(fixture, queue, window, due, previous_step, Status.AI_FAILED)


def insert(fixture: Fixture, rows: list[dict[str, Any]]) -> None:
    with fixture.app.app_context():
        for start in range(0, len(rows), BATCH):
            db.session.execute(sa.insert(Case.__table__), rows[start:start + BATCH])
            db.session.commit()


def grow(fixture: Fixture, size: int) -> None:
    insert(fixture, [steady_row(fixture) for _ in range(size - fixture.rows)])
    with fixture.app.app_context(), db.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()


def add_crossing(fixture: Fixture, changes: int) -> None:
    insert(fixture, [crossing_row(fixture, (50, 75, 100)[i % 3]) for i in range(changes)])


# --- measuring ----------------------------------------------------------------------------------------


def timed_sweep(fixture: Fixture, changes: int) -> float:
    with fixture.app.app_context():
        started = time.perf_counter()
        report = sla.sweep(db.session, fixture.now, db.session.commit)
        seconds = time.perf_counter() - started
    taken = report.warned + report.breached
    if taken != changes:
        raise RuntimeError(f"the sweep took {taken} steps, not the {changes} placed")
    return seconds


def measure_size(fixture: Fixture, options: Options) -> tuple[float, float]:
    samples = []
    for _ in range(options.repeat):
        add_crossing(fixture, options.changes)
        samples.append(timed_sweep(fixture, options.changes))
    return statistics.median(samples), timed_sweep(fixture, 0)


def measure_backend(backend: str, options: Options) -> list[Measurement]:
    found = []
    with database_for(backend) as url:
        fixture = prepare(url)
        try:
            add_crossing(fixture, 3)  # warm-up: statements compiled, caches filled
            timed_sweep(fixture, 3)
            for size in sorted(options.sizes):
                grow(fixture, size)
                seconds, idle = measure_size(fixture, options)
                found.append(Measurement(backend, size, options.changes, seconds, idle))
        finally:
            with fixture.app.app_context():
                db.engine.dispose()
    return found


def run(options: Options) -> list[Measurement]:
    return over_backends(options.backends, lambda backend: measure_backend(backend, options))


# --- reporting ----------------------------------------------------------------------------------------


def verdicts(results: list[Measurement]) -> dict[str, tuple[float, bool]]:
    """Per backend: sweep(largest) / sweep(smallest), and whether both targets are met."""
    found = {}
    for backend in dict.fromkeys(r.backend for r in results):
        ordered = sorted((r for r in results if r.backend == backend), key=lambda r: r.open_cases)
        ratio = ordered[-1].seconds / ordered[0].seconds
        found[backend] = (ratio, ratio < RATIO_TARGET and ordered[-1].seconds < SECONDS_TARGET)
    return found


def table(results: list[Measurement]) -> str:
    if not results:
        return "no results"
    judged = verdicts(results)
    header = ("backend", "open cases", "crossing", "sweep s", "ratio", "target", "nothing due s")
    lines = []
    for r in results:
        ratio, ok = judged[r.backend]
        largest = r.open_cases == max(m.open_cases for m in results if m.backend == r.backend)
        lines.append((r.backend, f"{r.open_cases:,}", f"{r.changes:,}", f"{r.seconds:.3f}",
                      f"{ratio:.2f}x" if largest else "", ("ok" if ok else "MISSED") if largest else "",
                      f"{r.idle_seconds:.3f}"))
    widths = [max(len(row[i]) for row in (header, *lines)) for i in range(len(header))]
    render = [" | ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths,
                                                                                                 strict=True)))
              for row in (header, *lines)]
    return "\n".join([render[0], "-+-".join("-" * w for w in widths), *render[1:]])


def parse(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="open cases, comma-separated (default: %(default)s)")
    parser.add_argument("--changes", type=int, default=100, help="cases crossing a step (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="timed sweeps per size (default: %(default)s)")
    parser.add_argument("--backends", default="postgresql,sqlite", help="postgresql and/or sqlite")
    args = parser.parse_args(argv)
    return Options(tuple(int(s) for s in args.sizes.split(",")), args.changes, args.repeat,
                   backends_of(args.backends))


def main(argv: Sequence[str] | None = None) -> int:
    options = parse(argv)
    print(f"SLA sweep benchmark: {options.changes} cases crossing a step among "
          f"{', '.join(f'{s:,}' for s in options.sizes)} open cases; median of {options.repeat} sweeps; "
          f"targets < {SECONDS_TARGET:.0f} s at the largest size and ratio < {RATIO_TARGET}")
    results = run(options)
    print(table(results))
    return 0 if all(ok for _, ok in verdicts(results).values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
