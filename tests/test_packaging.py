"""Packaging: pyproject.toml agrees with requirements.txt, the `countersign` command is installed and
starts every process, and the Procfile and systemd units run commands that exist."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from redis import Redis
from rq import Queue

from config import TestConfig as SigningConfig
from tests.conftest import TestDatabase as Database

ROOT = Path(__file__).resolve().parent.parent
COUNTERSIGN = Path(sys.executable).parent / "countersign"  # installed by `make test` (pip install -e .)
SYSTEMD = ROOT / "deploy" / "systemd"
COMMAND_SECONDS = 60


def _pins(lines: list[str]) -> dict[str, tuple[str, frozenset[str]]]:
    requirements = [Requirement(line) for line in lines]
    return {canonicalize_name(r.name): (str(r.specifier), frozenset(r.extras)) for r in requirements}


def _requirements_txt() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _run(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_SECONDS, cwd=ROOT,
                          env={**os.environ, **(env or {})}, check=False)


def _env(database: Database, redis_url: str) -> dict[str, str]:
    return {"DATABASE_URL": database.url, "REDIS_URL": redis_url, "AUDIT_CHECKPOINT_DIR": "",
            "AUDIT_SIGNING_KEY": SigningConfig.AUDIT_SIGNING_KEY}


# --- pyproject.toml ------------------------------------------------------------------------------------------


def test_pyproject_declares_exactly_the_pins_of_requirements_txt() -> None:
    declared = _pins(_pyproject()["project"]["dependencies"])
    assert declared == _pins(_requirements_txt()), (
        "pyproject.toml's [project] dependencies differ from requirements.txt (the source): copy its pins")
    assert declared["flask"] == ("==3.1.3", frozenset())
    assert declared["psycopg"] == ("==3.3.9", frozenset({"binary"}))


def test_the_comparison_notices_a_changed_pin() -> None:
    changed = [re.sub(r"^Flask==.*$", "Flask==3.1.2", line) for line in _requirements_txt()]
    assert _pins(changed) != _pins(_pyproject()["project"]["dependencies"])


def test_pyproject_names_the_countersign_entry_point() -> None:
    assert _pyproject()["project"]["scripts"] == {"countersign": "workers.cli:main"}


# --- the installed command --------------------------------------------------------------------------------------


def test_countersign_is_installed_and_lists_the_processes_and_the_app_commands() -> None:
    assert COUNTERSIGN.exists(), f"{COUNTERSIGN} is missing: `make test` installs the project (pip install -e .)"
    result = _run([str(COUNTERSIGN), "--help"])
    assert result.returncode == 0, result.stderr
    listed = set(re.findall(r"^  (\S+)", result.stdout.split("Commands:")[1], re.MULTILINE))
    assert {"web", "worker", "scheduler", "db", "users", "clients", "queues", "rules", "audit", "seed"} <= listed


def test_countersign_web_loads_gunicorn_conf_and_the_app(database: Database, redis_url: str) -> None:
    result = _run([str(COUNTERSIGN), "web", "--check-config"], _env(database, redis_url))
    assert result.returncode == 0, result.stdout + result.stderr


def test_countersign_db_upgrade_migrates_an_empty_database(tmp_path: Path, redis_url: str) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = _run([str(COUNTERSIGN), "db", "upgrade"], {"DATABASE_URL": url, "REDIS_URL": redis_url})
    assert result.returncode == 0, result.stderr
    assert "Running upgrade 0007 -> 0008" in result.stderr


def test_countersign_worker_runs_the_jobs_of_its_queue(database: Database, redis_url: str,
                                                       redis_conn: Redis) -> None:
    job = Queue("default", connection=redis_conn).enqueue("app.audit.jobs.checkpoint_audit_log")
    result = _run([str(COUNTERSIGN), "worker", "--burst", "--queues", "default"], _env(database, redis_url))
    assert result.returncode == 0, result.stderr
    job.refresh()
    assert job.get_status() == "finished", result.stderr
    # A checkpoint of the empty log: its root is the SHA-256 of nothing (RFC 9162).
    assert job.return_value() == {
        "tree_size": 0, "root_hash": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}


def test_countersign_scheduler_registers_the_periodic_jobs_and_stops_on_sigterm(
        database: Database, redis_url: str, tmp_path: Path) -> None:
    log_path = tmp_path / "scheduler.log"
    with log_path.open("w") as log:
        process = subprocess.Popen([str(COUNTERSIGN), "scheduler"], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, **_env(database, redis_url)})
    try:
        deadline = time.monotonic() + COMMAND_SECONDS
        redis = Redis.from_url(redis_url)
        # Started: its periodic jobs registered and its birth recorded in Redis (a SIGTERM before that
        # lands inside RQ's own start-up, which is not what this test is about).
        while (("checkpoint_audit_log" not in log_path.read_text() or not redis.keys("rq:cron_scheduler:*"))
               and process.poll() is None):
            assert time.monotonic() < deadline, "the scheduler registered no periodic job in time"
            time.sleep(0.2)
        assert process.poll() is None, log_path.read_text()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=COMMAND_SECONDS) == 0, log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# --- the process definitions ------------------------------------------------------------------------------------


def _procfile() -> dict[str, str]:
    lines = [line for line in (ROOT / "Procfile").read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split(": ", 1) for line in lines)


def _unit(path: Path) -> dict[str, list[str]]:
    """Every key=value of a systemd unit file, values in order (Environment= may repeat)."""
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def _exec_start(path: Path) -> list[str]:
    """The unit's command, its ${VARIABLES} filled in from its own Environment= lines."""
    unit = _unit(path)
    defaults = dict(item.split("=", 1) for item in unit.get("Environment", []))
    [command] = unit["ExecStart"]
    return shlex.split(re.sub(r"\$\{(\w+)\}", lambda match: defaults[match[1]], command))


def test_procfile_names_the_four_processes() -> None:
    assert _procfile() == {
        "release": "countersign db upgrade",
        "web": "countersign web",
        "worker": "countersign worker --with-scheduler",
        "scheduler": "countersign scheduler",
    }


def test_systemd_units_run_the_processes_after_the_one_off_migration() -> None:
    units = {path.name: _unit(path) for path in SYSTEMD.iterdir()}
    assert set(units) == {"countersign.target", "countersign-migrate.service", "countersign-web.service",
                          "countersign-worker@.service", "countersign-scheduler.service"}
    assert units["countersign-migrate.service"]["Type"] == ["oneshot"]
    for name in ("countersign-web.service", "countersign-worker@.service", "countersign-scheduler.service"):
        assert units[name]["Requires"] == ["countersign-migrate.service"], name
        assert "countersign-migrate.service" in units[name]["After"][0].split(), name
        assert units[name]["WantedBy"] == ["countersign.target"], name


def _process_commands() -> list[list[str]]:
    commands = [shlex.split(command) for command in _procfile().values()]
    return commands + [_exec_start(path) for path in sorted(SYSTEMD.glob("*.service"))]


def test_every_process_command_is_the_installed_countersign() -> None:
    for argv in _process_commands():
        assert argv[0] in ("countersign", "/opt/countersign/.venv/bin/countersign"), argv


# How each process command is tried for real: it must then exit 0 (the scheduler, which never exits
# by itself, runs in its own test above).
TRIAL = {"web": ["--check-config"], "worker": ["--burst"], "db": [], "scheduler": ["--help"]}


@pytest.mark.parametrize("argv", sorted({tuple(argv[1:]) for argv in _process_commands()}), ids=" ".join)
def test_every_process_command_runs(argv: tuple[str, ...], database: Database, redis_url: str,
                                    redis_conn: Redis) -> None:
    result = _run([str(COUNTERSIGN), *argv, *TRIAL[argv[0]]], _env(database, redis_url))
    assert result.returncode == 0, result.stdout + result.stderr
