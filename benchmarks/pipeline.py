"""Pipeline benchmark: cases through intake → RQ worker processes → stored recommendation.

    python -m benchmarks.pipeline [--cases 60] [--delay 0.2]

Runs on a temporary SQLite database and a private Redis (or BENCH_REDIS_URL, flushed first).
Part 1, the local provider: throughput, end-to-end latency and the runtime's own
overhead per job (job time minus provider time). Part 2, the OpenAI-compatible
test server answering after a fixed delay: throughput with 1 and 2 worker
processes, the provider being the bottleneck.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml
from flask_migrate import upgrade
from redis import Redis
from rq.job import Job
from sqlalchemy import func, select

import benchmarks
from app import create_app, webhooks
from app.cases.models import Case, Queue, Recommendation
from app.cases.types import examples
from app.extensions import db
from app.intake import services as intake
from config import BASE_DIR, TestConfig
from devtools.fake_openai import FakeOpenAI, Reply, valid_answer

EXAMPLES = examples()

ROUTING = {
    "providers": {"local": {"kind": "local", "private": True}, "openai": {"kind": "openai"}},
    "prices": {"rules-v1": {"input": 0, "output": 0}, "bench-model": {"input": 0, "output": 0}},
    "routes": [{"match": {}, "chain": ["openai:bench-model"]}],
    "cache_ttl_seconds": 0,
}


@dataclass
class Result:
    label: str
    workers: int
    cases: int
    seconds: float
    latencies_ms: list[float]
    overheads_ms: list[float]

    @property
    def throughput(self) -> float:
        return self.cases / self.seconds


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


class Bench:
    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        redis_url = benchmarks.redis_url()
        self.env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}",
                    "AI_RETRY_INTERVALS": "", **env}
        config = type("BenchConfig", (TestConfig,), {
            "SQLALCHEMY_DATABASE_URI": self.env["DATABASE_URL"], "REDIS_URL": redis_url,
            "INTAKE_RATE_LIMIT": "100000 per minute", "AI_PROVIDER": self.env.get("AI_PROVIDER", "local"),
        })
        self.app = create_app(config)
        self.redis = Redis.from_url(redis_url)

    def prepare(self) -> None:
        self.redis.flushdb()
        with self.app.app_context():
            upgrade(directory=str(BASE_DIR / "migrations"))
            db.session.add(Queue(name="finance", domain="finance", is_default=True, sla_minutes=60))
            new = intake.create_client(db.session, "bench", ["finance"], [])
            db.session.commit()
            self.token, self.secret = new.token, new.signing_secret

    def post_cases(self, n: int, offset: int = 0) -> None:
        http = self.app.test_client()
        for i in range(offset, offset + n):
            body = {"external_id": f"bench-{i}", "domain": "finance", "case_type": "payment_release",
                    "title": f"Bench payment {i}", "data": {**EXAMPLES["payment_release"], "payment_id": f"P-{i}"}}
            raw = json.dumps(body).encode()
            response = http.post("/api/v1/cases", data=raw, headers={
                "Authorization": f"Bearer {self.token}", "Content-Type": "application/json",
                **webhooks.headers(self.secret, f"msg_bench_{i}", raw)})
            assert response.status_code == 202, response.get_data(as_text=True)

    def run_workers(self, count: int) -> None:
        procs = [subprocess.Popen([sys.executable, "-m", "workers", "--burst", "--queues", "ai"], cwd=BASE_DIR,
                                  env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for _ in range(count)]
        for proc in procs:
            proc.wait(timeout=600)

    def measure(self, label: str, workers: int, n: int, offset: int) -> Result:
        """Post ``n`` cases, drain them with ``workers`` processes. Throughput counts from the first
        job's start to the last job's end, so worker start-up time is not in it."""
        self.post_cases(n, offset)
        self.run_workers(workers)
        with self.app.app_context():
            rows = db.session.execute(
                select(Case.id, Case.created_at, Recommendation.created_at, Recommendation.latency_ms)
                .join(Recommendation, Recommendation.case_id == Case.id)
                .where(Case.external_id.in_([f"bench-{i}" for i in range(offset, offset + n)]))).all()
            done = db.session.scalar(select(func.count()).select_from(Recommendation))
        assert len(rows) == n, f"only {len(rows)} of {n} cases got a recommendation ({done} in all)"
        latencies, overheads, starts, ends = [], [], [], []
        for case_id, created, recommended, provider_ms in rows:
            latencies.append((recommended - created).total_seconds() * 1000)
            job = Job.fetch(f"analyze-{case_id}-1", connection=self.redis)
            starts.append(job.started_at)
            ends.append(job.ended_at)
            job_ms = (job.ended_at - job.started_at).total_seconds() * 1000
            overheads.append(max(job_ms - provider_ms, 0.0))
        seconds = (max(ends) - min(starts)).total_seconds()
        return Result(label, workers, n, seconds, latencies, overheads)


def table(results: list[Result]) -> str:
    head = f"{'run':<34}{'workers':>8}{'cases':>7}{'cases/s':>9}{'e2e p50 ms':>12}{'e2e p95 ms':>12}" \
           f"{'overhead p50 ms':>17}"
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r.label:<34}{r.workers:>8}{r.cases:>7}{r.throughput:>9.1f}"
                     f"{percentile(r.latencies_ms, 50):>12.0f}{percentile(r.latencies_ms, 95):>12.0f}"
                     f"{statistics.median(r.overheads_ms):>17.1f}")
    return "\n".join(lines)


def run(cases: int, delay: float) -> list[Result]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        local = Bench(Path(tmp), {"AI_PROVIDER": "local"})
        local.prepare()
        results.append(local.measure("local provider (SQLite)", 1, cases, 0))
    with FakeOpenAI(default=Reply(valid_answer, delay=delay)) as server, tempfile.TemporaryDirectory() as tmp:
        routing = Path(tmp) / "routing.yaml"
        routing.write_text(yaml.safe_dump(ROUTING))
        remote = Bench(Path(tmp), {"AI_PROVIDER": "openai", "OPENAI_BASE_URL": server.base_url,
                                   "OPENAI_API_KEY": "bench", "AI_ROUTING_FILE": str(routing)})
        remote.prepare()
        n = max(cases // 2, 20)
        for workers, offset in ((1, 0), (2, n)):
            results.append(remote.measure(f"openai-compatible, {delay * 1000:.0f} ms reply", workers, n, offset))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=60)
    parser.add_argument("--delay", type=float, default=0.2, help="seconds the test server takes to answer")
    args = parser.parse_args(argv)
    results = run(args.cases, args.delay)
    print(table(results))
    local, one, two = results
    overhead = statistics.median(local.overheads_ms)
    scaling = two.throughput / one.throughput
    print(f"\nruntime overhead per job (median, local, SQLite): {overhead:.1f} ms   target < 15 ms   "
          f"{'OK' if overhead < 15 else 'MISSED'}")
    print(f"throughput 2 workers / 1 worker (provider-bound):  {scaling:.2f}x    target >= 1.8x  "
          f"{'OK' if scaling >= 1.8 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
