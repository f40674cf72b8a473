"""The upstream examples (examples/) run as printed against the app over real HTTP: each posts a
signed case, refuses a forged callback, and prints the verified callback once a reviewer approves."""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rq import SimpleWorker

from app.auth.services import create_api_token
from app.cases.models import Case, Status
from app.extensions import db
from tests.conftest import ROOT
from workers.demo import free_port

pytest_plugins = ["tests.review_fixtures"]

LINE_TIMEOUT_SECONDS = 30


@pytest.fixture
def config_overrides():
    return {"INSECURE_CALLBACK_HOSTS": frozenset({"127.0.0.1"}), "CALLBACK_TIMEOUT_SECONDS": 5}


@dataclass
class Example:
    process: subprocess.Popen[str]
    lines: queue.Queue[str]
    seen: list[str]

    def wait_for(self, pattern: str) -> re.Match[str]:
        """The first line of output (from here on) that matches ``pattern``."""
        deadline = time.monotonic() + LINE_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                assert self.process.poll() is None, f"the example exited early: {self.seen}"
                continue
            self.seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        raise AssertionError(f"no line matching {pattern!r} within {LINE_TIMEOUT_SECONDS} s: {self.seen}")


def start(argv: list[str], env: dict[str, str] | None = None) -> Example:
    process = subprocess.Popen(
        argv, cwd=ROOT, env={**_base_env(), **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))

    threading.Thread(target=pump, daemon=True).start()
    return Example(process, lines, [])


def _base_env() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name in ("PATH", "HOME", "LANG", "TMPDIR")}


def python_example(url: str, credentials: Path) -> Example:
    return start([sys.executable, "examples/upstream_client.py", "--url", url, "--credentials", str(credentials),
                  "--timeout", "60"])


def curl_example(url: str, credentials: Path) -> Example:
    if shutil.which("socat") is None:
        pytest.skip("the curl example listens for its callback with socat, which is not installed")
    return start(["bash", "examples/upstream_curl.sh", str(credentials)],
                 {"COUNTERSIGN_URL": url, "CALLBACK_PORT": str(free_port()), "TIMEOUT": "60"})


def forged_callback(url: str) -> int:
    """POST a callback signed with the wrong secret to the example's receiver; its status."""
    body = b'{"type": "case.approved"}'
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "webhook-id": "msg_forged", "webhook-timestamp": str(int(time.time())),
        "webhook-signature": "v1,bm90IHRoZSBzaWduYXR1cmUgb2YgdGhpcyBib2R5"})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as refused:
        return refused.code


def approve_through_the_reviewer_api(client, reviewer, case_id: int, redis_conn) -> None:
    SimpleWorker(["ai"], connection=redis_conn).work(burst=True)
    _, raw = create_api_token(db.session, reviewer, "examples")
    db.session.commit()
    auth = {"Authorization": f"Bearer {raw}"}
    assert client.post(f"/api/v1/cases/{case_id}/claim", headers=auth).status_code == 200
    version = db.session.get(Case, case_id).version
    decided = client.post(f"/api/v1/cases/{case_id}/decisions", headers=auth,
                          json={"kind": "approve", "case_version": version})
    assert decided.status_code == 201, decided.get_json()
    SimpleWorker(["execute"], connection=redis_conn).work(burst=True)


@pytest.fixture(params=["python", "curl"])
def example(request, live_server, credentials) -> Iterator[Example]:
    running = {"python": python_example, "curl": curl_example}[request.param](live_server, credentials)
    yield running
    if running.process.poll() is None:
        running.process.kill()
    running.process.wait(timeout=10)


def test_the_example_posts_a_case_and_prints_the_verified_callback(example, client, people, redis_conn):
    callback_url = example.wait_for(r"receiving callbacks at (\S+)")[1]
    case_id = int(example.wait_for(r"posted case (\d+): received")[1])
    assert db.session.get(Case, case_id).callback_url == callback_url

    assert forged_callback(callback_url) == 401
    example.wait_for(r"callback refused")

    approve_through_the_reviewer_api(client, people.reviewer, case_id, redis_conn)
    verified = example.wait_for(r"callback verified: .*")[0]
    assert re.search(r'"type": ?"case\.approved"', verified), verified
    assert re.search(rf'"id": ?{case_id}\b', verified), verified
    assert people.reviewer.email in verified  # approved_by
    example.wait_for(rf"case {case_id} is executed")
    assert example.process.wait(timeout=LINE_TIMEOUT_SECONDS) == 0, example.seen
    db.session.expire_all()
    assert db.session.get(Case, case_id).status == Status.EXECUTED
