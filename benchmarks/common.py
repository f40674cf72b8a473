"""What the benchmarks share: their databases (a temporary SQLite file or PostgreSQL database per
run), the app's settings for them, running over the backends, percentiles, and the processes they
start (a free port, a command until it is ready, a health check)."""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from redis.exceptions import RedisError

import benchmarks
from config import BASE_DIR, Config, normalize_database_url

HOST = "127.0.0.1"
STARTUP_SECONDS = 30
DROP_TIMEOUT_SECONDS = 30
PG_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


# --- databases ---------------------------------------------------------------------------------------


def bench_config(url: str) -> type[Config]:
    return type("BenchConfig", (Config,), {
        "SQLALCHEMY_DATABASE_URI": url, "ENV": "bench", "TESTING": True,
        "REDIS_URL": benchmarks.redis_url(),
    })


@contextlib.contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="countersign-bench-") as folder:
        yield f"sqlite:///{Path(folder) / 'bench.db'}"


def postgres_reachable(admin_url: str = PG_ADMIN_URL) -> bool:
    engine = sa.create_engine(normalize_database_url(admin_url), poolclass=sa.pool.NullPool,
                              connect_args={"connect_timeout": 2})
    try:
        with engine.connect():
            return True
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


@contextlib.contextmanager
def postgres_database(admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """A temporary database, dropped afterwards."""
    admin = sa.create_engine(normalize_database_url(admin_url), isolation_level="AUTOCOMMIT",
                             poolclass=sa.pool.NullPool)
    name = f"countersign_bench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield sa.make_url(normalize_database_url(admin_url)).set(database=name).render_as_string(hide_password=False)
    finally:
        _drop(admin, name)
        admin.dispose()


def _drop(admin: sa.Engine, name: str) -> None:
    """Drop the database, or say it is left: on a shared server, a dropping may wait for ever on a
    backend that does not answer signals (one stuck writing to a client that stopped reading)."""
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"SET statement_timeout = '{DROP_TIMEOUT_SECONDS}s'")
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    except sa.exc.OperationalError as exc:
        print(f"database {name} left behind, drop it later: {exc.orig}")


def database_for(backend: str) -> contextlib.AbstractContextManager[str]:
    return sqlite_database() if backend == "sqlite" else postgres_database()


def over_backends(backends: Sequence[str], measure: Callable[[str], list[Any]]) -> list[Any]:
    """``measure(backend)`` for each backend, skipping PostgreSQL (said) when it is not reachable."""
    results: list[Any] = []
    for backend in backends:
        if backend == "postgresql" and not postgres_reachable():
            print(f"PostgreSQL not reachable at {PG_ADMIN_URL}: skipped")
            continue
        results += measure(backend)
    return results


def backends_of(listed: str) -> tuple[str, ...]:
    """``--backends sqlite,postgresql`` as a tuple."""
    return tuple(b.strip() for b in listed.split(",") if b.strip())


# --- measuring ---------------------------------------------------------------------------------------


def percentile(samples: list[float], pct: float) -> float:
    """The nearest-rank percentile of ``samples``."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


# --- processes ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_for(ready: Callable[[], bool], seconds: float, what: str, alive: Callable[[], bool] = lambda: True) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and alive():
        with contextlib.suppress(OSError, RedisError, http.client.HTTPException):
            if ready():
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not start within {seconds} s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def healthy(port: int, path: str = "/healthz") -> bool:
    """Whether the app on ``port`` answers ``path`` with 200."""
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    finally:
        conn.close()


@contextlib.contextmanager
def running(command: list[str], env: dict[str, str], log: Path, what: str,
            ready: Callable[[], bool] | None = None, startup_seconds: float = STARTUP_SECONDS,
            ) -> Iterator[subprocess.Popen]:
    """``command`` with its output in ``log``, once ``ready`` says so, until the block ends."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=BASE_DIR, env={**os.environ, **env}, stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        if ready is not None:
            try:
                wait_for(ready, startup_seconds, what, lambda: process.poll() is None)
            except RuntimeError:
                raise RuntimeError(f"{what} did not start:\n{log.read_text()[-2000:]}") from None
        yield process
    finally:
        stop(process)
