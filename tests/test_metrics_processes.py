"""/metrics is right across processes: two gunicorn servers (three web worker processes) and an RQ
worker process count into one PROMETHEUS_MULTIPROC_DIR, and either server's /metrics shows the
totals of the traffic sent to both and of the jobs the worker ran."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import webhooks
from tests.conftest import ROOT, Upstream, case_body
from workers.demo import free_port

TOKEN = "multi-process-metrics-token"
SERVERS = {"a": 2, "b": 1}  # gunicorn servers and their worker processes
POSTED = {"a": 5, "b": 3}  # valid cases posted to each
STRANGERS = {"a": 2, "b": 1}  # posts with an unknown API token


@dataclass
class Processes:
    urls: dict[str, str]
    directory: Path
    env: dict[str, str]
    logs: Path


def start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_until_serving(url: str, server: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert server.poll() is None, log.read_text()
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} did not start:\n{log.read_text()}"
        time.sleep(0.2)


@pytest.fixture
def processes(database, redis_url, upstream, tmp_path) -> Iterator[Processes]:
    """The gunicorn servers of SERVERS, serving the test's database (its API client already made)."""
    directory = tmp_path / "prometheus"
    directory.mkdir()
    env = {**os.environ, "DATABASE_URL": database.url, "REDIS_URL": redis_url, "COUNTERSIGN_ENV": "development",
           "PROMETHEUS_MULTIPROC_DIR": str(directory), "METRICS_TOKEN": TOKEN, "METRICS_ALLOW_NETWORKS": "",
           "AI_PROVIDER": "local", "OPENAI_API_KEY": "", "INTAKE_RATE_LIMIT": "1000 per minute"}
    servers: dict[str, subprocess.Popen] = {}
    urls: dict[str, str] = {}
    try:
        for name, workers in SERVERS.items():
            port = free_port()
            log = tmp_path / f"gunicorn-{name}.log"
            servers[name] = start([sys.executable, "-m", "gunicorn", "wsgi:app", "--bind", f"127.0.0.1:{port}",
                                   "--workers", str(workers), "--log-level", "warning"], env, log)
            urls[name] = f"http://127.0.0.1:{port}"
        for name, url in urls.items():
            wait_until_serving(url, servers[name], tmp_path / f"gunicorn-{name}.log")
        yield Processes(urls, directory, env, tmp_path)
    finally:
        for server in servers.values():
            stop(server)


def post_case(url: str, token: str, secret: str) -> int:
    raw = json.dumps(case_body("payment_release")).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
               **webhooks.headers(secret, f"msg_{uuid.uuid4().hex}", raw, None)}
    return httpx.post(f"{url}/api/v1/cases", content=raw, headers=headers, timeout=30).status_code


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert response.status_code == 200, response.text
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def test_every_process_counts_into_the_shared_directory_and_any_server_shows_the_totals(
        processes: Processes, upstream: Upstream):
    for name, url in processes.urls.items():
        assert [post_case(url, upstream.token, upstream.secret) for _ in range(POSTED[name])] == [202] * POSTED[name]
        assert [post_case(url, "cs_unknown", upstream.secret) for _ in range(STRANGERS[name])] == \
            [401] * STRANGERS[name]
    worker = subprocess.run([sys.executable, "-m", "workers", "--burst", "--queues", "ai"], cwd=ROOT,
                            env=processes.env, capture_output=True, timeout=180, check=False)
    assert worker.returncode == 0, worker.stdout.decode() + worker.stderr.decode()

    assert httpx.get(f"{processes.urls['a']}/metrics", timeout=30).status_code == 401  # loopback is not enough here
    scrapes = {name: scrape(url) for name, url in processes.urls.items()}
    assert scrapes["a"] == scrapes["b"]
    seen = scrapes["a"]
    expected = {
        ("countersign_intake_responses_total", (("status", "202"), ("case_type", "payment_release"))): 8,
        ("countersign_intake_responses_total", (("status", "401"), ("case_type", "unknown"))): 3,
        ("countersign_job_duration_seconds_count", (("queue", "ai"), ("job", "app.ai.jobs.analyze_case"))): 8,
        ("countersign_provider_latency_seconds_count", (("provider", "local"), ("model", "rules-v1"),
                                                        ("outcome", "ok"))): 8,
        ("countersign_cases", (("status", "pending_review"), ("case_type", "payment_release"))): 8,
    }
    assert {key: seen.get((key[0], frozenset(key[1]))) for key in expected} == expected
    assert not any(name == "countersign_job_failures_total" for name, _ in seen)

    # Each process wrote files of its own: at least one web process of each server, and the worker.
    pids = {re.fullmatch(r"\w+_(\d+)\.db", path.name).group(1) for path in processes.directory.iterdir()}
    assert len(pids) >= 3
