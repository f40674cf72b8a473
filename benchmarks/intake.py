"""Intake benchmark: signed ``POST /api/v1/cases`` against a bare Flask endpoint that does one
SQLAlchemy INSERT of the same JSON (benchmarks/bare_app.py), on SQLite and on PostgreSQL.

Both apps run under gunicorn with the same sync workers on the same temporary database, the
real one with a private redis-server (started here on a free port, stopped afterwards). The
database is migrated and gets the demo queues, the example escalation rules (evaluated at
intake) and an API client. Rounds alternate A B A B ...: each sends ``requests`` requests,
signed just before the round, from ``concurrency`` threads (one connection each, 127.0.0.1
only). Interleaving shares the machine's noise between the two sides, so the ratio of the
median rates means more than either rate.

Afterwards every intake request must have been answered 202 and left one case, one receipt,
one ``case.received`` audit event and one job in the RQ "ai" queue.

    python -m benchmarks.intake [--rounds 3] [--requests 1000] [--concurrency 8] [--workers 2]
                                [--backends sqlite,postgresql] [--floor]

``--floor`` adds a third side in the same rounds: the bare app's ``POST /floor``, which makes the
writes intake must make for each case (case, receipt and audit event in one transaction; a rate
count and a queue push in Redis) and nothing else. Its ratio to bare is what those writes alone
leave of the target's room; the rest of intake's cost is the application's.

Target: median intake req/s / median bare req/s >= 0.5.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import http.client
import json
import queue
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
import yaml
from flask import Flask
from flask_migrate import upgrade
from redis import Redis
from rq import Queue as RQQueue

import benchmarks
from app import create_app, webhooks
from app.actors import Actor
from app.audit.models import AuditEvent
from app.cases.models import Case
from app.cases.queues import create_queue
from app.cases.types import examples
from app.demo.seed import EXAMPLE_RULES, QUEUES
from app.escalation.services import load_rules, validate_file
from app.extensions import db
from app.intake.models import WebhookReceipt
from app.intake.services import create_client
from benchmarks import bare_app
from benchmarks.common import (
    HOST,
    backends_of,
    bench_config,
    database_for,
    free_port,
    healthy,
    over_backends,
    percentile,
    running,
)
from config import BASE_DIR

RATIO_TARGET = 0.5
WARMUP = 16  # requests per side before the first round (imports, connections), not timed
ROUND_SECONDS = 120  # a round stops taking requests after this (well within the 300 s signature tolerance)
REQUEST_TIMEOUT = 30
BENCH_ACTOR = Actor.system("bench")


@dataclass(frozen=True)
class Options:
    rounds: int = 3
    requests: int = 1000
    concurrency: int = 8
    workers: int = 2
    backends: tuple[str, ...] = ("sqlite", "postgresql")
    floor: bool = False


@dataclass
class Side:
    """One app's rounds: the rate of each, and every request's status and latency."""

    name: str
    rates: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    @property
    def p95_ms(self) -> float:
        return percentile(self.latencies_ms, 95)


@dataclass
class Measurement:
    backend: str
    intake: Side
    bare: Side
    rules: list[str]
    checks: dict[str, tuple[int, int]]  # what → (found, expected)
    floor: Side | None = None

    @property
    def ratio(self) -> float:
        return self.intake.median / self.bare.median

    @property
    def sides(self) -> list[Side]:
        return [self.intake, *([self.floor] if self.floor else []), self.bare]

    @property
    def correct(self) -> bool:
        return all(found == expected for found, expected in self.checks.values())


# --- processes ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def gunicorn(target: str, env: dict[str, str], workers: int, log: Path) -> Iterator[int]:
    """``target`` served by ``workers`` sync workers on a free local port, until the block ends."""
    port = free_port()
    command = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--worker-class", "sync",
               "--bind", f"{HOST}:{port}", "--log-level", "warning", target]
    with running(command, env, log, f"gunicorn {target}", lambda: healthy(port)):
        yield port


# --- the database ------------------------------------------------------------------------------------


@dataclass
class Fixture:
    app: Flask
    url: str
    token: str
    secret: str
    rules: list[str]


def prepare(url: str, redis_url: str) -> Fixture:
    """Migrate; the demo queues (a default one per domain), the example rules and an API client."""
    app = create_app(type("IntakeBenchConfig", (bench_config(url),), {"REDIS_URL": redis_url}))
    with app.app_context():
        upgrade(directory=str(BASE_DIR / "migrations"))
        made = {}
        for spec in QUEUES:
            made[spec.name] = create_queue(db.session, spec.name, spec.domain, spec.sla_minutes,
                                           is_default=spec.is_default, actor=BENCH_ACTOR,
                                           escalation_target=made[spec.escalates_to] if spec.escalates_to else None)
        rules = [r.name for r in load_rules(db.session, validate_file(db.session, yaml.safe_load(
            EXAMPLE_RULES.read_text())), BENCH_ACTOR)]
        client = create_client(db.session, "bench-upstream", ["finance", "legal", "compliance"], [HOST])
        db.session.commit()
        db.engine.dispose()
    return Fixture(app, url, client.token, client.signing_secret, rules)


def verify(fixture: Fixture, redis_url: str, intake: int, bare: int) -> dict[str, tuple[int, int]]:
    """What each request must have left behind: (found, expected)."""
    with fixture.app.app_context():
        def count(model: type, *where: sa.ColumnElement[bool]) -> int:
            return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where)) or 0

        found = {"cases": count(Case), "receipts": count(WebhookReceipt),
                 "case.received events": count(AuditEvent, AuditEvent.action == "case.received")}
        db.session.remove()
        db.engine.dispose()
    connection = Redis.from_url(redis_url)
    found["jobs in the ai queue"] = RQQueue("ai", connection=connection).count
    connection.close()
    checks = {what: (n, intake) for what, n in found.items()}
    checks["bare rows"] = (bare_app.count_rows(fixture.url), bare)
    return checks


# --- the load ----------------------------------------------------------------------------------------


Request = tuple[bytes, dict[str, str]]


def signed_requests(fixture: Fixture, label: str, count: int, callback_url: str | None = None) -> list[Request]:
    """``count`` valid payment_release deliveries, each with its own external_id and webhook-id,
    signed now (the webhook timestamp must be within the tolerance when they arrive)."""
    found = []
    callback = {"callback_url": callback_url} if callback_url else {}
    for i in range(count):
        unique = f"{label}-{i}-{uuid.uuid4().hex[:8]}"
        body = {"external_id": f"bench-{unique}", "domain": "finance", "case_type": "payment_release",
                "title": f"Bench payment {unique}",
                "data": {**copy.deepcopy(examples()["payment_release"]), "payment_id": f"PAY-{unique}"}, **callback}
        raw = json.dumps(body).encode()
        found.append((raw, {"Authorization": f"Bearer {fixture.token}", "Content-Type": "application/json",
                            **webhooks.headers(fixture.secret, f"msg_{unique}", raw)}))
    return found


def send(port: int, path: str, requests: list[Request], concurrency: int, side: Side | None = None) -> None:
    """POST every request from ``concurrency`` threads; with ``side``, record the round in it."""
    todo: queue.SimpleQueue[Request] = queue.SimpleQueue()
    for each in requests:
        todo.put(each)
    results: list[tuple[int, float]] = []  # list.append is atomic
    deadline = time.monotonic() + ROUND_SECONDS

    def client() -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT)
        try:
            while time.monotonic() < deadline:
                try:
                    raw, headers = todo.get_nowait()
                except queue.Empty:
                    return
                started = time.perf_counter()
                try:
                    conn.request("POST", path, body=raw, headers=headers)
                    response = conn.getresponse()
                    response.read()  # gunicorn's sync workers close the connection: request() reopens it
                    status = response.status
                except (OSError, http.client.HTTPException):
                    conn.close()
                    status = 0
                results.append((status, (time.perf_counter() - started) * 1000))
        finally:
            conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(ROUND_SECONDS + REQUEST_TIMEOUT)
    seconds = time.perf_counter() - started
    if side is not None:
        side.rates.append(len(results) / seconds)
        side.latencies_ms += [ms for _, ms in results]
        side.statuses.update(status for status, _ in results)


def measure_backend(backend: str, options: Options) -> list[Measurement]:
    with database_for(backend) as url, tempfile.TemporaryDirectory(prefix="countersign-intake-") as tmp:
        redis_url = benchmarks.redis_url()
        Redis.from_url(redis_url).flushdb()
        fixture = prepare(url, redis_url)
        bare_app.create_tables(url)
        env = {"DATABASE_URL": url, "REDIS_URL": redis_url, "SECRET_KEY": "bench-not-secret",
               "INTAKE_RATE_LIMIT": "1000000 per minute"}
        intake, bare, floor = Side("intake"), Side("bare"), Side("floor") if options.floor else None
        sent = Counter[str]()
        with gunicorn("wsgi:app", env, options.workers, Path(tmp) / "intake.log") as intake_port, \
                gunicorn("benchmarks.bare_app:create_app()", env, options.workers, Path(tmp) / "bare.log") as bare_port:
            sides = ((intake, intake_port, "/api/v1/cases"), *([(floor, bare_port, "/floor")] if floor else []),
                     (bare, bare_port, "/cases"))
            for side, port, path in sides:
                send(port, path, signed_requests(fixture, f"{backend}-{side.name}-warmup", WARMUP), options.concurrency)
                sent[side.name] += WARMUP
            for round_ in range(1, options.rounds + 1):
                for side, port, path in sides:
                    requests = signed_requests(fixture, f"{backend}-{side.name}-{round_}", options.requests)
                    send(port, path, requests, options.concurrency, side)
                    sent[side.name] += len(requests)
        checks = verify(fixture, redis_url, sent["intake"], sent["bare"])
        if floor:
            checks["floor rows"] = (bare_app.count_rows(url, bare_app.floor_cases), sent["floor"])
            checks["floor receipts"] = (bare_app.count_rows(url, bare_app.floor_receipts), sent["floor"])
            checks["floor events"] = (bare_app.count_rows(url, bare_app.floor_events), sent["floor"])
            checks["floor queue"] = (Redis.from_url(redis_url).llen(bare_app.FLOOR_QUEUE), sent["floor"])
        measured = Measurement(backend, intake, bare, fixture.rules, checks, floor)
        for side in measured.sides:
            checks[f"{side.name} answered 202"] = (side.statuses[202], sum(side.statuses.values()))
            checks[f"{side.name} requests answered"] = (sum(side.statuses.values()), options.rounds * options.requests)
        return [measured]


def run(options: Options) -> list[Measurement]:
    return over_backends(options.backends, lambda backend: measure_backend(backend, options))


# --- reporting ---------------------------------------------------------------------------------------


def render(header: list[str], rows: list[list[str]], left: int = 2) -> str:
    """Columns: the first ``left`` left-aligned, the others right-aligned (as the other benchmarks)."""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    def line(row: list[str]) -> str:
        return " | ".join(c.ljust(w) if i < left else c.rjust(w)
                          for i, (c, w) in enumerate(zip(row, widths, strict=True)))

    lines = [line(row).rstrip() for row in (header, *rows)]
    return "\n".join([lines[0], "-+-".join("-" * w for w in widths), *lines[1:]])


def table(results: list[Measurement]) -> str:
    if not results:
        return "no results"
    rounds = max(len(r.intake.rates) for r in results)
    header = ["backend", "side", *[f"round {i} req/s" for i in range(1, rounds + 1)], "median req/s", "p95 ms",
              "side/bare", "target", "result"]
    rows = []
    for r in results:
        for side in r.sides:
            first = side is r.intake
            rows.append([r.backend, side.name, *[f"{rate:.1f}" for rate in side.rates], f"{side.median:.1f}",
                         f"{side.p95_ms:.0f}", f"{side.median / r.bare.median:.2f}" if side is not r.bare else "",
                         f">= {RATIO_TARGET}" if first else "",
                         ("PASS" if r.ratio >= RATIO_TARGET else "FAIL") if first else ""])
    return render(header, rows)


def checks_report(results: list[Measurement]) -> str:
    lines = []
    for r in results:
        listed = ", ".join(f"{what} {found}/{expected}" for what, (found, expected) in r.checks.items())
        lines.append(f"{r.backend} checks: {'ok' if r.correct else 'WRONG'} ({listed})")
    return "\n".join(lines)


def parse(argv: Sequence[str] | None = None) -> Options:
    default = Options()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.intake", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=default.rounds, help="rounds per side, interleaved "
                        "(default: %(default)s)")
    parser.add_argument("--requests", type=int, default=default.requests, help="requests per round (default: "
                        "%(default)s)")
    parser.add_argument("--concurrency", type=int, default=default.concurrency, help="concurrent clients "
                        "(default: %(default)s)")
    parser.add_argument("--workers", type=int, default=default.workers, help="gunicorn sync workers per app "
                        "(default: %(default)s)")
    parser.add_argument("--backends", default=",".join(default.backends), help="sqlite and/or postgresql "
                        "(default: %(default)s)")
    parser.add_argument("--floor", action="store_true", help="also the bare app doing only the writes intake "
                        "must make (POST /floor)")
    args = parser.parse_args(argv)
    return Options(args.rounds, args.requests, args.concurrency, args.workers,
                   backends_of(args.backends), args.floor)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse(argv)
    floor = " and the writes intake must make, alone (POST /floor)" if options.floor else ""
    print(f"Intake benchmark: signed intake (wsgi:app) vs a bare Flask INSERT (benchmarks/bare_app.py){floor}, "
          f"gunicorn {options.workers} sync workers each, {options.concurrency} concurrent clients, "
          f"{options.rounds} interleaved rounds of {options.requests} requests per side; "
          f"target intake/bare (medians) >= {RATIO_TARGET}")
    results = run(options)
    if results:
        print(f"escalation rules evaluated at intake ({len(results[0].rules)}): {', '.join(results[0].rules)}")
    print(table(results))
    if results:
        print(checks_report(results))
    return 0 if all(r.correct for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
