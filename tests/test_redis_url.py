"""REDIS_URL as a Unix socket: RQ, the app's Redis client and the rate limiter all reach the same Redis."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis
from redis.exceptions import RedisError

from app import create_app, rate_limit_storage
from app.extensions import limiter
from app.jobs import redis_connection
from tests.conftest import TestDatabase as Database
from tests.conftest import make_config
from workers.demo import redis_executable


@pytest.fixture
def redis_socket(tmp_path: Path) -> Iterator[Path]:
    socket = tmp_path / "redis.sock"
    executable = redis_executable()
    assert executable, "no redis-server (the suite needs one)"
    process = subprocess.Popen([executable, "--port", "0", "--unixsocket", str(socket), "--save", "",
                                "--appendonly", "no", "--dir", str(tmp_path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = Redis(unix_socket_path=str(socket))
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.ping():
                    break
            except RedisError:
                assert time.monotonic() < deadline, "redis-server did not answer on its socket"
                time.sleep(0.05)
        client.close()
        yield socket
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_rate_limit_storage_spells_a_socket_the_limits_way() -> None:
    assert rate_limit_storage("unix:///run/redis/redis.sock?db=2") == "redis+unix:///run/redis/redis.sock?db=2"
    assert rate_limit_storage("rediss://:secret@redis.internal:6380/0") == "rediss://:secret@redis.internal:6380/0"
    assert rate_limit_storage("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_a_unix_socket_redis_url_serves_rq_and_the_rate_limiter(database: Database, redis_socket: Path) -> None:
    app = create_app(make_config(database.url, f"unix://{redis_socket}?db=3"))
    with app.app_context():
        connection = redis_connection()
        connection.set("countersign-test", "rq side")
        assert Redis(unix_socket_path=str(redis_socket), db=3).get("countersign-test") == b"rq side"
        assert limiter.storage.check() is True
        assert limiter.storage.incr("countersign-test-limit", 60) == 1
        assert Redis(unix_socket_path=str(redis_socket), db=3).exists("LIMITS:countersign-test-limit") == 1
