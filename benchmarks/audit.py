"""Audit benchmark, on PostgreSQL: the decision-log export against PostgreSQL's own COPY of the same
rows, the speed of `audit verify`, and audited writes from 8 writers against 1.

A temporary database gets ``decisions`` decided cases (one row each in the decision log: approved,
edited, dual approvals, rejected, information requested), their recommendations, decisions,
executions and sealed audit events (the cases' own, and logins in between up to ``events``),
written with COPY; then a checkpoint is signed, as the periodic job would have. Then:

(a) `write_export` to JSON Lines, in a fresh process whose RSS is sampled, against
    ``COPY (SELECT …) TO STDOUT`` of the same rows (the same fields and events, as PostgreSQL
    writes JSON) through psycopg, each into a file;
(b) `audit verify` over the whole log;
(c) writers, each its own process and connection, each write one transaction recording one
    audit event: events/s of 8 writers against 1.

    python -m benchmarks.audit [--decisions 20000] [--events 100000] [--full] [--seconds 5]

Targets: export rows/s >= 0.5 x COPY rows/s, export RSS growth < 50 MB; verify >= 100,000 events/s;
8 writers >= 2.5 x 1 writer. Needs PostgreSQL (BENCH_DATABASE_URL or TEST_DATABASE_URL: a server
where it may create a database), and says so without it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from flask_migrate import upgrade
from sqlalchemy.orm import Session

from app import create_app
from app.audit import chain, checkpoints, merkle, verification
from app.audit.actions import AuditAction
from app.auditor import export
from app.cases.policy import action_hash
from app.db import canonical_json
from benchmarks.common import bench_config, postgres_database
from benchmarks.intake import render
from config import BASE_DIR, normalize_database_url

EXPORT_TARGET = 0.5
RSS_TARGET_MB = 50
VERIFY_TARGET = 100_000
WRITERS_TARGET = 2.5
WRITERS = 8
FULL = (200_000, 1_000_000)
CHUNK = 2_000  # cases generated, put in time order and copied at a time
START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
SPACING = timedelta(seconds=2)  # between cases received; each case lives some 3 minutes, so they overlap
# outcome → (share, the kinds of its decisions, the case's status, lifecycle events of its decisions)
OUTCOMES = {
    "approve": (0.55, ("approve",), "executed", ("case.approved",)),
    "edit": (0.10, ("edit",), "executed", ("case.approved",)),
    "dual": (0.10, ("approve", "second_approval"), "executed", ("case.first_approval", "case.second_approval")),
    "reject": (0.20, ("reject",), "rejected", ("case.rejected",)),
    "request_info": (0.05, ("request_info",), "needs_info", ("case.info_requested",)),
}
REVIEWERS, SENIORS = 20, 5


def database_url() -> str | None:
    return os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL") or None


@dataclass(frozen=True)
class Options:
    decisions: int = 20_000
    events: int = 100_000
    seconds: float = 5.0  # each writers' run
    writers: int = WRITERS


@dataclass
class Measurement:
    decisions: int = 0
    events: int = 0
    load_seconds: float = 0.0
    export: dict[str, float] = field(default_factory=dict)  # seconds, rows, rss_before_mb, rss_peak_mb
    copy_seconds: float = 0.0
    copy_rows: int = 0
    verify_seconds: float = 0.0
    verified: int = 0
    writes: dict[int, float] = field(default_factory=dict)  # writers → events/s

    @property
    def export_ratio(self) -> float:
        return (self.export["rows"] / self.export["seconds"]) / (self.copy_rows / self.copy_seconds)

    @property
    def rss_growth_mb(self) -> float:
        return self.export["rss_peak_mb"] - self.export["rss_before_mb"]

    @property
    def verify_rate(self) -> float:
        return self.verified / self.verify_seconds

    @property
    def writers_ratio(self) -> float:
        return self.writes[max(self.writes)] / self.writes[1]


# --- the data ----------------------------------------------------------------------------------------------


@dataclass
class Generator:
    """Rows of every table for decided cases, ids given in order; events carry their time, sealed later."""

    decisions: int
    logins: int  # audit events besides the cases' own
    rng: random.Random = field(default_factory=lambda: random.Random(9))
    next_decision: int = 1
    next_execution: int = 1

    def chunk(self, first: int, count: int) -> dict[str, list[dict[str, Any]]]:
        tables: dict[str, list[dict[str, Any]]] = {name: [] for name in
                                                   ("cases", "recommendations", "decisions", "executions",
                                                    "execution_attempts", "audit_events")}
        for case_id in range(first, first + count):
            self._case(case_id, tables)
        share = self.logins * count // self.decisions
        span = (count * SPACING).total_seconds()
        base = START + (first - 1) * SPACING
        tables["audit_events"] += [self._event(base + timedelta(seconds=self.rng.uniform(0, span)),
                                               f"user:{self.rng.randint(1, REVIEWERS)}", "user.login", None,
                                               {"session": self.rng.randrange(1 << 30)}) for _ in range(share)]
        tables["audit_events"].sort(key=lambda event: event["time"])
        return tables

    def _case(self, case_id: int, tables: dict[str, list[dict[str, Any]]]) -> None:
        outcome = self.rng.choices(list(OUTCOMES), weights=[spec[0] for spec in OUTCOMES.values()])[0]
        _, kinds, status, moves = OUTCOMES[outcome]
        received = START + case_id * SPACING
        reviewer = self.rng.randint(1, REVIEWERS)
        tables["cases"].append(_case_row(case_id, status, outcome == "dual", received))
        tables["recommendations"].append(_recommendation_row(case_id, received + timedelta(seconds=5)))
        events = tables["audit_events"]
        events += [
            self._event(received, "client:1", "case.received", case_id,
                        {"external_id": f"BENCH-{case_id:07d}", "domain": "finance", "queue": "payments",
                         "case_type": "credit_limit_change", "webhook_id": f"msg_{case_id}"}),
            self._event(received + timedelta(seconds=5), "system:ai", "case.recommendation_stored", case_id,
                        {"from": "analyzing", "to": "pending_review", "recommendation_id": case_id,
                         "action": "approve", "confidence": 0.72, "provider": "local", "model": "rules-v1"}),
            self._event(received + timedelta(seconds=60), f"user:{reviewer}", "case.claimed", case_id,
                        {"from": "pending_review", "to": "in_review", "assignee_id": reviewer}),
        ]
        decided = received + timedelta(seconds=120)
        for step, (kind, move) in enumerate(zip(kinds, moves, strict=True)):
            who = reviewer if step == 0 else REVIEWERS + self.rng.randint(1, SENIORS)
            at = decided + timedelta(seconds=30 * step)
            row = _decision_row(self.next_decision, case_id, who, kind, at)
            tables["decisions"].append(row)
            events.append(self._event(at, f"user:{who}", move, case_id, {
                "kind": kind, "action": row["action"], "parameters": json.loads(row["parameters"]),
                "action_hash": row["action_hash"], "reason_code": row["reason_code"], "reason": row["reason"]}))
            self.next_decision += 1
        if status == "executed":
            self._execution(case_id, self.next_decision - 1, decided + timedelta(seconds=60), tables)

    def _execution(self, case_id: int, decision_id: int, at: datetime, tables: dict[str, list[dict[str, Any]]]
                   ) -> None:
        execution_id = self.next_execution
        self.next_execution += 1
        tables["executions"].append({
            "id": execution_id, "case_id": case_id, "decision_id": decision_id,
            "idempotency_key": f"exec_{case_id}_{decision_id}", "status": "delivered", "attempts": 1,
            "last_status_code": 200, "created_at": at, "round_started_at": at, "delivered_at": at})
        tables["execution_attempts"].append({"id": execution_id, "execution_id": execution_id, "number": 1,
                                             "started_at": at, "finished_at": at, "outcome": "delivered",
                                             "status_code": 200})
        tables["audit_events"].append(self._event(at, "system:executor", "case.executed", case_id, {
            "from": "executing", "to": "executed", "execution_id": execution_id, "attempt": 1, "status_code": 200,
            "error": None, "delivered": "callback"}))

    @staticmethod
    def _event(at: datetime, actor: str, action: str, case_id: int | None, data: dict[str, Any]) -> dict[str, Any]:
        return {"time": at, "actor": actor, "action": action, "case_id": case_id, "data": data}


def _case_row(case_id: int, status: str, dual: bool, received: datetime) -> dict[str, Any]:
    return {"id": case_id, "client_id": 1, "external_id": f"BENCH-{case_id:07d}", "domain": "finance",
            "case_type": "credit_limit_change", "title": f"Credit limit {case_id}",
            "payload": canonical_json({"account_id": f"CC-{case_id}", "requested_limit": "12000.00"}),
            "status": status, "priority": 1, "confidential": False, "queue_id": 1,
            "sla_due_at": received + timedelta(hours=4), "sla_notified_pct": 0, "sla_window_minutes": 240,
            "requires_dual_approval": dual, "reopen_count": 0, "recommendation_id": case_id, "version": 6,
            "created_at": received, "updated_at": received + timedelta(minutes=3)}


def _recommendation_row(case_id: int, at: datetime) -> dict[str, Any]:
    return {"id": case_id, "case_id": case_id, "case_version": 2, "provider": "local", "model": "rules-v1",
            "template_version": "v1", "prompt_hash": "ab" * 32, "input_hash": "cd" * 32, "action": "approve",
            "parameters": canonical_json({"limit": "12000.00"}), "rationale": "Income and history support the limit.",
            "confidence": 0.72, "flags": "[]", "citations": "[]", "details": "{}", "tokens_in": 0, "tokens_out": 0,
            "cost_usd": 0, "latency_ms": 5, "cache_hit": False, "fallback_used": False, "created_at": at}


def _decision_row(decision_id: int, case_id: int, reviewer: int, kind: str, at: datetime) -> dict[str, Any]:
    action, parameters, reason = None, {}, None
    if kind in ("approve", "second_approval"):
        action, parameters = "approve", {"limit": "12000.00"}
    elif kind == "edit":
        action, parameters, reason = "counter_offer", {"limit": "9000.00"}, "Income supports 9,000 at most."
    else:
        reason = "The evidence points the other way."
    diff = {"action": ["approve", action], "parameters": {"limit": ["12000.00", "9000.00"]}} if kind == "edit" else {}
    return {"id": decision_id, "case_id": case_id, "reviewer_id": reviewer, "recommendation_id": case_id,
            "kind": kind, "case_version": 5, "action": action, "parameters": canonical_json(parameters),
            "diff": canonical_json(diff), "action_hash": action_hash(action, parameters) if action else None,
            "reason_code": "other" if reason else None, "reason": reason, "created_at": at}


# --- loading -------------------------------------------------------------------------------------------------


def psycopg_url(url: str) -> str:
    return sa.make_url(normalize_database_url(url)).set(drivername="postgresql").render_as_string(
        hide_password=False)


def prepare(url: str) -> None:
    """Migrate; one API client, the reviewers (ids 1..REVIEWERS, then the seniors) and one queue."""
    app = create_app(bench_config(url))
    with app.app_context():
        upgrade(directory=str(BASE_DIR / "migrations"))
    with psycopg.connect(psycopg_url(url)) as conn:
        now = datetime.now(UTC)
        conn.execute("INSERT INTO api_clients (id, name, token_hash, token_prefix, signing_secrets, allowed_domains, "
                     "callback_hosts, active, created_at) VALUES (1, 'bench', 'x', 'x', '[]', '[\"finance\"]', '[]', "
                     "true, %s)", (now,))
        conn.execute("INSERT INTO queues (id, name, domain, is_default, sla_minutes, blind_review, case_types, "
                     "created_at) VALUES (1, 'payments', 'finance', true, 240, false, '[]', %s)", (now,))
        with conn.cursor().copy("COPY users (id, email, name, password_hash, role, active, created_at) "
                                "FROM STDIN") as copy:
            for user_id in range(1, REVIEWERS + SENIORS + 1):
                role = "reviewer" if user_id <= REVIEWERS else "senior_reviewer"
                copy.write_row((user_id, f"user{user_id}@example.com", f"Reviewer {user_id}", "!", role, True, now))


def load(url: str, options: Options) -> int:
    """Write the world with COPY and seal its events as the sealer would; how many events."""
    generator = Generator(options.decisions, 0)
    per_case = 4.6  # the cases' own events on average (see OUTCOMES)
    generator.logins = max(options.events - round(options.decisions * per_case), 0)
    seq = 0
    with psycopg.connect(psycopg_url(url)) as conn:
        conn.execute("SET session_replication_role = replica")  # rows come sealed: past the insert-unsealed rule
        for first in range(1, options.decisions + 1, CHUNK):
            tables = generator.chunk(first, min(CHUNK, options.decisions + 1 - first))
            seq = _seal(tables["audit_events"], seq)
            for table, rows in tables.items():
                _copy(conn, table, rows)
        for table in ("cases", "recommendations", "decisions", "executions", "execution_attempts", "audit_events"):
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608 (names above)
                         f"(SELECT max(id) FROM {table}))")
    with psycopg.connect(psycopg_url(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return seq


def _seal(events: list[dict[str, Any]], seq: int) -> int:
    """Give the events their places and leaf hashes, as the sealer would; their data as the app writes it."""
    for event in events:
        seq += 1
        event["id"] = event["seq"] = seq
        event["data"] = canonical_json(event["data"])
        event["hash"] = merkle.leaf_hash(chain.entry(seq, event["time"], event["actor"], event["action"],
                                                     event["case_id"], event["data"])).hex()
    return seq


def _copy(conn: psycopg.Connection[Any], table: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    columns = list(rows[0])
    with conn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[column] for column in columns])


def bench_settings(folder: Path) -> dict[str, Any]:
    """What the audit code reads from the configuration: a fresh signing key, a checkpoint folder."""
    pem, _ = checkpoints.generate_key()
    return {"AUDIT_SIGNING_KEY": pem.decode(), "AUDIT_CHECKPOINT_DIR": str(folder / "checkpoints")}


# --- measuring ----------------------------------------------------------------------------------------------


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _export_in_a_fresh_process(url: str, settings: dict[str, Any], path: str, answer: Any) -> None:
    """(a) in a process that did nothing else: its RSS before the export, and the highest during it."""
    engine = sa.create_engine(normalize_database_url(url))
    peak, done = [rss_mb()], threading.Event()
    before = peak[0]

    def sample() -> None:
        while not done.wait(0.02):
            peak.append(rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    with Session(engine) as session:
        result = export.write_export(session, settings, Path(path), fmt="jsonl", filters=export.ExportFilters())
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    answer.put({"seconds": seconds, "rows": result.rows, "rss_before_mb": before,
                "rss_peak_mb": max(*peak, rss_mb())})


def measure_export(url: str, settings: dict[str, Any], folder: Path) -> dict[str, float]:
    context = multiprocessing.get_context("spawn")
    answer = context.Queue()
    process = context.Process(target=_export_in_a_fresh_process,
                              args=(url, settings, str(folder / "decisions.jsonl"), answer))
    process.start()
    found = answer.get()
    process.join()
    return found


def copy_baseline(url: str, tree_size: int, folder: Path) -> tuple[float, int]:
    """PostgreSQL's own COPY of the same rows to a file: seconds, rows."""
    started = time.perf_counter()
    with psycopg.connect(psycopg_url(url)) as conn, (folder / "copy.txt").open("wb") as out, \
            conn.cursor().copy(f"COPY ({SAME_ROWS.format(tree_size=int(tree_size))}) TO STDOUT") as copy:
        for block in copy:
            out.write(block)
    seconds = time.perf_counter() - started
    with (folder / "copy.txt").open("rb") as written:
        rows = sum(1 for _ in written)
    return seconds, rows


def measure_verify(url: str, settings: dict[str, Any]) -> tuple[float, int]:
    engine = sa.create_engine(normalize_database_url(url))
    with Session(engine) as session:
        started = time.perf_counter()
        result = verification.verify(session, settings)
        seconds = time.perf_counter() - started
    if not result.ok:
        raise RuntimeError(f"audit verify failed on the benchmark's log: {result.problem}")
    return seconds, result.checked


def _writer(url: str, seconds: float, ready: Any, go: Any, answer: Any) -> None:
    """One writer: one transaction per audit event, as fast as it goes for ``seconds``."""
    engine = sa.create_engine(normalize_database_url(url), pool_size=1)
    written = 0
    with Session(engine) as session:
        chain.record(session, AuditAction.USER_LOGIN, "system:bench", data={"warm": True})
        session.commit()
        ready.put(True)
        go.wait()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            chain.record(session, AuditAction.USER_LOGIN, "system:bench", data={"n": written})
            session.commit()
            written += 1
    answer.put(written)


def measure_writes(url: str, writers: int, seconds: float) -> float:
    """Events/s of ``writers`` processes writing at once."""
    context = multiprocessing.get_context("spawn")
    ready, answer, go = context.Queue(), context.Queue(), context.Event()
    processes = [context.Process(target=_writer, args=(url, seconds, ready, go, answer)) for _ in range(writers)]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get()
    go.set()
    total = sum(answer.get() for _ in processes)
    for process in processes:
        process.join()
    return total / seconds


def run(options: Options) -> Measurement | None:
    url = database_url()
    if url is None:
        print("no PostgreSQL: set BENCH_DATABASE_URL or TEST_DATABASE_URL to run the audit benchmark; skipped")
        return None
    found = Measurement(decisions=options.decisions)
    with postgres_database(url) as database, tempfile.TemporaryDirectory(prefix="countersign-audit-") as tmp:
        folder = Path(tmp)
        settings = bench_settings(folder)
        started = time.perf_counter()
        prepare(database)
        found.events = load(database, options)
        engine = sa.create_engine(normalize_database_url(database))
        with Session(engine) as session:
            tree_size = checkpoints.create(session, settings).tree_size  # as the periodic job would have
        engine.dispose()
        found.load_seconds = time.perf_counter() - started
        found.export = measure_export(database, settings, folder)
        found.copy_seconds, found.copy_rows = copy_baseline(database, tree_size, folder)
        found.verify_seconds, found.verified = measure_verify(database, settings)
        found.writes = {n: measure_writes(database, n, options.seconds) for n in sorted({1, options.writers})}
    return found


# --- the same rows, by PostgreSQL ---------------------------------------------------------------------------

# One row per settled decision, as export.DecisionRows makes it: the first approval of a dual approval
# joins the decision after it, a first approval with nothing after it counts only once its case is past
# approval; the recommendation in force, the reviewers, the SLA as of the decision, the execution, and
# the case's events of the tree up to the decision (all of them for an approval) with their entries.
SAME_ROWS = """
WITH d AS (
  SELECT d.*, lag(d.id) OVER w AS prev_id, lag(d.kind) OVER w AS prev_kind, lead(d.id) OVER w AS next_id
  FROM decisions d WHERE d.kind <> 'blind_assessment'
  WINDOW w AS (PARTITION BY d.case_id ORDER BY d.id)
), s AS (
  SELECT d.*, c.status AS case_status,
    CASE WHEN d.kind IN ('second_approval', 'reject') AND d.prev_kind IN ('approve', 'edit') THEN d.prev_id END
      AS first_id
  FROM d JOIN cases c ON c.id = d.case_id
  WHERE d.kind NOT IN ('approve', 'edit')
     OR (d.next_id IS NULL AND c.status IN ('approved', 'executing', 'executed', 'execution_failed'))
), r AS (
  SELECT s.*, coalesce(f.kind, s.kind) AS first_kind,
    CASE WHEN s.kind = 'second_approval' THEN f.id ELSE s.id END AS deciding_id,
    (s.kind IN ('approve', 'edit', 'second_approval')) AS approval
  FROM s LEFT JOIN decisions f ON f.id = s.first_id
)
SELECT r.id, c.id, c.external_id, c.case_type, c.domain, q.name,
  CASE WHEN r.kind = 'second_approval' THEN r.first_kind ELSE r.kind END AS outcome,
  rec.action, rec.parameters, rec.confidence, rec.provider, rec.model, rec.template_version, rec.prompt_hash,
  dd.action, dd.parameters, dd.kind = 'edit', dd.diff,
  (SELECT json_agg(json_build_object('email', u.email, 'name', u.name, 'role', u.role, 'decision', x.kind,
                                     'decided_at', x.created_at) ORDER BY x.id)
     FROM decisions x JOIN users u ON u.id = x.reviewer_id WHERE x.id IN (r.id, r.first_id)),
  dd.reason_code, dd.reason, c.created_at, rec.created_at, r.created_at, e.delivered_at,
  CASE WHEN EXISTS (SELECT 1 FROM audit_events b WHERE b.case_id = c.id AND b.action = 'case.sla_breached'
                    AND b.time <= r.created_at) OR r.created_at > c.sla_due_at THEN 'breached'
       WHEN c.sla_due_at IS NOT NULL THEN 'met' END,
  e.status, (SELECT count(*) FROM execution_attempts a WHERE a.execution_id = e.id), e.last_status_code,
  e.last_error,
  (SELECT json_agg(json_build_object('leaf_index', ev.seq - 1, 'entry', json_build_object(
            'action', ev.action, 'actor', ev.actor, 'case_id', ev.case_id, 'data', ev.data, 'seq', ev.seq,
            'time', ev.time)::text) ORDER BY ev.seq)
     FROM audit_events ev
    WHERE ev.case_id = c.id AND ev.seq <= {tree_size} AND (r.approval OR ev.time <= r.created_at))
FROM r JOIN cases c ON c.id = r.case_id
  JOIN decisions dd ON dd.id = r.deciding_id
  LEFT JOIN queues q ON q.id = c.queue_id
  LEFT JOIN recommendations rec ON rec.id = r.recommendation_id
  LEFT JOIN executions e ON e.decision_id = r.id AND r.approval
ORDER BY c.id, r.id
"""


# --- reporting ---------------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def table(m: Measurement) -> str:
    export_rate, copy_rate = m.export["rows"] / m.export["seconds"], m.copy_rows / m.copy_seconds
    rows = [
        ["export to JSON Lines", f"{export_rate:,.0f} rows/s ({m.export['seconds']:.1f} s)", "", ""],
        ["COPY of the same rows", f"{copy_rate:,.0f} rows/s ({m.copy_seconds:.1f} s)", "", ""],
        ["export / COPY", f"{m.export_ratio:.2f}", f">= {EXPORT_TARGET}", verdict(m.export_ratio >= EXPORT_TARGET)],
        ["export RSS growth", f"{m.rss_growth_mb:.1f} MB", f"< {RSS_TARGET_MB} MB",
         verdict(m.rss_growth_mb < RSS_TARGET_MB)],
        ["audit verify", f"{m.verify_rate:,.0f} events/s ({m.verify_seconds:.1f} s)", f">= {VERIFY_TARGET:,}",
         verdict(m.verify_rate >= VERIFY_TARGET)],
        *[[f"audited writes, {n} writer{'s' if n > 1 else ''}", f"{rate:,.0f} events/s", "", ""]
          for n, rate in sorted(m.writes.items())],
        [f"{max(m.writes)} writers / 1", f"{m.writers_ratio:.2f}x", f">= {WRITERS_TARGET}x",
         verdict(m.writers_ratio >= WRITERS_TARGET)],
    ]
    return render(["measure", "value", "target", "result"], rows)


def passed(m: Measurement) -> bool:
    return (m.export_ratio >= EXPORT_TARGET and m.rss_growth_mb < RSS_TARGET_MB and m.verify_rate >= VERIFY_TARGET
            and m.writers_ratio >= WRITERS_TARGET)


def parse(argv: Sequence[str] | None = None) -> Options:
    default = Options()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.audit", description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=default.decisions, help="decided cases, one row each "
                        "(default: %(default)s)")
    parser.add_argument("--events", type=int, default=default.events, help="audit events in all, at least the "
                        "cases' own (default: %(default)s)")
    parser.add_argument("--full", action="store_true", help=f"{FULL[0]:,} decisions and {FULL[1]:,} events")
    parser.add_argument("--seconds", type=float, default=default.seconds, help="length of each writers' run "
                        "(default: %(default)s)")
    args = parser.parse_args(argv)
    decisions, events = FULL if args.full else (args.decisions, args.events)
    return Options(decisions, events, args.seconds)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse(argv)
    print(f"Audit benchmark (PostgreSQL): {options.decisions:,} decisions, {options.events:,} audit events; "
          f"{options.writers} writers against 1 for {options.seconds:g} s each")
    found = run(options)
    if found is None:
        return 0
    print(f"loaded {found.events:,} sealed events and signed a checkpoint in {found.load_seconds:.1f} s")
    print(table(found))
    return 0 if passed(found) else 1


if __name__ == "__main__":
    raise SystemExit(main())
