"""Waiting agents benchmark: do agents waiting for a decision (``GET /api/v1/cases/<id>?wait=``)
slow the reviewers down? gunicorn as docs/agent-approvals.md prescribes (2 workers of 100
threads); 10 reviewers claim and approve agents' tool calls through the reviewer API, once with
no one waiting and once while 100 agents wait, 30 of them on calls decided meanwhile.

    python -m benchmarks.waiting [--cases-per-reviewer 10] [--backends sqlite,postgresql]

Targets: the reviewers' p95 with the waiters within 20 % of their p95 without; every waiter of a
decided call answered within 1 s of its decision.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
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
from benchmarks.inbox import bench_config, database_for, over_backends
from config import BASE_DIR

HOST = "127.0.0.1"
GUNICORN = ["--workers", "2", "--threads", "100", "--timeout", "90", "--no-control-socket"]
REVIEWERS = 10
WAITERS = 100
P95_RATIO_TARGET = 1.2
ANSWER_TARGET_SECONDS = 1.0
IDLE_SECONDS = 5
SEED_ACTOR = Actor.system("bench")


@dataclass(frozen=True)
class Options:
    cases_per_reviewer: int = 10
    wait_seconds: int = 30
    backends: tuple[str, ...] = ("sqlite", "postgresql")


@dataclass(frozen=True)
class Measurement:
    backend: str
    p95_without_ms: float
    p95_with_ms: float
    slowest_answer_s: float
    idle_cpu_s: float  # the server's CPU time while the 100 agents waited with nothing to answer (5 s)
    answered: int  # waiters of decided calls answered with the decision
    decided: int  # calls decided while their agents waited


# --- talking to the server --------------------------------------------------------------------------------


def call(port: int, method: str, path: str, token: str, body: dict[str, Any] | None = None,
         timeout: float = 90) -> tuple[int, Any]:
    """One request on its own connection: (status, parsed JSON)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        raw = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {token}", "Connection": "close",
                   **({"Content-Type": "application/json"} if raw else {})}
        conn.request(method, path, body=raw, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def gunicorn(env: dict[str, str], log: Path) -> Iterator[int]:
    """``gunicorn wsgi:app`` set up for waiting agents, on a free port, until it answers /healthz."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "gunicorn", "wsgi:app", "--bind", f"{HOST}:{port}",
                                    *GUNICORN], cwd=BASE_DIR, env={**os.environ, **env}, stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError, http.client.HTTPException):
                if call(port, "GET", "/healthz", "", timeout=2)[0] == 200:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


# --- reviewers and waiting agents ------------------------------------------------------------------------


@dataclass
class Reviewing:
    latencies: list[float] = field(default_factory=list)  # each claim and each decision
    decided_at: dict[int, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def p95(self) -> float:
        return statistics.quantiles(self.latencies, n=20)[-1]


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
    found = subprocess.run(["pgrep", "-f", f"{HOST}:{port}"], capture_output=True, text=True, check=False)
    ticks = 0
    for pid in found.stdout.split():
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


# --- the benchmark -----------------------------------------------------------------------------------------


def _prepare(url: str, calls: int) -> tuple[list[str], str, list[int]]:
    """Migrated database: a finance queue, 10 reviewers' tokens, an API client's token, ``calls`` calls
    waiting in the queue with a recommendation."""
    app = create_app(bench_config(url))
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


def measure_backend(backend: str, options: Options) -> list[Measurement]:
    per_phase = REVIEWERS * options.cases_per_reviewer
    with database_for(backend) as url, contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="countersign-wait-")))
        tokens, client_token, ids = _prepare(url, REVIEWERS + per_phase + WAITERS)
        warm_up, before, waited = ids[:REVIEWERS], ids[REVIEWERS:REVIEWERS + per_phase], ids[REVIEWERS + per_phase:]
        decided_while_waiting = waited[:per_phase]  # as many as without waiters (at most all 100)
        key = folder / "audit-key.pem"
        key.write_bytes(generate_key()[0])
        env = {"DATABASE_URL": url, "REDIS_URL": benchmarks.redis_url(), "SECRET_KEY": "bench-not-secret",
               "AI_PROVIDER": "local", "OPENAI_API_KEY": "", "AUDIT_SIGNING_KEY": "",
               "AUDIT_SIGNING_KEY_FILE": str(key), "AUDIT_CHECKPOINT_DIR": str(folder / "checkpoints"),
               "PYTHONUNBUFFERED": "1"}
        port = stack.enter_context(gunicorn(env, folder / "gunicorn.log"))
        run_reviewers(port, tokens, warm_up)
        without = run_reviewers(port, tokens, before)
        waiters = Waiters(port, client_token, waited, options.wait_seconds).start()
        until_subscribed(env["REDIS_URL"], waited)
        before_idle = server_cpu_seconds(port)
        time.sleep(IDLE_SECONDS)
        idle_cpu = server_cpu_seconds(port) - before_idle
        with_waiters = run_reviewers(port, tokens, decided_while_waiting)
        waiters.join(options.wait_seconds + 30)
    delays = [waiters.answers[c][0] - with_waiters.decided_at[c] for c in decided_while_waiting if c in waiters.answers]
    answered = sum(waiters.answers.get(c, (0, 0, ""))[1:] == (200, "approved") for c in decided_while_waiting)
    return [Measurement(backend, without.p95 * 1000, with_waiters.p95 * 1000, max(delays, default=float("inf")),
                        idle_cpu, answered, len(decided_while_waiting))]


def run(options: Options) -> list[Measurement]:
    return over_backends(options.backends, lambda backend: measure_backend(backend, options))


def table(results: list[Measurement]) -> str:
    lines = ["backend    | p95 without ms | p95 with 100 waiters ms | ratio | slowest answer s | answered  | "
             "idle CPU s / 5 s | target",
             "-----------+----------------+-------------------------+-------+------------------+-----------+-"
             "-----------------+-------"]
    for r in results:
        ratio = r.p95_with_ms / r.p95_without_ms
        ok = ratio <= P95_RATIO_TARGET and r.slowest_answer_s < ANSWER_TARGET_SECONDS and r.answered == r.decided
        lines.append(f"{r.backend:<10} | {r.p95_without_ms:>14.0f} | {r.p95_with_ms:>23.0f} | {ratio:>5.2f} | "
                     f"{r.slowest_answer_s:>16.2f} | {f'{r.answered}/{r.decided}':>9} | {r.idle_cpu_s:>16.2f} | "
                     f"{'ok' if ok else 'MISSED'}")
    return "\n".join(lines)


def parse(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.waiting", description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases-per-reviewer", type=int, default=10,
                        help="calls each reviewer decides per phase (default: %(default)s)")
    parser.add_argument("--backends", default="sqlite,postgresql", help="sqlite and/or postgresql")
    args = parser.parse_args(argv)
    return Options(args.cases_per_reviewer, backends=tuple(b.strip() for b in args.backends.split(",") if b.strip()))


def main(argv: Sequence[str] | None = None) -> int:
    options = parse(argv)
    print(f"Waiting agents: {REVIEWERS} reviewers, {options.cases_per_reviewer} calls each per phase, "
          f"{WAITERS} agents waiting; gunicorn {' '.join(GUNICORN)}; targets p95 ratio <= {P95_RATIO_TARGET}, "
          f"answers within {ANSWER_TARGET_SECONDS:.0f} s")
    print(table(run(options)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
