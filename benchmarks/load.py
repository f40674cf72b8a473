"""Load test: the whole platform in real processes under steady intake and 20 scripted reviewers,
for a bounded time, on SQLite and on PostgreSQL; then checks that nothing was lost or broken.

Processes, on 127.0.0.1 only, started as the demo starts them (``workers.demo.service_commands``):
gunicorn ``wsgi:app``, ``--workers`` RQ workers (``python -m workers --with-scheduler``, local AI
provider) and the periodic scheduler (``python -m workers.scheduler``), with a private
redis-server and a temporary database. Every case carries a callback URL to a signature-checking
receiver in this process (``app.execution.receiver``), so approvals are executed and rejections
told upstream, as in production.

Load, for ``--duration`` seconds: signed intakes at a fixed rate (each request is due at its own
moment and its latency counts from then, so a client that falls behind shows it), and
``--reviewers`` reviewers with personal API tokens, each looping: inbox → claim a pending case
(a 409 because another reviewer got it first is normal) → read it → approve it with its
view_hash (9 in 10) or reject it with a reason code, pausing 0.5 to 1 s after each step. The RQ
queue depth is sampled every 2 s. Afterwards, at most 60 s for the queues to drain, then:

    python -m benchmarks.load [--duration 300] [--rate 50 on PostgreSQL, 10 on SQLite]
                              [--reviewers 20] [--workers 2] [--backends sqlite,postgresql] [--logs DIR]

Pass criteria: intake p95 and decision p95 < 200 ms; errors (any other answer than the expected
one, except a claim's 409, and any connection error) < 0.1 %; the queue depth does not grow over
the last third of the run; every case accepted was analysed and is decided or still open (and
every approval executed, every callback received); the audit log verifies; no process logged
"database is locked"; every process ran to the end. Exit status 1 when one fails.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import random
import shutil
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen
from typing import Any

import sqlalchemy as sa
from flask import Flask
from redis import Redis
from rq import Queue as RQQueue
from rq import Worker

import benchmarks
from app.audit import chain, checkpoints, verification
from app.auth.services import create_api_token, create_user
from app.cases.models import Case, Decision, Status
from app.execution.receiver import Receiver
from app.extensions import db
from app.jobs import QUEUE_NAMES
from app.review.inbox import STATUS_GROUPS
from benchmarks import common
from benchmarks.intake import BENCH_ACTOR, REQUEST_TIMEOUT, Fixture, prepare, render, signed_requests
from workers.demo import service_commands

DEFAULT_RATES = {"postgresql": 50.0, "sqlite": 10.0}  # intakes per second
P95_TARGET_MS = 200.0
ERROR_TARGET = 0.001
REVIEW_QUEUE = "payments"  # where intake files payment releases (the finance domain's default queue)
INBOX_PAGE = 20
THINK_SECONDS = (0.5, 1.0)
APPROVE_SHARE = 0.9
REJECT = {"reason_code": "insufficient_evidence", "reason": "Load test: not enough evidence to release"}
DEPTH_EVERY_SECONDS = 2.0
DRAIN_SECONDS = 60.0
LOCKED = "database is locked"
OPEN = (*STATUS_GROUPS["open"], Status.NEEDS_INFO)
DECIDED = STATUS_GROUPS["decided"]


@dataclass(frozen=True)
class Options:
    duration: float = 300.0
    rate: float | None = None  # None: DEFAULT_RATES for each backend
    reviewers: int = 20
    workers: int = 2
    backends: tuple[str, ...] = ("sqlite", "postgresql")
    logs: Path | None = None  # where to keep the process logs (a folder per backend); None: nowhere

    def rate_for(self, backend: str) -> float:
        return self.rate or DEFAULT_RATES[backend]


# --- requests ----------------------------------------------------------------------------------------


@dataclass
class Calls:
    """One kind of request: how each ended (0: no answer) and the latency of the successful ones."""

    success: int
    race: int | None = None  # a refusal that is part of the game (another reviewer was first)
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, status: int, ms: float) -> None:
        with self._lock:
            self.statuses[status] += 1
            if status == self.success:
                self.latencies_ms.append(ms)

    @property
    def count(self) -> int:
        return sum(self.statuses.values())

    @property
    def succeeded(self) -> int:
        return self.statuses[self.success]

    @property
    def races(self) -> int:
        return self.statuses[self.race] if self.race is not None else 0

    @property
    def failures(self) -> Counter[int]:
        return Counter({s: n for s, n in self.statuses.items() if s not in (self.success, self.race)})

    def p(self, pct: float) -> float:
        return common.percentile(self.latencies_ms, pct) if self.latencies_ms else math.nan


@dataclass
class Traffic:
    intake: Calls = field(default_factory=lambda: Calls(202))
    inbox: Calls = field(default_factory=lambda: Calls(200))
    claim: Calls = field(default_factory=lambda: Calls(200, race=409))
    read: Calls = field(default_factory=lambda: Calls(200))
    decision: Calls = field(default_factory=lambda: Calls(201))
    decided: Counter[str] = field(default_factory=Counter)  # decisions answered 201, by kind
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def by_name(self) -> dict[str, Calls]:
        return {"intake": self.intake, "inbox": self.inbox, "claim": self.claim, "read case": self.read,
                "decision": self.decision}

    def count_decided(self, kind: str) -> None:
        with self._lock:
            self.decided[kind] += 1

    @property
    def requests(self) -> int:
        return sum(calls.count for calls in self.by_name().values())

    @property
    def errors(self) -> int:
        return sum(calls.failures.total() for calls in self.by_name().values())


def call(calls: Calls, port: int, method: str, path: str, headers: dict[str, str], body: bytes | None = None,
         since: float | None = None) -> tuple[int, bytes]:
    """One request on its own connection, recorded in ``calls`` (timed from ``since`` when given)."""
    started = time.perf_counter() if since is None else since
    conn = http.client.HTTPConnection(common.HOST, port, timeout=REQUEST_TIMEOUT)
    try:
        # A new connection per request: a kept-alive one may be closed by the server just as we reuse it.
        conn.request(method, path, body=body, headers={**headers, "Connection": "close"})
        response = conn.getresponse()
        status, answer = response.status, response.read()
    except (OSError, http.client.HTTPException):
        status, answer = 0, b""
    finally:
        conn.close()
    calls.record(status, (time.perf_counter() - started) * 1000)
    return status, answer


# --- the load ----------------------------------------------------------------------------------------


def send_intakes(port: int, fixture: Fixture, callback_url: str, rate: float, duration: float,
                 calls: Calls) -> float:
    """``rate * duration`` signed intakes, each sent when due; the seconds it took."""
    total = round(rate * duration)
    senders = max(8, min(64, math.ceil(rate)))  # about one a second each: one slow answer delays few others
    start = time.perf_counter()

    def sender(first: int) -> None:
        for i in range(first, total, senders):
            due = start + i / rate
            time.sleep(max(0.0, due - time.perf_counter()))
            raw, headers = signed_requests(fixture, f"load-{i}", 1, callback_url)[0]
            call(calls, port, "POST", "/api/v1/cases", headers, raw, since=due)

    threads = [threading.Thread(target=sender, args=(k,), daemon=True) for k in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


class ScriptedReviewer:
    """A reviewer's loop through the reviewer API: pick a pending case, claim, read, decide."""

    def __init__(self, token: str, port: int, traffic: Traffic, stop: threading.Event, seed: int) -> None:
        self.headers = {"Authorization": f"Bearer {token}"}
        self.port, self.traffic, self.stop = port, traffic, stop
        self.rng = random.Random(seed)

    def run(self) -> None:
        while not self.stop.is_set():
            self.review_one()

    def review_one(self) -> None:
        case_id = self.pick_pending()
        if case_id is None or not self.claim(case_id):
            return
        document = self.read(case_id)
        if document is not None:
            self.decide(case_id, document)

    def pick_pending(self) -> int | None:
        """A random case of the first inbox page, so that the reviewers do not all reach for the same one."""
        status, answer = self.request(self.traffic.inbox, "GET",
                                      f"/api/v1/inbox?queue={REVIEW_QUEUE}&status=pending_review"
                                      f"&per_page={INBOX_PAGE}")
        items = json.loads(answer)["items"] if status == 200 else []
        return self.rng.choice(items)["id"] if items else None

    def claim(self, case_id: int) -> bool:
        status, _ = self.request(self.traffic.claim, "POST", f"/api/v1/cases/{case_id}/claim")
        return status == 200

    def read(self, case_id: int) -> dict[str, Any] | None:
        status, answer = self.request(self.traffic.read, "GET", f"/api/v1/review/cases/{case_id}")
        return json.loads(answer) if status == 200 else None

    def decide(self, case_id: int, document: dict[str, Any]) -> None:
        if self.rng.random() < APPROVE_SHARE:
            kind, more = "approve", {"view_hash": document["view_hash"]}
        else:
            kind, more = "reject", REJECT
        body = {"kind": kind, "case_version": document["version"], **more}
        status, _ = self.request(self.traffic.decision, "POST", f"/api/v1/cases/{case_id}/decisions", body)
        if status == 201:
            self.traffic.count_decided(kind)

    def request(self, calls: Calls, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
        """The request, then the reviewer's think time (cut short when the run ends)."""
        headers = {**self.headers, **({"Content-Type": "application/json"} if body is not None else {})}
        answer = call(calls, self.port, method, path, headers, json.dumps(body).encode() if body is not None else None)
        self.stop.wait(self.rng.uniform(*THINK_SECONDS))
        return answer


def sample_depths(redis_url: str, stop: threading.Event, samples: list[tuple[float, int]]) -> None:
    """(seconds since the start, jobs waiting in every RQ queue) every DEPTH_EVERY_SECONDS until ``stop``."""
    connection = Redis.from_url(redis_url)
    queues = [RQQueue(name, connection=connection) for name in QUEUE_NAMES]
    started = time.monotonic()
    try:
        while True:
            samples.append((time.monotonic() - started, sum(q.count for q in queues)))
            if stop.wait(DEPTH_EVERY_SECONDS):
                return
    finally:
        connection.close()


@dataclass
class Load:
    rate: float
    seconds: float  # how long the intakes took
    traffic: Traffic
    depths: list[tuple[float, int]]


def apply_load(port: int, fixture: Fixture, tokens: list[str], callback_url: str, rate: float,
               duration: float) -> Load:
    """Intakes at ``rate`` for the duration while the reviewers work and the queue depth is sampled."""
    traffic, stop = Traffic(), threading.Event()
    depths: list[tuple[float, int]] = []
    redis_url = benchmarks.redis_url()
    threads = [threading.Thread(target=ScriptedReviewer(token, port, traffic, stop, seed=n).run, daemon=True)
               for n, token in enumerate(tokens)]
    threads.append(threading.Thread(target=sample_depths, args=(redis_url, stop, depths), daemon=True))
    for thread in threads:
        thread.start()
    try:
        seconds = send_intakes(port, fixture, callback_url, rate, duration, traffic.intake)
    finally:
        stop.set()
        for thread in threads:
            thread.join(REQUEST_TIMEOUT * 4)
    return Load(rate, seconds, traffic, depths)


# --- the platform ------------------------------------------------------------------------------------


def process_env(url: str, redis_url: str, folder: Path) -> dict[str, str]:
    """What every process gets: the database, Redis, the local AI, loopback callbacks, a signing key."""
    key = folder / "audit-signing-key.pem"
    key.write_bytes(checkpoints.generate_key()[0])
    return {"DATABASE_URL": url, "REDIS_URL": redis_url, "SECRET_KEY": "bench-not-secret",
            "INTAKE_RATE_LIMIT": "1000000 per minute", "AI_PROVIDER": "local", "OPENAI_API_KEY": "",
            "INSECURE_CALLBACK_HOSTS": common.HOST, "AUDIT_SIGNING_KEY": "", "AUDIT_SIGNING_KEY_FILE": str(key),
            "AUDIT_CHECKPOINT_DIR": str(folder / "audit-checkpoints"), "PYTHONUNBUFFERED": "1"}


@dataclass
class Platform:
    port: int
    processes: list[Popen]

    @property
    def alive(self) -> int:
        return sum(process.poll() is None for process in self.processes)


@contextlib.contextmanager
def platform(env: dict[str, str], workers: int, folder: Path) -> Iterator[Platform]:
    """Web, ``workers`` RQ workers and the scheduler, each logging to a file in ``folder``."""
    port = common.free_port()
    commands = service_commands(port)
    with contextlib.ExitStack() as stack:
        def start(name: str, command: list[str], ready: Callable[[], bool] | None = None) -> Popen:
            return stack.enter_context(common.running(command, env, folder / f"{name}.log", name, ready))

        processes = [start("web", commands["web"], lambda: common.healthy(port))]
        processes += [start(f"worker-{n}", commands["worker"]) for n in range(1, workers + 1)]
        processes.append(start("scheduler", commands["sched"]))
        connection = Redis.from_url(env["REDIS_URL"])
        common.wait_for(lambda: Worker.count(connection=connection) >= workers, common.STARTUP_SECONDS,
                        "the RQ workers")
        connection.close()
        yield Platform(port, processes)


def create_reviewers(app: Flask, count: int) -> list[str]:
    """``count`` reviewers of REVIEW_QUEUE, each with a personal API token (the raw tokens)."""
    tokens = []
    with app.app_context():
        for n in range(1, count + 1):
            user = create_user(db.session, f"load.reviewer{n}@example.com", "load-password-1", "reviewer",
                               queues=[REVIEW_QUEUE], actor=BENCH_ACTOR)
            tokens.append(create_api_token(db.session, user, "load test")[1])
        db.session.commit()
        db.session.remove()
    return tokens


# --- after the run -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Census:
    """Where the cases stand, and what the database and the receiver hold of the decisions."""

    by_status: Counter[str]
    analysed: int  # with a recommendation, or failed analysis
    decisions: int
    callbacks: Counter[str]  # documents the receiver processed, by type

    @property
    def created(self) -> int:
        return self.by_status.total()

    def total(self, statuses: Sequence[Status]) -> int:
        return sum(self.by_status[s] for s in statuses)


def census(app: Flask, receiver: Receiver) -> Census:
    with app.app_context():
        rows = db.session.execute(sa.select(Case.status, sa.func.count()).group_by(Case.status)).all()
        by_status = Counter({status: n for status, n in rows})
        analysed = db.session.scalar(sa.select(sa.func.count()).select_from(Case).where(
            sa.or_(Case.recommendation_id.is_not(None), Case.status == Status.AI_FAILED))) or 0
        decisions = db.session.scalar(sa.select(sa.func.count()).select_from(Decision)) or 0
        db.session.remove()
    callbacks = Counter(document.get("type") for document in list(receiver.processed.values()))
    return Census(by_status, analysed, decisions, callbacks)


def accounting(found: Census, traffic: Traffic) -> dict[str, tuple[int, int]]:
    """What must add up: (found, expected)."""
    approvals, rejections = traffic.decided["approve"], traffic.decided["reject"]
    return {
        "cases = intakes answered 202": (found.created, traffic.intake.succeeded),
        "analysed = cases": (found.analysed, found.created),
        "decided + still open = cases": (found.total(DECIDED) + found.total(OPEN), found.created),
        "decisions stored = answered 201": (found.decisions, traffic.decision.succeeded),
        "executed = approvals": (found.by_status[Status.EXECUTED], approvals),
        "rejected = rejections": (found.by_status[Status.REJECTED], rejections),
        "case.approved callbacks = approvals": (found.callbacks["case.approved"], approvals),
        "case.decided callbacks = rejections": (found.callbacks["case.decided"], rejections),
    }


def holds(checks: dict[str, tuple[int, int]]) -> bool:
    return all(found == expected for found, expected in checks.values())


def drain(app: Flask, receiver: Receiver, traffic: Traffic) -> float:
    """Wait, at most DRAIN_SECONDS, until the accounting holds (analyses and executions done); the seconds."""
    started = time.monotonic()
    while not holds(accounting(census(app, receiver), traffic)) and time.monotonic() - started < DRAIN_SECONDS:
        time.sleep(1)
    return time.monotonic() - started


def verify_audit(app: Flask) -> verification.VerifyResult:
    """``flask audit verify``: seal what is left, then recompute the log against every checkpoint."""
    with app.app_context():
        chain.seal(db.session)
        result = verification.verify(db.session, app.config)
        db.session.remove()
    return result


def keep_logs(folder: Path, target: Path | None) -> None:
    if target is not None:
        target.mkdir(parents=True, exist_ok=True)
        for log in folder.glob("*.log"):
            shutil.copy2(log, target / log.name)


def locked_lines(folder: Path) -> tuple[int, int]:
    """(lines saying "database is locked", logs read) over every process log."""
    logs = sorted(folder.glob("*.log"))
    return sum(LOCKED in line for log in logs for line in log.read_text(errors="replace").splitlines()), len(logs)


# --- one backend -------------------------------------------------------------------------------------


@dataclass
class Measurement:
    backend: str
    load: Load
    drain_seconds: float
    census: Census
    checks: dict[str, tuple[int, int]]
    audit: verification.VerifyResult
    locked: tuple[int, int]
    alive: tuple[int, int]  # processes still running at the end, started

    def criteria(self) -> list[tuple[str, str, str, bool]]:
        """(criterion, measured, target, met) for each pass criterion."""
        traffic = self.load.traffic
        return [self._p95("intake p95", traffic.intake), self._p95("decision p95", traffic.decision), self._errors(),
                self._depth(), self._accounting(), self._audit(), self._locked(), self._alive()]

    @property
    def passed(self) -> bool:
        return all(met for *_, met in self.criteria())

    def _p95(self, name: str, calls: Calls) -> tuple[str, str, str, bool]:
        p50, p95 = calls.p(50), calls.p(95)
        measured = f"{p95:.0f} ms (p50 {p50:.0f})" if calls.latencies_ms else "no answers"
        return name, measured, f"< {P95_TARGET_MS:.0f} ms", p95 < P95_TARGET_MS

    def _errors(self) -> tuple[str, str, str, bool]:
        errors, requests = self.load.traffic.errors, self.load.traffic.requests
        share = errors / requests if requests else 1.0
        return ("errors", f"{errors} of {requests:,} ({share:.3%})", f"< {ERROR_TARGET:.1%}",
                requests > 0 and share < ERROR_TARGET)

    def _depth(self) -> tuple[str, str, str, bool]:
        growth = last_third_growth(self.load.depths)
        deepest = max((depth for _, depth in self.load.depths), default=0)
        return ("RQ queue depth", f"max {deepest}, last third {growth:+.0f}",
                f"grows < {self.load.rate:g} in last third", growth < self.load.rate)

    def _accounting(self) -> tuple[str, str, str, bool]:
        held = sum(found == expected for found, expected in self.checks.values())
        return "accounting", f"{held}/{len(self.checks)} checks hold", "all hold", holds(self.checks)

    def _audit(self) -> tuple[str, str, str, bool]:
        result = self.audit
        measured = (f"intact: {result.checked:,} events, {result.checkpoints} checkpoints" if result.ok
                    else f"BROKEN at {result.first_bad_seq}: {result.problem}")
        return "audit verify", measured, "intact", result.ok

    def _locked(self) -> tuple[str, str, str, bool]:
        lines, logs = self.locked
        return f'"{LOCKED}"', f"{lines} lines in {logs} logs", "none", lines == 0

    def _alive(self) -> tuple[str, str, str, bool]:
        alive, started = self.alive
        return "processes", f"{alive}/{started} ran to the end", "all", alive == started


def last_third_growth(samples: list[tuple[float, int]]) -> float:
    """How much the queue depth grew over the last third of the run (least-squares trend times that span)."""
    if not samples:
        return 0.0
    span = samples[-1][0]
    tail = [(t, depth) for t, depth in samples if t >= span * 2 / 3]
    if len(tail) < 2:
        return 0.0
    times, depths = zip(*tail, strict=True)
    return statistics.linear_regression(times, depths).slope * (times[-1] - times[0])


def measure_backend(backend: str, options: Options) -> list[Measurement]:
    with common.database_for(backend) as url, tempfile.TemporaryDirectory(prefix="countersign-load-") as tmp:
        folder, redis_url = Path(tmp), benchmarks.redis_url()
        Redis.from_url(redis_url).flushdb()
        fixture = prepare(url, redis_url)
        env = process_env(url, redis_url, folder)
        fixture.app.config.update({k: env[k] for k in ("AUDIT_SIGNING_KEY", "AUDIT_SIGNING_KEY_FILE",
                                                       "AUDIT_CHECKPOINT_DIR")})
        tokens = create_reviewers(fixture.app, options.reviewers)
        receiver = Receiver(fixture.secret).start()
        try:
            with platform(env, options.workers, folder) as running_platform:
                load = apply_load(running_platform.port, fixture, tokens, f"{receiver.url}/countersign",
                                  options.rate_for(backend), options.duration)
                drain_seconds = drain(fixture.app, receiver, load.traffic)
                alive = (running_platform.alive, len(running_platform.processes))
            found = census(fixture.app, receiver)
            audit = verify_audit(fixture.app)
        finally:
            receiver.stop()
            with fixture.app.app_context():
                db.engine.dispose()
            keep_logs(folder, options.logs and options.logs / backend)
        return [Measurement(backend, load, drain_seconds, found, accounting(found, load.traffic), audit,
                            locked_lines(folder), alive)]


def run(options: Options) -> list[Measurement]:
    return common.over_backends(options.backends, lambda backend: measure_backend(backend, options))


# --- reporting ---------------------------------------------------------------------------------------


def table(results: list[Measurement]) -> str:
    if not results:
        return "no results"
    rows = [[r.backend, name, measured, target, "PASS" if met else "FAIL"]
            for r in results for name, measured, target, met in r.criteria()]
    return render(["backend", "criterion", "measured", "target", "result"], rows, left=4)


def traffic_table(results: list[Measurement]) -> str:
    rows = []
    for r in results:
        for name, calls in r.load.traffic.by_name().items():
            failures = ", ".join(f"{n} x {status or 'no answer'}" for status, n in sorted(calls.failures.items()))
            rows.append([r.backend, name, f"{calls.count:,}", _ms(calls.p(50)), _ms(calls.p(95)),
                         failures or "0", f"{calls.races:,}" if calls.race else ""])
    return render(["backend", "request", "count", "p50 ms", "p95 ms", "errors", "409 races"], rows)


def _ms(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.0f}"


def details(results: list[Measurement]) -> str:
    lines = []
    for r in results:
        load, found = r.load, r.census
        statuses = ", ".join(f"{status} {n:,}" for status, n in sorted(found.by_status.items()))
        drained = (f"drained in {r.drain_seconds:.0f} s" if holds(r.checks)
                   else f"not drained after {r.drain_seconds:.0f} s")
        lines += [f"{r.backend}: {load.traffic.intake.count:,} intakes in {load.seconds:.0f} s "
                  f"({load.traffic.intake.count / load.seconds:.1f}/s, target {load.rate:g}/s); decisions: "
                  f"{load.traffic.decided['approve']:,} approvals, {load.traffic.decided['reject']:,} rejections; "
                  f"{drained}; cases: {statuses}",
                  f"{r.backend} accounting: {'ok' if holds(r.checks) else 'WRONG'} ("
                  + ", ".join(f"{what} {found}/{expected}" for what, (found, expected) in r.checks.items()) + ")"]
    return "\n".join(lines)


def parse(argv: Sequence[str] | None = None) -> Options:
    default = Options()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=default.duration, help="seconds of load per backend "
                        "(default: %(default)s)")
    parser.add_argument("--rate", type=float, default=None, help="intakes per second (default: "
                        + ", ".join(f"{rate:g} on {backend}" for backend, rate in DEFAULT_RATES.items()) + ")")
    parser.add_argument("--reviewers", type=int, default=default.reviewers, help="scripted reviewers "
                        "(default: %(default)s)")
    parser.add_argument("--workers", type=int, default=default.workers, help="RQ worker processes "
                        "(default: %(default)s)")
    parser.add_argument("--backends", default=",".join(default.backends), help="sqlite and/or postgresql "
                        "(default: %(default)s)")
    parser.add_argument("--logs", type=Path, default=None, help="keep the logs of web, workers and scheduler "
                        "in LOGS/<backend>/ (default: not kept)")
    args = parser.parse_args(argv)
    return Options(args.duration, args.rate, args.reviewers, args.workers,
                   common.backends_of(args.backends), args.logs)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse(argv)
    rates = ", ".join(f"{options.rate_for(b):g}/s on {b}" for b in options.backends)
    print(f"Load test: {options.duration:g} s of signed intakes ({rates}) and {options.reviewers} scripted "
          f"reviewers; gunicorn wsgi:app, {options.workers} RQ workers (local AI) and the scheduler; "
          f"callbacks to a local receiver", flush=True)
    results = run(options)
    print(traffic_table(results))
    print(table(results))
    print(details(results))
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
