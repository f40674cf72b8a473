"""The platform as several machines would run it, in one bounded run on PostgreSQL.

What runs: 2 web processes (``gunicorn wsgi:app``, one worker of 4 threads each), 3 RQ workers
(``python -m workers --with-scheduler``) and 2 periodic schedulers (``python -m workers.scheduler``),
all against this test run's PostgreSQL database and its private Redis. Two upstream systems post
500 cases by signed webhook over real HTTP from 6 threads, spread over both web processes; every
tenth delivery is sent twice at once, to both web processes (the same webhook-id, as an upstream
retrying would). 20 scripted reviewers work the payments queue through the reviewer API with
personal tokens: inbox, claim, read, then approve, edit, reject or escalate. Legal cases land in a
queue nobody works whose SLA is one minute, so the SLA sweeps of both schedulers warn at 50 % and
75 % and escalate at breach while everything else goes on; two escalation rules fire at intake,
after the analysis and on every rules sweep. Once a third of the cases are in and reviewers are
deciding, one worker and one scheduler are killed with SIGKILL (the summary line names the last
thing each logged). The reviewers work on until every legal case has breached, then stop: what they
did not reach stays open. Callbacks go to one real HTTP
receiver per upstream system (``app.execution.receiver``), which verifies each signature and
processes each webhook-id once, as a real upstream deduplicates.

What it asserts, once the work has drained (no case received, analysing, approved or executing; every
notice delivered; every audit event sealed by the surviving scheduler's sealer):

- the cases table holds each posted case exactly once (by client and external id; twin deliveries
  answered the same case), each in a final or open state;
- every decision answered 201 is stored, at most one per case; every approved or edited case was
  executed and its action *processed* exactly once by the receiver (one webhook-id per approval:
  the raw redeliveries the receiver deduplicated are counted and printed, not refused), and
  every rejection or escalation told upstream once; no callback failed its signature check;
- no escalation fired twice: each SLA step (50, 75, breach) at most once per case, and exactly
  once for every legal case; each case escalated at most once; each rule at most once per case and
  version, in the audit log as in ``rule_firings``; intake never answered a server error;
- the audit log verifies (as ``flask audit verify``) against the checkpoints the processes signed.

Run it alone (about 100 s on this 2-core machine: 10 s to start the processes, the one-minute SLA
the legal cases must breach, then the drain; a delivery the kill cut short waits out its 64 s lease
first). ``-s`` prints a summary line: cases by status, decisions by kind, what was killed mid-what,
how many callbacks were redelivered (and deduplicated by the receiver), the SLA steps and firings:

    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\
        .venv/bin/python -m pytest -q -s tests/test_simulation.py

On SQLite (the suite's first pass) it is skipped: one SQLite file cannot serve seven processes.
Every wait has a deadline; every process is killed when the test ends, whatever happened.
"""

from __future__ import annotations

import contextlib
import copy
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from redis import Redis
from rq import Worker

from app import webhooks
from app.actors import Actor
from app.audit import verification
from app.audit.models import AuditEvent
from app.auth.services import create_api_token, create_user
from app.cases.models import Case, Decision, Status
from app.cases.queues import create_queue
from app.escalation.models import RuleFiring
from app.escalation.services import load_rules, validate_file
from app.execution.models import UpstreamNotice
from app.execution.receiver import Receiver
from app.extensions import db
from app.intake import services as intake
from app.intake.models import ApiClient
from config import TestConfig
from tests.conftest import EXAMPLES, ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"),
                       reason="the multi-process simulation runs on PostgreSQL only (set TEST_DATABASE_URL): "
                              "one SQLite file cannot serve seven processes"),
]

HOST = "127.0.0.1"
ACTOR = Actor.system("simulation")
CASES_PER_CLIENT = 250
LEGAL_PER_CLIENT = 20  # posted first: their one-minute SLA runs out while the rest is worked
SENDERS_PER_CLIENT = 3
TWIN_EVERY = 10  # every tenth delivery also goes, at the same moment, to the other web process
REVIEWERS = 20
REVIEW_QUEUE = "payments"
KILL_AFTER_POSTED, KILL_AFTER_DECIDED = CASES_PER_CLIENT * 2 // 3, 20
REQUEST_TIMEOUT = 30.0
STARTUP_SECONDS = 60.0
RUN_SECONDS = 150.0  # reviewers stop here at the latest; the legal breaches are due about 65 s in
DRAIN_SECONDS = 120.0  # then the queues drain (a delivery cut by the kill waits out its 64 s lease)
FINAL = {Status.EXECUTED, Status.REJECTED}
OPEN = {Status.PENDING_REVIEW, Status.IN_REVIEW, Status.AI_FAILED, Status.AWAITING_SECOND_APPROVAL,
        Status.NEEDS_INFO}
RULES = [
    {"name": "legal-tell-the-lead", "conditions": {"domain": "legal"},
     "actions": [{"notify": {"queue_lead": True, "message": "A contract arrived."}}]},
    {"name": "payments-waiting-raise-priority", "conditions": {"domain": "finance", "status_in": ["pending_review"]},
     "actions": [{"set_priority": {"priority": "high"}}]},
]


# --- HTTP --------------------------------------------------------------------------------------------


def http_call(port: int, method: str, path: str, headers: dict[str, str], body: bytes | None = None,
              ) -> tuple[int, Any]:
    """One request on its own connection: (status, parsed JSON or None); status 0 when no answer came."""
    conn = http.client.HTTPConnection(HOST, port, timeout=REQUEST_TIMEOUT)
    try:
        conn.request(method, path, body=body, headers={**headers, "Connection": "close"})
        response = conn.getresponse()
        status, raw = response.status, response.read()
    except (OSError, http.client.HTTPException):
        return 0, None
    finally:
        conn.close()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, None


def wait_until(condition: Callable[[], bool], seconds: float, what: Callable[[], str] | str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:.0f} s waiting for "
                                 f"{what() if callable(what) else what}")
        time.sleep(0.5)


# --- processes -----------------------------------------------------------------------------------------


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    port: int | None = None  # a web process's

    def kill(self) -> None:
        """SIGKILL the process and everything it started (it leads its own session)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)

    def tail(self, lines: int = 25) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def platform(env: dict[str, str], folder: Path) -> Iterator[dict[str, Process]]:
    """2 web, 3 workers, 2 schedulers, started as in production; every one killed at the end."""
    python = sys.executable
    ports = [free_port(), free_port()]
    # --no-control-socket: two gunicorns on one machine would share the control socket's path.
    commands = {
        **{(f"web{n}", port): [python, "-m", "gunicorn", "wsgi:app", "--bind", f"{HOST}:{port}", "--workers", "1",
                               "--threads", "4", "--timeout", "60", "--no-control-socket"]
           for n, port in enumerate(ports, 1)},
        **{(f"worker{n}", None): [python, "-m", "workers", "--with-scheduler"] for n in (1, 2, 3)},
        **{(f"scheduler{n}", None): [python, "-m", "workers.scheduler"] for n in (1, 2)},
    }
    processes: dict[str, Process] = {}
    try:
        for (name, port), command in commands.items():
            log = folder / f"{name}.log"
            with log.open("wb") as out:
                processes[name] = Process(name, subprocess.Popen(
                    command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True), log, port)
        redis = Redis.from_url(env["REDIS_URL"])
        try:
            wait_until(lambda: all(healthy(port) for port in ports) and Worker.count(connection=redis) >= 3,
                       STARTUP_SECONDS, lambda: "the web processes and workers to start:\n" + logs(processes))
        finally:
            redis.close()
        yield processes
    finally:
        for process in processes.values():
            process.kill()
        for process in processes.values():
            process.popen.wait(timeout=15)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def healthy(port: int) -> bool:
    return http_call(port, "GET", "/healthz", {})[0] == 200


def logs(processes: dict[str, Process]) -> str:
    return "\n".join(f"--- {p.name} (exit {p.popen.poll()}):\n{p.tail()}" for p in processes.values())


def process_env(database_url: str, redis_url: str) -> dict[str, str]:
    """Short sweep intervals and retries, so that a one-minute run sees every sweep many times."""
    return {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "SECRET_KEY": "simulation-secret",
            "COUNTERSIGN_ENV": "development", "AI_PROVIDER": "local", "OPENAI_API_KEY": "",
            "INTAKE_RATE_LIMIT": "100000 per minute", "INSECURE_CALLBACK_HOSTS": HOST,
            "AUDIT_SIGNING_KEY": TestConfig.AUDIT_SIGNING_KEY, "AUDIT_SIGNING_KEY_FILE": "",
            "AUDIT_CHECKPOINT_DIR": "", "AUDIT_SEAL_SECONDS": "1", "AUDIT_CHECKPOINT_SECONDS": "5",
            "SWEEP_INTERVAL_SECONDS": "2", "SLA_SWEEP_INTERVAL_SECONDS": "2", "RULES_SWEEP_INTERVAL_SECONDS": "5",
            "SWEEP_OVERLAP_SECONDS": "10", "SWEEP_LOCK_SECONDS": "5", "STUCK_CASE_SECONDS": "5",
            "AI_JOB_TIMEOUT": "30", "EXECUTION_RETRY_SCHEDULE": "1,2,4", "CALLBACK_TIMEOUT_SECONDS": "2",
            "NOTIFY_RETRY_INTERVALS": "1,2,4", "PYTHONUNBUFFERED": "1"}


# --- the installation ----------------------------------------------------------------------------------


@dataclass
class Upstream:
    name: str
    token: str
    secret: str
    receiver: Receiver


def install(clients: tuple[str, ...]) -> tuple[dict[str, Upstream], list[str]]:
    """Queues, rules, the upstream clients (each with its receiver, started) and the reviewers' tokens."""
    session = db.session
    create_user(session, "lead@sim.example", "simulation-password-1", "senior_reviewer", actor=ACTOR)
    create_queue(session, "finance-senior", "finance", 60, actor=ACTOR)
    create_queue(session, REVIEW_QUEUE, "finance", 60, is_default=True, escalation_target="finance-senior",
                 actor=ACTOR)
    create_queue(session, "legal-senior", "legal", 60, actor=ACTOR)
    create_queue(session, "legal", "legal", 1, is_default=True, escalation_target="legal-senior",
                 lead="lead@sim.example", actor=ACTOR)
    load_rules(session, validate_file(session, copy.deepcopy(RULES)), ACTOR)
    made = {name: intake.create_client(session, name, ["finance", "legal"], [HOST], actor=ACTOR) for name in clients}
    tokens = []
    for n in range(1, REVIEWERS + 1):
        user = create_user(session, f"reviewer{n}@sim.example", "simulation-password-1", "reviewer",
                           queues=[REVIEW_QUEUE], actor=ACTOR)
        tokens.append(create_api_token(session, user, "simulation", actor=ACTOR)[1])
    session.commit()
    upstreams = {name: Upstream(name, new.token, new.signing_secret, Receiver(new.signing_secret).start())
                 for name, new in made.items()}
    return upstreams, tokens


# --- the upstream systems --------------------------------------------------------------------------------


@dataclass
class Intake:
    posted: dict[tuple[str, str], set[int]] = field(default_factory=dict)  # (client, external_id) → case ids
    refused: list[tuple[str, int, Any]] = field(default_factory=list)
    retried: Counter[int] = field(default_factory=Counter)  # answers that made the upstream retry: 0, 5xx
    deliveries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, client: str, external_id: str, status: int, answer: Any) -> None:
        with self._lock:
            self.deliveries += 1
            if status == 202:
                self.posted.setdefault((client, external_id), set()).add(answer["id"])
            else:
                self.refused.append((external_id, status, answer))


def case_document(client: str, n: int, callback_url: str) -> dict[str, Any]:
    external_id = f"{client}-{n:03d}"
    if n < LEGAL_PER_CLIENT:
        return {"external_id": external_id, "domain": "legal", "case_type": "contract_review",
                "title": f"Contract {external_id}", "data": copy.deepcopy(EXAMPLES["contract_review"]),
                "callback_url": callback_url}
    data = {**copy.deepcopy(EXAMPLES["payment_release"]), "payment_id": f"PAY-{external_id}"}
    return {"external_id": external_id, "domain": "finance", "case_type": "payment_release",
            "title": f"Payment {external_id}", "data": data, "callback_url": callback_url}


def send_cases(upstream: Upstream, first: int, ports: list[int], intake_log: Intake) -> None:
    """This sender's share of the client's cases, alternating between the web processes."""
    for n in range(first, CASES_PER_CLIENT, SENDERS_PER_CLIENT):
        document = case_document(upstream.name, n, f"{upstream.receiver.url}/hooks")
        raw = json.dumps(document).encode()
        headers = {"Authorization": f"Bearer {upstream.token}", "Content-Type": "application/json",
                   **webhooks.headers(upstream.secret, f"msg_{upstream.name}_{n}", raw)}
        delivery = (upstream, document["external_id"], raw, headers, intake_log)
        twin = None
        if n % TWIN_EVERY == 0:
            twin = threading.Thread(target=deliver_and_record, args=(ports[(n + 1) % 2], *delivery))
            twin.start()
        deliver_and_record(ports[n % 2], *delivery)
        if twin is not None:
            twin.join(REQUEST_TIMEOUT * 3)


def deliver_and_record(port: int, upstream: Upstream, external_id: str, raw: bytes, headers: dict[str, str],
                       intake_log: Intake) -> None:
    """POST until answered: an upstream retries a lost or failed delivery with the same webhook-id."""
    deadline = time.monotonic() + 60
    while True:
        status, answer = http_call(port, "POST", "/api/v1/cases", headers, raw)
        if 0 < status < 500 or time.monotonic() > deadline:
            break
        with intake_log._lock:
            intake_log.retried[status] += 1
        time.sleep(0.5)
    intake_log.record(upstream.name, external_id, status, answer)


# --- the reviewers -----------------------------------------------------------------------------------------


@dataclass
class Reviews:
    decided: dict[int, str] = field(default_factory=dict)  # case id → kind, for the decisions answered 201
    unanswered: set[int] = field(default_factory=set)  # decisions sent that got no answer at all
    failures: list[tuple[str, int, Any]] = field(default_factory=list)  # anything else unexpected
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def count(self) -> int:
        return len(self.decided)


class Reviewer:
    """Inbox → claim (409 or 404: another reviewer was first) → read → decide (409 stale: read again, retry)."""

    MIX = (("approve", 0.6), ("edit", 0.15), ("reject", 0.15), ("escalate", 0.1))

    def __init__(self, token: str, port: int, reviews: Reviews, stop: threading.Event, seed: int) -> None:
        self.headers = {"Authorization": f"Bearer {token}"}
        self.port, self.reviews, self.stop = port, reviews, stop
        self.rng = random.Random(seed)

    def run(self) -> None:
        while not self.stop.is_set():
            if not self.review_one():
                self.stop.wait(0.5)  # nothing to take just now

    def review_one(self) -> bool:
        status, page = self.call("GET", f"/api/v1/inbox?queue={REVIEW_QUEUE}&status=pending_review&per_page=20")
        if status != 200 or not page["items"]:
            return False
        case_id = self.rng.choice(page["items"])["id"]
        status, answer = self.call("POST", f"/api/v1/cases/{case_id}/claim")
        if status in (404, 409):  # another reviewer was first (404: and escalated it out of this queue)
            return True
        if status != 200:
            return self.failed("claim", status, answer)
        kind = self.rng.choices([k for k, _ in self.MIX], [w for _, w in self.MIX])[0]
        for _ in range(3):
            status, document = self.call("GET", f"/api/v1/review/cases/{case_id}")
            if status != 200:
                return self.failed("read", status, document)
            status, answer = self.call("POST", f"/api/v1/cases/{case_id}/decisions", self.decision(kind, document))
            if status == 201:
                with self.reviews._lock:
                    self.reviews.decided[case_id] = kind
                return True
            if status == 0:
                with self.reviews._lock:
                    self.reviews.unanswered.add(case_id)
                return True
            if status != 409:
                break  # a stale read (a sweep raised the priority meanwhile) is read again
        return self.failed(f"decide {kind}", status, answer)

    def decision(self, kind: str, document: dict[str, Any]) -> dict[str, Any]:
        base = {"kind": kind, "case_version": document["version"]}
        if kind == "approve":
            return {**base, "view_hash": document["view_hash"]}
        if kind == "edit":
            proposed = (document["proposed_action"] or {}).get("action")
            action = "hold" if proposed != "hold" else "reject"
            return {**base, "action": action, "parameters": {"reason": "Simulation: call the beneficiary first"},
                    "reason_code": "incorrect_ai_parameters", "reason": "The beneficiary is unverified"}
        reason = {"reason_code": "insufficient_evidence", "reason": "Simulation: not enough evidence"}
        if kind == "escalate":
            return {**base, **reason, "target_queue": "finance-senior"}
        return {**base, **reason}

    def failed(self, what: str, status: int, answer: Any) -> bool:
        with self.reviews._lock:
            self.reviews.failures.append((what, status, answer))
        return True

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        headers = {**self.headers, **({"Content-Type": "application/json"} if body is not None else {})}
        answer = http_call(self.port, method, path, headers, json.dumps(body).encode() if body is not None else None)
        self.stop.wait(self.rng.uniform(0.05, 0.15))  # a moment's thought
        return answer


# --- reading the database ----------------------------------------------------------------------------------


def scalar(statement: Any) -> Any:
    try:
        return db.session.scalar(statement)
    finally:
        db.session.rollback()  # a fresh snapshot for the next look


def count(model: Any, *where: Any) -> int:
    return scalar(sa.select(sa.func.count()).select_from(model).where(*where)) or 0


def statuses() -> Counter[str]:
    rows = db.session.execute(sa.select(Case.status, sa.func.count()).group_by(Case.status)).all()
    db.session.rollback()
    return Counter(dict(rows))


def drained(expected_cases: int) -> bool:
    busy = (Status.RECEIVED, Status.ANALYZING, Status.APPROVED, Status.EXECUTING)
    return (count(Case) == expected_cases and count(Case, Case.status.in_(busy)) == 0
            and legal_cases_breached() == count(Case, Case.domain == "legal")
            and count(UpstreamNotice, UpstreamNotice.delivered_at.is_(None)) == 0
            and count(AuditEvent, AuditEvent.seq.is_(None)) == 0)


def legal_cases_breached() -> int:
    return scalar(sa.select(sa.func.count(sa.distinct(AuditEvent.case_id))).join(Case, Case.id == AuditEvent.case_id)
                  .where(AuditEvent.action == "case.sla_breached", Case.domain == "legal")) or 0


def where_things_stand() -> str:
    return (f"cases by status {dict(statuses())}; legal cases breached {legal_cases_breached()} of "
            f"{count(Case, Case.domain == 'legal')}; undelivered notices "
            f"{count(UpstreamNotice, UpstreamNotice.delivered_at.is_(None))}; unsealed audit events "
            f"{count(AuditEvent, AuditEvent.seq.is_(None))}")


# --- the test ------------------------------------------------------------------------------------------------


def test_seven_processes_lose_nothing_and_do_nothing_twice(app, database, redis_url, tmp_path):
    upstreams, tokens = install(("ledger", "treasury"))
    folder = tmp_path / "logs"
    folder.mkdir()
    intake_log, reviews, stop = Intake(), Reviews(), threading.Event()
    killed: list[str] = []
    started = time.monotonic()
    try:
        with platform(process_env(database.url, redis_url), folder) as processes:
            ports = [processes["web1"].port, processes["web2"].port]
            senders = [threading.Thread(target=send_cases, args=(upstream, k, ports, intake_log), daemon=True)
                       for upstream in upstreams.values() for k in range(SENDERS_PER_CLIENT)]
            reviewers = [threading.Thread(target=Reviewer(token, ports[n % 2], reviews, stop, seed=n).run,
                                          daemon=True) for n, token in enumerate(tokens)]
            for thread in senders + reviewers:
                thread.start()
            try:
                wait_until(lambda: intake_log.deliveries >= KILL_AFTER_POSTED and reviews.count >= KILL_AFTER_DECIDED,
                           RUN_SECONDS, lambda: f"the moment to kill ({intake_log.deliveries} deliveries, "
                                                f"{reviews.count} decisions)")
                for name in ("worker1", "scheduler1"):  # mid-run, whatever they are doing
                    processes[name].kill()
                    processes[name].popen.wait(timeout=15)
                    killed.append(f"{name} ({processes[name].tail(1)[-160:]})")
                for thread in senders:
                    thread.join(REQUEST_TIMEOUT * 10)
                assert not any(t.is_alive() for t in senders), "the upstream senders did not finish"
                # The reviewers work on while the legal cases' one-minute SLA runs out.
                wait_until(lambda: legal_cases_breached() == LEGAL_PER_CLIENT * len(upstreams),
                           RUN_SECONDS - (time.monotonic() - started), where_things_stand)
            finally:
                stop.set()
                for thread in reviewers:
                    thread.join(REQUEST_TIMEOUT * 2)
            total = CASES_PER_CLIENT * len(upstreams)
            wait_until(lambda: drained(total), DRAIN_SECONDS, where_things_stand)
            alive = sorted(name for name, p in processes.items() if p.popen.poll() is None)
            logs_now = logs(processes)
    finally:
        for upstream in upstreams.values():
            upstream.receiver.stop()
    seconds = time.monotonic() - started
    assert alive == ["scheduler2", "web1", "web2", "worker2", "worker3"], logs_now
    assert reviews.failures == [], reviews.failures[:5]

    check_every_case_once(upstreams, intake_log)
    decisions = check_decisions(reviews)
    redeliveries = check_callbacks(upstreams, decisions)
    sla_steps, firings = check_escalations()
    audit = verification.verify(db.session, app.config)
    assert audit.ok, audit.problem
    print(f"\nsimulation: {intake_log.deliveries} deliveries of {total} cases in {seconds:.0f} s "
          f"(retried after no answer: {intake_log.retried[0]}); "
          f"{dict(statuses())}; decisions {dict(Counter(decisions.values()))}; killed {killed}; "
          f"raw callback redeliveries {redeliveries}; SLA steps {sla_steps}; rule firings {firings}; "
          f"audit log intact ({audit.checked} events, {audit.checkpoints} checkpoints)")


def check_every_case_once(upstreams: dict[str, Upstream], intake_log: Intake) -> None:
    """Every posted case is in the table once, under the id its deliveries were answered with."""
    assert intake_log.refused == [], intake_log.refused[:5]
    assert [status for status in intake_log.retried if status >= 500] == [], "intake answered a server error"
    expected = {(name, f"{name}-{n:03d}") for name in upstreams for n in range(CASES_PER_CLIENT)}
    assert set(intake_log.posted) == expected
    assert all(len(ids) == 1 for ids in intake_log.posted.values()), "a twin delivery made a second case"
    client_names = dict(db.session.execute(sa.select(ApiClient.id, ApiClient.name)).all())
    rows = db.session.execute(sa.select(Case.id, Case.client_id, Case.external_id, Case.status)).all()
    in_table = Counter((client_names[client_id], external_id) for _, client_id, external_id, _ in rows)
    assert set(in_table) == expected
    assert max(in_table.values()) == 1, "a case is in the table twice"
    assert {key: next(iter(ids)) for key, ids in intake_log.posted.items()} == {
        (client_names[client_id], external_id): case_id for case_id, client_id, external_id, _ in rows}
    stray = {case_id: status for case_id, _, _, status in rows if status not in FINAL | OPEN}
    assert stray == {}, "cases neither final nor open"


def check_decisions(reviews: Reviews) -> dict[int, str]:
    """Each decision answered 201 is stored, and no case was decided twice. Returns case id → kind,
    the decisions sent without an answer included (as stored)."""
    stored = dict(db.session.execute(sa.select(Decision.case_id, Decision.kind)).all())
    assert count(Decision) == len(stored), "a case was decided twice"
    assert {case_id: stored.get(case_id) for case_id in reviews.decided} == reviews.decided
    assert set(stored) <= set(reviews.decided) | reviews.unanswered
    cases = dict(db.session.execute(sa.select(Case.id, Case.status).where(Case.id.in_(stored))).all())
    expected_status = {"approve": Status.EXECUTED, "edit": Status.EXECUTED, "reject": Status.REJECTED,
                       "escalate": Status.PENDING_REVIEW}  # back in an inbox: finance-senior's
    assert cases == {case_id: expected_status[kind] for case_id, kind in stored.items()}
    return stored


def check_callbacks(upstreams: dict[str, Upstream], decisions: dict[int, str]) -> int:
    """Each approval processed once, each other outcome told once; the raw redeliveries."""
    processed: Counter[tuple[str, int]] = Counter()
    redeliveries = 0
    for upstream in upstreams.values():
        receiver = upstream.receiver
        assert [d for d in receiver.deliveries if d.status == 401] == [], "a callback failed its signature check"
        for document in receiver.processed.values():
            processed[(document["type"], document["case"]["id"])] += 1
        redeliveries += len(receiver.deliveries) - len(receiver.processed)
    told = {"approve": "case.approved", "edit": "case.approved", "reject": "case.decided",
            "escalate": "case.decided"}
    assert processed == Counter({(told[kind], case_id): 1 for case_id, kind in decisions.items()})
    return redeliveries


def check_escalations() -> tuple[Counter[str], int]:
    """No SLA step, escalation or rule fired twice on a case; every legal case took each step once."""
    events = db.session.execute(sa.select(AuditEvent.case_id, AuditEvent.action, AuditEvent.data).where(
        AuditEvent.action.in_(("case.sla_warning", "case.sla_breached", "case.escalated", "rule.fired")))).all()
    steps = Counter((case_id, data["step"] if action == "case.sla_warning" else 100)
                    for case_id, action, data in events if action in ("case.sla_warning", "case.sla_breached"))
    assert max(steps.values()) == 1, [key for key, n in steps.items() if n > 1]
    legal = set(db.session.scalars(sa.select(Case.id).where(Case.domain == "legal")))
    assert {key for key in steps if key[0] in legal} == {(case_id, step) for case_id in legal for step in (50, 75, 100)}
    escalated = Counter(case_id for case_id, action, _ in events if action == "case.escalated")
    assert max(escalated.values()) == 1, [case_id for case_id, n in escalated.items() if n > 1]
    fired = Counter((case_id, data["rule_id"], data["version"]) for case_id, action, data in events
                    if action == "rule.fired")
    assert max(fired.values()) == 1, [key for key, n in fired.items() if n > 1]
    rows = db.session.execute(sa.select(RuleFiring.case_id, RuleFiring.rule_id, RuleFiring.rule_version)).all()
    assert Counter(tuple(row) for row in rows) == fired
    assert {case_id for case_id, _, _ in fired} >= legal  # the intake rule fired on every legal case
    return Counter(f"{step}%" for _, step in steps), len(fired)
