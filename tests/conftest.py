"""Shared fixtures: a migrated database (SQLite by default, PostgreSQL with
TEST_DATABASE_URL), a real Redis (a private redis-server per session, or TEST_REDIS_URL),
the app, signed API calls."""

from __future__ import annotations

import copy
import functools
import json
import os
import shutil
import threading
import uuid
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, current_app
from flask.testing import FlaskClient
from flask_migrate import upgrade
from redis import Redis
from werkzeug.serving import make_server

from app import create_app, webhooks
from app.audit import chain, verification
from app.cases.models import Queue
from app.cases.types import REGISTRY, examples
from app.execution.receiver import Receiver
from app.extensions import db, limiter
from app.intake import services as intake
from config import TestConfig, normalize_database_url
from devtools import redis_server

ROOT = Path(__file__).resolve().parent.parent
# The app's processes the tests start (workers, schedulers, web servers) read the environment, not
# TestConfig: they get its safe-speed settings too, so an approval made here executes at once there.
for _name, _value in (("REVIEW_UNDO_SECONDS", "0"), ("REVIEW_CONFIRM_AMOUNT", str(10**12)),
                      ("REVIEW_CONFIRM_CONFIDENCE", "0")):
    os.environ.setdefault(_name, _value)
DOMAIN_OF = {case_type.name: case_type.domain for case_type in REGISTRY.values()}
EXAMPLES = examples()


def _pg_url() -> str | None:
    raw = os.environ.get("TEST_DATABASE_URL")
    return normalize_database_url(raw) if raw else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The browser suite drives the same pages whatever the database: it runs in the SQLite pass, and in
    the PostgreSQL pass only with BROWSER_ON_POSTGRES=1 (the server code behind each page runs on
    PostgreSQL in the other tests)."""
    if _pg_url() is None or os.environ.get("BROWSER_ON_POSTGRES") == "1":
        return
    skip = pytest.mark.skip(reason="browser tests run in the SQLite pass (BROWSER_ON_POSTGRES=1 runs them here)")
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(skip)


def make_config(database_url: str, redis_url: str, **overrides: Any) -> type[TestConfig]:
    attrs = {"SQLALCHEMY_DATABASE_URI": database_url, "REDIS_URL": redis_url, **overrides}
    return type("RunConfig", (TestConfig,), attrs)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The one Redis of this session: TEST_REDIS_URL when given (flushed per test), else a private
    redis-server on a free port, killed at the end, so parallel runs never flush each other's."""
    given = os.environ.get("TEST_REDIS_URL")
    if given:
        yield given
        return
    server = redis_server.start(tmp_path_factory.mktemp("redis"))
    try:
        yield server.url
    finally:
        server.stop()


@dataclass
class TestDatabase:
    url: str
    template: Path | None  # SQLite: a migrated file copied before each test
    seeded: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # PostgreSQL: rows the migrations wrote

    @property
    def is_postgres(self) -> bool:
        return self.url.startswith("postgresql")


def _migrate(url: str) -> None:
    app = create_app(make_config(url, TestConfig.REDIS_URL))  # migrating never touches Redis
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        db.engine.dispose()


@pytest.fixture(scope="session")
def test_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestDatabase]:
    pg = _pg_url()
    if pg is None:
        template = tmp_path_factory.mktemp("db") / "template.db"
        _migrate(f"sqlite:///{template}")
        yield TestDatabase(f"sqlite:///{template.parent / 'test.db'}", template)
        return
    admin = sa.create_engine(pg, isolation_level="AUTOCOMMIT")
    name = f"countersign_test_{os.getpid()}"  # parallel runs never share a database
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    url = sa.make_url(pg).set(database=name).render_as_string(hide_password=False)
    _migrate(url)
    yield TestDatabase(url, None, _rows_written_by_migrations(url))
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.dispose()


def _rows_written_by_migrations(url: str) -> dict[str, list[dict[str, Any]]]:
    """Seed data (the reason codes): put back after every reset, as a fresh install has it."""
    with _reset_engine(url).connect() as conn:
        found = {table.name: [dict(row._mapping) for row in conn.execute(table.select())]
                 for table in db.metadata.sorted_tables}
    return {name: rows for name, rows in found.items() if rows}


def reset_database(database: TestDatabase) -> None:
    if database.template is not None:
        target = Path(database.url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        shutil.copy(database.template, target)
        return
    with _reset_engine(database.url).begin() as conn:
        # Superuser test session: replica mode skips the append-only (and FK) triggers for the reset.
        conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
        for table in reversed(db.metadata.sorted_tables):
            conn.exec_driver_sql(f"DELETE FROM {table.name}")
        for table in db.metadata.sorted_tables:
            if table.name in database.seeded:
                conn.execute(table.insert(), database.seeded[table.name])


@functools.cache
def _reset_engine(url: str) -> sa.Engine:
    return sa.create_engine(url, poolclass=sa.pool.NullPool)


@pytest.fixture
def redis_conn(redis_url: str) -> Iterator[Redis]:
    conn = Redis.from_url(redis_url)
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


@pytest.fixture
def database(test_database: TestDatabase) -> TestDatabase:
    reset_database(test_database)
    return test_database


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    """Override in a test module (or parametrize) to change the app's settings."""
    return {}


# One app per distinct configuration, shared by the tests that use it: create_app and what an app
# compiles on first use (templates, SQL statements per engine) cost more than most tests. Settings
# that change per test (a server's port, a tmp_path) make their own apps, so the oldest go first.
_APPS: dict[Hashable, tuple[Flask, dict[str, Any]]] = {}
_APPS_KEPT = 16


def _frozen(value: Any) -> Hashable:
    """``value`` as a hashable key that still tells a list from a tuple from a set."""
    if isinstance(value, dict):
        return ("dict", tuple(sorted((key, _frozen(item)) for key, item in value.items())))
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(_frozen(item) for item in value))
    if isinstance(value, set | frozenset):
        return (type(value).__name__, tuple(sorted((_frozen(item) for item in value), key=repr)))
    hash(value)  # TypeError for anything else unhashable: that config is not shared
    return (type(value).__name__, value)  # 5 and 5.0, 1 and True are different settings


def _shared_app(database_url: str, redis_url: str, overrides: dict[str, Any]) -> Flask:
    try:
        key = _frozen({"database": database_url, "redis": redis_url, **overrides})
    except TypeError:  # an unhashable setting: this test gets an app of its own
        return create_app(make_config(database_url, redis_url, **overrides))
    entry = _APPS.pop(key, None)
    if entry is None:
        app = create_app(make_config(database_url, redis_url, **overrides))
        entry = (app, dict(vars(limiter)))
    else:  # the rate limiter is one object that keeps the storage of the app it was last bound to
        vars(limiter).update(entry[1])
    _APPS[key] = entry  # most recently used last
    if len(_APPS) > _APPS_KEPT:
        del _APPS[next(iter(_APPS))]
    return entry[0]


@pytest.fixture
def app(
    database: TestDatabase, redis_url: str, redis_conn: Redis, config_overrides: dict[str, Any], tmp_path: Path
) -> Iterator[Flask]:
    """The (shared) app for these settings, in a fresh app context on a freshly reset database and
    its own directory of published audit checkpoints; whatever the test writes into app.config is
    put back afterwards."""
    app = _shared_app(database.url, redis_url, config_overrides)
    config = dict(app.config)
    app.config["AUDIT_CHECKPOINT_DIR"] = str(tmp_path / "audit-checkpoints")
    try:
        with app.app_context():
            yield app
            db.session.remove()
            db.engine.dispose()  # SQLite: the next test's database is a new file
    finally:
        app.config.clear()
        app.config.update(config)


def audit_log_intact() -> bool:
    """Seal what is committed, then verify the whole audit log (as ``audit verify`` does)."""
    chain.seal(db.session)
    return verification.verify(db.session, current_app.config).ok


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """The app over real HTTP on a free 127.0.0.1 port, served by threads; its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask):
    return app.test_cli_runner()


@pytest.fixture
def queues(app: Flask) -> dict[str, Queue]:
    made = {
        domain: Queue(name=domain, domain=domain, is_default=True, sla_minutes=60)
        for domain in ("finance", "legal", "compliance")
    }
    db.session.add_all(made.values())
    db.session.commit()
    return made


def case_body(case_type: str = "payment_release", **overrides: Any) -> dict[str, Any]:
    """A valid intake body for ``case_type`` built from the contract's examples."""
    body = {
        "external_id": f"ext-{uuid.uuid4().hex[:12]}",
        "domain": DOMAIN_OF[case_type],
        "case_type": case_type,
        "title": f"Test {case_type.replace('_', ' ')}",
        "data": copy.deepcopy(EXAMPLES[case_type]),
    }
    body.update(overrides)
    return body


@dataclass
class Upstream:
    """An API client as an upstream system sees it: token, secret and a signed POST."""

    http: FlaskClient
    id: int
    name: str
    token: str
    secret: str

    def sign(
        self, raw: bytes, *, webhook_id: str | None = None, timestamp: int | None = None, secret: str | None = None
    ) -> dict[str, str]:
        return webhooks.headers(secret or self.secret, webhook_id or f"msg_{uuid.uuid4().hex}", raw, timestamp)

    def post_case(self, body: dict[str, Any] | bytes, **options: Any) -> Any:
        return self.post_signed("/api/v1/cases", body, **options)

    def post_signed(
        self,
        path: str,
        body: dict[str, Any] | bytes,
        *,
        webhook_id: str | None = None,
        timestamp: int | None = None,
        secret: str | None = None,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": content_type,
            **self.sign(raw, webhook_id=webhook_id, timestamp=timestamp, secret=secret),
            **(headers or {}),
        }
        return self.http.post(path, data=raw, headers=sent)

    def get_case(self, case_id: int) -> Any:
        return self.http.get(f"/api/v1/cases/{case_id}", headers={"Authorization": f"Bearer {self.token}"})


def sign_in(http: FlaskClient, user: Any) -> None:
    """Sign ``http`` in as ``user`` (None: out) as the login form does, with a server-side session,
    without the form. The test's app context outlives requests: forget the user Flask-Login
    cached on ``g``."""
    from flask import g

    from app.auth.services import start_session
    from app.auth.views import SESSION_KEY

    raw = start_session(db.session, user) if user is not None else None
    db.session.commit()
    with http.session_transaction() as session:
        for key in ("_user_id", "_fresh", SESSION_KEY):
            session.pop(key, None)
        if raw is not None:
            session["_user_id"], session["_fresh"], session[SESSION_KEY] = str(user.id), True, raw
    g.pop("_login_user", None)


def assert_problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    """The RFC 9457 problem document of ``response``, checked for its status and type."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == "application/problem+json"
    body = response.get_json()
    assert (body["status"], body["type"]) == (status, f"urn:countersign:problem:{slug}")
    assert body["title"]
    return body


def make_upstream(
    http: FlaskClient,
    name: str = "payments-engine",
    domains: tuple[str, ...] = ("finance", "legal", "compliance"),
    callback_hosts: tuple[str, ...] = ("hooks.example.com", "127.0.0.1"),
) -> Upstream:
    new = intake.create_client(db.session, name, list(domains), list(callback_hosts))
    db.session.commit()
    return Upstream(http, new.client.id, name, new.token, new.signing_secret)


@pytest.fixture
def upstream(client: FlaskClient, queues: dict[str, Queue]) -> Upstream:
    return make_upstream(client)


@pytest.fixture
def receiver(upstream: Upstream) -> Iterator[Receiver]:
    """The upstream system's webhook receiver: real HTTP on 127.0.0.1, any free port."""
    running = Receiver(upstream.secret).start()
    yield running
    running.stop()
