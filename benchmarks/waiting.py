"""Waiting agents benchmark: do agents waiting for a decision (``GET /api/v1/cases/<id>?wait=``)
slow the reviewers down? gunicorn as docs/agent-approvals.md prescribes; 10 reviewers claim and
approve agents' tool calls through the reviewer API, in rounds: once with no one waiting and once
while 100 agents wait on the calls decided meanwhile (the order alternates from round to round).

The reviewers run in a process of their own, as real reviewers sit at other machines than the
agents: timed among the 100 waiting agents' threads, they would also time the benchmark's own
client waiting for its GIL. Phases interleave so that load from elsewhere on a shared machine falls
on both sides alike.

    python -m benchmarks.waiting [--cases-per-reviewer 10] [--rounds 4] [--backends sqlite,postgresql] [--control]

``--control`` holds the same 100 waits during the phase with waiters, on calls nobody decides then
(they are decided once it is measured): what holding waits costs the reviewers, without answering
any, and a check of the benchmark itself, whose two phases then do the same work.

Targets: the reviewers' p95 with the waiters within 20 % of their p95 without (the median of the
rounds' ratios; the ratio of the pooled p95s is shown beside it); every waiter of a decided call
answered within 1 s of its decision.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import http.client
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask_migrate import upgrade

import benchmarks
from app import create_app
from app.actors import Actor
from app.audit.checkpoints import generate_key
from app.auth.services import create_api_token, create_user
from app.cases.models import Case, Queue, Recommendation, Status
from app.cases.types import named
from app.db import utcnow
from app.extensions import db
from app.intake.services import create_client
from benchmarks import common
from config import BASE_DIR

GUNICORN = ["--workers", "2", "--threads", "100", "--timeout", "90", "--no-control-socket"]
REVIEWERS = 10
ROUNDS = 6
WAITERS = 100
P95_RATIO_TARGET = 1.2
ANSWER_TARGET_SECONDS = 1.0
IDLE_SECONDS = 5
SEED_ACTOR = Actor.system("bench")


@dataclass(frozen=True)
class Options:
    cases_per_reviewer: int = 10
    rounds: int = ROUNDS
    wait_seconds: int = 30
    backends: tuple[str, ...] = ("sqlite", "postgresql")
    control: bool = False  # the waiters' calls are not the ones decided while they wait


@dataclass(frozen=True)
class Measurement:
    backend: str
    rounds: int
    p95_without_ms: float  # all rounds' claims and decisions pooled
    p95_with_ms: float
    round_ratios: tuple[float, ...]  # each round's p95 with / without: the spread
    cpu_without_ms: float  # the server's CPU time per reviewer decision (with its claim)
    cpu_with_ms: float  # the same while agents waited: with the answers to them
    slowest_answer_s: float
    idle_cpu_s: float  # the server's CPU time while the 100 agents waited with nothing to answer (5 s)
    answered: int  # waiters of decided calls answered with the decision
    decided: int  # calls decided while their agents waited


# --- talking to the server --------------------------------------------------------------------------------


def call(port: int, method: str, path: str, token: str, body: dict[str, Any] | None = None,
         timeout: float = 90) -> tuple[int, Any]:
    """One request on its own connection: (status, parsed JSON)."""
    conn = http.client.HTTPConnection(common.HOST, port, timeout=timeout)
    try:
        raw = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {token}", "Connection": "close",
                   **({"Content-Type": "application/json"} if raw else {})}
        conn.request(method, path, body=raw, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


@contextlib.contextmanager
def gunicorn(env: dict[str, str], log: Path) -> Iterator[int]:
    """``gunicorn wsgi:app`` set up for waiting agents, on a free port, until it answers /healthz."""
    port = common.free_port()
    command = [sys.executable, "-m", "gunicorn", "wsgi:app", "--bind", f"{common.HOST}:{port}", *GUNICORN]
    with common.running(command, env, log, "gunicorn wsgi:app", lambda: common.healthy(port), startup_seconds=60):
        yield port


# --- reviewers and waiting agents ------------------------------------------------------------------------


@dataclass
class Reviewing:
    latencies: list[float] = field(default_factory=list)  # each claim and each decision
    decided_at: dict[int, float] = field(default_factory=dict)  # time.monotonic(): the same clock in every process
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def p95(self) -> float:
        return common.percentile(self.latencies, 95)


def _review(port: int, token: str, case_ids: list[int], into: Reviewing) -> None:
    for case_id in case_ids:
        started = time.monotonic()
        status, claimed = call(port, "POST", f"/api/v1/cases/{case_id}/claim", token)
        claimed_at = time.monotonic()
        decided, answer = call(port, "POST", f"/api/v1/cases/{case_id}/decisions", token,
                               {"kind": "approve", "case_version": (claimed or {}).get("version")})
        done = time.monotonic()
        with into.lock:
            into.latencies += [claimed_at - started, done - claimed_at]
            into.decided_at[case_id] = done
            if (status, decided) != (200, 201):
                into.failures.append(f"case {case_id}: claim {status}, decision {decided} {answer}")


def run_reviewers(port: int, tokens: list[str], cases: list[int]) -> Reviewing:
    """Each reviewer (a token) claims and approves its share of ``cases``, all at once."""
    reviewing = Reviewing()
    threads = [threading.Thread(target=_review, args=(port, token, cases[n::len(tokens)], reviewing))
               for n, token in enumerate(tokens)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    if reviewing.failures:
        raise AssertionError("; ".join(reviewing.failures))
    return reviewing


def _reviewed(port: int, tokens: list[str], cases: list[int]) -> tuple[list[float], dict[int, float]]:
    reviewing = run_reviewers(port, tokens, cases)
    return reviewing.latencies, reviewing.decided_at


class ReviewerProcess:
    """`run_reviewers` in a process of its own (started once, reused by every phase)."""

    def __init__(self) -> None:
        self.pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))

    def review(self, port: int, tokens: list[str], cases: list[int]) -> Reviewing:
        latencies, decided_at = self.pool.submit(_reviewed, port, tokens, cases).result(timeout=600)
        return Reviewing(latencies, decided_at)

    def close(self) -> None:
        self.pool.shutdown()


class Waiters:
    """One thread per case, each an agent waiting for its decision; ``answers``: when, and what."""

    def __init__(self, port: int, token: str, case_ids: list[int], seconds: int) -> None:
        self.answers: dict[int, tuple[float, int, str]] = {}
        self.threads = [threading.Thread(target=self._wait, args=(port, token, case_id, seconds))
                        for case_id in case_ids]

    def _wait(self, port: int, token: str, case_id: int, seconds: int) -> None:
        status, document = call(port, "GET", f"/api/v1/cases/{case_id}?wait={seconds}", token)
        self.answers[case_id] = (time.monotonic(), status, (document or {}).get("status", ""))

    def start(self) -> Waiters:
        for thread in self.threads:
            thread.start()
        return self

    def join(self, seconds: float) -> None:
        for thread in self.threads:
            thread.join(seconds)


def subscribed(redis_url: str, case_ids: list[int]) -> int:
    """How many subscriptions the waiters of ``case_ids`` hold on Redis right now."""
    from redis import Redis

    from app.agents.waiting import channel

    connection = Redis.from_url(redis_url)
    try:
        return sum(n for _, n in connection.pubsub_numsub(*(channel(c) for c in case_ids)))
    finally:
        connection.close()


def until_subscribed(redis_url: str, case_ids: list[int], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while subscribed(redis_url, case_ids) < len(case_ids):
        if time.monotonic() > deadline:
            raise AssertionError("the waiters did not all subscribe")
        time.sleep(0.1)


def server_cpu_seconds(port: int) -> float:
    """CPU time used so far by the gunicorn processes serving ``port`` (Linux: /proc)."""
    found = subprocess.run(["pgrep", "-f", f"{common.HOST}:{port}"], capture_output=True, text=True, check=False)
    ticks = 0
    for pid in found.stdout.split():
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def until_settled(port: int, seconds: float = 20) -> None:
    """Until the server serving ``port`` is idle (under 0.02 s of CPU in half a second): the agents'
    requests are all blocked waiting, none is still on its way there."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        before = server_cpu_seconds(port)
        time.sleep(0.5)
        if server_cpu_seconds(port) - before < 0.02:
            return
    raise AssertionError("the server did not settle")


# --- the benchmark -----------------------------------------------------------------------------------------


def _prepare(url: str, calls: int) -> tuple[list[str], str, list[int]]:
    """Migrated database: a finance queue, 10 reviewers' tokens, an API client's token, ``calls`` calls
    waiting in the queue with a recommendation."""
    app = create_app(common.bench_config(url))
    with app.app_context():
        upgrade(directory=str(BASE_DIR / "migrations"))
        queue = Queue(name="finance", domain="finance", is_default=True, sla_minutes=60)
        db.session.add(queue)
        new_client = create_client(db.session, "bench-agents", ["finance"], ["127.0.0.1"])
        users = [create_user(db.session, f"reviewer{n}@example.com", "bench-password-1", "reviewer",
                             queues=["finance"]) for n in range(REVIEWERS)]
        tokens = [create_api_token(db.session, user, "bench")[1] for user in users]
        example = named("agent_action").example
        cases = [_open_call(new_client.client.id, queue, n, example) for n in range(calls)]
        db.session.commit()
        ids = [case.id for case in cases]
        db.engine.dispose()
    return tokens, new_client.token, ids


def _open_call(client_id: int, queue: Queue, n: int, data: dict[str, Any]) -> Case:
    now = utcnow()
    case = Case(client_id=client_id, external_id=f"bench-{n}", domain="finance", case_type="agent_action",
                title=f"Agent call {n}", payload=copy.deepcopy(data), status=Status.PENDING_REVIEW.value,
                queue=queue, sla_notified_pct=0, created_at=now, updated_at=now)
    db.session.add(case)
    db.session.flush()
    rec = Recommendation(case_id=case.id, case_version=case.version, provider="local", model="rules-v1",
                         template_version="v1", prompt_hash="0" * 64, input_hash="0" * 64, action="execute",
                         parameters=data["tool"]["arguments"], rationale="Approve.", confidence=0.9, flags=[],
                         citations=[])
    db.session.add(rec)
    db.session.flush()
    case.recommendation_id = rec.id
    return case


@dataclass
class Phases:
    """What the rounds found, pooled: each side's latencies and server CPU, the waiters' answers."""

    without: Reviewing = field(default_factory=Reviewing)
    with_waiters: Reviewing = field(default_factory=Reviewing)
    cpu: dict[str, float] = field(default_factory=lambda: {"without": 0.0, "with": 0.0})
    round_ratios: list[float] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)
    answered: int = 0
    decided: int = 0
    idle_cpu: float | None = None


class Bench:
    """One backend's server, reviewers and cases, phase after phase."""

    def __init__(self, port: int, redis_url: str, reviewers: ReviewerProcess, tokens: list[str],
                 client_token: str, options: Options) -> None:
        self.port, self.redis_url, self.reviewers, self.tokens = port, redis_url, reviewers, tokens
        self.client_token, self.options = client_token, options
        self.found = Phases()

    def without(self, cases: list[int]) -> Reviewing:
        started = server_cpu_seconds(self.port)
        reviewing = self.reviewers.review(self.port, self.tokens, cases)
        self.found.cpu["without"] += server_cpu_seconds(self.port) - started
        self.found.without.latencies += reviewing.latencies
        return reviewing

    def with_waiters(self, waited: list[int], decided: list[int]) -> Reviewing:
        """Reviewers decide ``decided`` while agents wait on ``waited``; in a control run the two
        differ, and ``waited`` is decided afterwards, out of the measurement, to end the waits."""
        waiters = Waiters(self.port, self.client_token, waited, self.options.wait_seconds).start()
        until_subscribed(self.redis_url, waited)
        until_settled(self.port)  # each waiter reads the case once more after subscribing
        if self.found.idle_cpu is None:
            before_idle = server_cpu_seconds(self.port)
            time.sleep(IDLE_SECONDS)
            self.found.idle_cpu = server_cpu_seconds(self.port) - before_idle
        started = server_cpu_seconds(self.port)
        reviewing = self.reviewers.review(self.port, self.tokens, decided)
        if not self.options.control:
            waiters.join(self.options.wait_seconds + 30)  # answering them is the phase's work
        self.found.cpu["with"] += server_cpu_seconds(self.port) - started
        if self.options.control:  # the waits end, out of the measurement
            reviewing.decided_at.update(self.reviewers.review(self.port, self.tokens, waited).decided_at)
            decided = waited
            waiters.join(self.options.wait_seconds + 30)
        self.found.with_waiters.latencies += reviewing.latencies
        self.found.delays += [waiters.answers[c][0] - reviewing.decided_at[c] for c in decided if c in waiters.answers]
        self.found.answered += sum(waiters.answers.get(c, (0, 0, ""))[1:] == (200, "approved") for c in decided)
        self.found.decided += len(decided)
        return reviewing

    def round(self, number: int, cases: list[int], waited: list[int], control_calls: list[int]) -> None:
        """Both phases, the side without waiters first in even rounds and last in odd ones."""
        decided = control_calls if self.options.control else waited[:len(cases)]
        if number % 2 == 0:
            alone, loaded = self.without(cases), self.with_waiters(waited, decided)
        else:
            loaded, alone = self.with_waiters(waited, decided), self.without(cases)
        self.found.round_ratios.append(loaded.p95 / alone.p95)


def measure_backend(backend: str, options: Options) -> list[Measurement]:
    per_phase = REVIEWERS * options.cases_per_reviewer
    per_round = per_phase + WAITERS + (per_phase if options.control else 0)
    with common.database_for(backend) as url, contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="countersign-wait-")))
        tokens, client_token, ids = _prepare(url, REVIEWERS + options.rounds * per_round)
        key = folder / "audit-key.pem"
        key.write_bytes(generate_key()[0])
        env = {"DATABASE_URL": url, "REDIS_URL": benchmarks.redis_url(), "SECRET_KEY": "bench-not-secret",
               "AI_PROVIDER": "local", "OPENAI_API_KEY": "", "AUDIT_SIGNING_KEY": "",
               "AUDIT_SIGNING_KEY_FILE": str(key), "AUDIT_CHECKPOINT_DIR": str(folder / "checkpoints"),
               "PYTHONUNBUFFERED": "1"}
        port = stack.enter_context(gunicorn(env, folder / "gunicorn.log"))
        reviewers = ReviewerProcess()
        stack.callback(reviewers.close)
        reviewers.review(port, tokens, ids[:REVIEWERS])  # both workers and the reviewers' process warmed up
        bench = Bench(port, env["REDIS_URL"], reviewers, tokens, client_token, options)
        for number in range(options.rounds):
            start = REVIEWERS + number * per_round
            waits_from = start + per_phase
            bench.round(number, ids[start:waits_from], ids[waits_from:waits_from + WAITERS],
                        ids[waits_from + WAITERS:start + per_round])
    found = bench.found
    decisions = options.rounds * per_phase
    return [Measurement(backend, options.rounds, found.without.p95 * 1000, found.with_waiters.p95 * 1000,
                        tuple(found.round_ratios), found.cpu["without"] / decisions * 1000,
                        found.cpu["with"] / decisions * 1000, max(found.delays, default=float("inf")),
                        found.idle_cpu or 0.0, found.answered, found.decided)]


def run(options: Options) -> list[Measurement]:
    return common.over_backends(options.backends, lambda backend: measure_backend(backend, options))


def paired_ratio(r: Measurement) -> float:
    """The median of the rounds' ratios: each compares two phases run side by side, so a burst of
    load from elsewhere that falls on one phase moves one round, where it would move a pooled p95."""
    return statistics.median(r.round_ratios)


def met(r: Measurement) -> bool:
    return (paired_ratio(r) <= P95_RATIO_TARGET and r.slowest_answer_s < ANSWER_TARGET_SECONDS
            and r.answered == r.decided)


def table(results: list[Measurement]) -> str:
    lines = ["backend    | p95 without ms | p95 with 100 waiters ms | pooled | rounds: median (min-max) | "
             "server CPU ms/decision | slowest answer s | answered  | idle CPU s / 5 s | target",
             "-----------+----------------+-------------------------+--------+--------------------------+-"
             "-----------------------+------------------+-----------+------------------+-------"]
    for r in results:
        spread = f"{r.rounds}: {paired_ratio(r):.2f} ({min(r.round_ratios):.2f}-{max(r.round_ratios):.2f})"
        cpu = f"{r.cpu_without_ms:.1f} -> {r.cpu_with_ms:.1f}"
        lines.append(f"{r.backend:<10} | {r.p95_without_ms:>14.0f} | {r.p95_with_ms:>23.0f} | "
                     f"{r.p95_with_ms / r.p95_without_ms:>6.2f} | {spread:<24} | {cpu:>22} | "
                     f"{r.slowest_answer_s:>16.2f} | {f'{r.answered}/{r.decided}':>9} | {r.idle_cpu_s:>16.2f} | "
                     f"{'ok' if met(r) else 'MISSED'}")
    return "\n".join(lines)


def parse(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.waiting", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases-per-reviewer", type=int, default=10,
                        help="calls each reviewer decides per phase (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=ROUNDS,
                        help="rounds of both phases, interleaved (default: %(default)s)")
    parser.add_argument("--backends", default="sqlite,postgresql", help="sqlite and/or postgresql")
    parser.add_argument("--control", action="store_true",
                        help="the agents wait on calls nobody decides while it is measured (holding, not answering)")
    args = parser.parse_args(argv)
    return Options(args.cases_per_reviewer, args.rounds, backends=common.backends_of(args.backends),
                   control=args.control)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse(argv)
    control = " on calls nobody decides meanwhile (control)" if options.control else ""
    print(f"Waiting agents: {REVIEWERS} reviewers, {options.cases_per_reviewer} calls each per phase, "
          f"{options.rounds} rounds, {WAITERS} agents waiting{control}; gunicorn {' '.join(GUNICORN)}; "
          f"targets p95 ratio <= {P95_RATIO_TARGET}, answers within {ANSWER_TARGET_SECONDS:.0f} s")
    results = run(options)
    print(table(results))
    return 0 if all(met(r) for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
