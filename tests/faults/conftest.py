"""The fault suite's tools: real worker and scheduler processes (``python -m workers``,
``python -m workers.scheduler``) on the test's database and Redis, killed for real, and waiting
for conditions with deadlines (a sleep is never an assertion).

Every process runs with short timeouts and backoffs (``FAST``), so the whole suite stays bounded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from app.cases.models import Queue
from tests.conftest import ROOT, TestDatabase
from tests.execution_helpers import People, make_people

# The processes' settings (environment variables): fast retries, frequent sweeps, local callbacks.
FAST = {
    "AI_PROVIDER": "local",
    "AI_RETRY_INTERVALS": "",
    "INSECURE_CALLBACK_HOSTS": "127.0.0.1",
    "CALLBACK_TIMEOUT_SECONDS": "2",
    "EXECUTION_RETRY_SCHEDULE": "1",
    "STUCK_CASE_SECONDS": "0",
    "SWEEP_INTERVAL_SECONDS": "2",
    "SLA_SWEEP_INTERVAL_SECONDS": "600",
    "RULES_SWEEP_INTERVAL_SECONDS": "600",
    "AUDIT_CHECKPOINT_SECONDS": "3600",
    "AUDIT_CHECKPOINT_DIR": "",
}
PROCESS_START_SECONDS = 30  # an interpreter, create_app and the first job, on a busy machine


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 30) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


@dataclass
class Processes:
    """Starts the platform's own processes as the operator would, each in its own process group,
    and kills whatever is left at the end of the test."""

    app: Flask
    database: TestDatabase
    logs: Path
    started: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def env(self, **overrides: str) -> dict[str, str]:
        return {**os.environ, **FAST, "DATABASE_URL": self.database.url, "REDIS_URL": self.app.config["REDIS_URL"],
                **overrides}

    def start(self, module: str, *args: str, **env: str) -> subprocess.Popen[bytes]:
        """Start ``python -m module args``; its output goes to a file (a pipe nobody reads would fill
        up and stop it), named in the failure of a test that waited for it."""
        log = self.logs / f"{len(self.started)}-{module}.log"
        with log.open("wb") as output:
            process = subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, env=self.env(**env),
                                       stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        self.started.append(process)
        return process

    def worker(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        return self.start("workers", *args, **env)

    def scheduler(self, **env: str) -> subprocess.Popen[bytes]:
        return self.start("workers.scheduler", **env)

    def burst(self, *args: str, **env: str) -> None:
        """Run a worker until its queues are empty (it must exit 0)."""
        process = self.worker("--burst", *args, **env)
        process.wait(timeout=PROCESS_START_SECONDS + 30)
        assert process.returncode == 0, f"the worker failed: see {self.logs}"

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL the process and its children (a forked work horse): no clean-up runs."""
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


@pytest.fixture
def processes(app: Flask, database: TestDatabase, tmp_path: Path) -> Iterator[Processes]:
    logs = tmp_path / "process-logs"
    logs.mkdir()
    running = Processes(app, database, logs)
    try:
        yield running
    finally:
        running.stop_all()


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    """The test process's side of ``FAST``."""
    return {"INSECURE_CALLBACK_HOSTS": frozenset({"127.0.0.1"}), "CALLBACK_TIMEOUT_SECONDS": 2.0,
            "EXECUTION_RETRY_SCHEDULE": [1], "STUCK_CASE_SECONDS": 0, "AI_RETRY_INTERVALS": []}


@pytest.fixture
def people(queues: dict[str, Queue]) -> People:
    return make_people(list(queues.values()))
