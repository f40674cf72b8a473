"""The baseline of the intake benchmark: a bare Flask app with one endpoint, ``POST /cases``,
that stores the request's JSON body with one SQLAlchemy INSERT and answers 202. Nothing else: no
signature, no validation, no audit trail, no queue.

``POST /floor`` (``--floor``) does, as bare, the writes intake must do for every case and
nothing more: in one transaction the case, a receipt unique on its webhook-id and an audit
event (three Core INSERTs), and in Redis a rate-limit count and a queue push (one command each).
No signature, validation, authentication, rules or ORM: what is left of intake's cost beside it
is the application's own.

    DATABASE_URL=sqlite:///bench.db REDIS_URL=redis://… gunicorn 'benchmarks.bare_app:create_app()'

The tables are created by ``create_tables`` (the benchmark does it before starting the workers).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, jsonify, request
from redis import Redis
from sqlalchemy.dialects.postgresql import JSONB

from config import normalize_database_url

metadata = sa.MetaData()
bare_cases = sa.Table(
    "bench_bare_cases", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("body", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),  # as cases.payload
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
floor_cases = sa.Table(
    "bench_floor_cases", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("body", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
floor_receipts = sa.Table(
    "bench_floor_receipts", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("case_id", sa.Integer, nullable=False),
    sa.Column("webhook_id", sa.String(255), nullable=False, unique=True),
    sa.Column("response_body", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
)
floor_events = sa.Table(
    "bench_floor_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("case_id", sa.Integer, nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("data", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
FLOOR_QUEUE = "bench:floor:queue"


def engine_for(url: str) -> sa.Engine:
    """With the engine options the real app uses (app/__init__.py), so only the work differs."""
    url = normalize_database_url(url)
    if url.startswith("sqlite"):
        return sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def create_tables(url: str) -> None:
    engine = engine_for(url)
    metadata.create_all(engine)
    engine.dispose()


def count_rows(url: str, table: sa.Table = bare_cases) -> int:
    engine = engine_for(url)
    with engine.connect() as conn:
        found = conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0
    engine.dispose()
    return found


def create_app(url: str | None = None) -> Flask:
    engine = engine_for(url or os.environ["DATABASE_URL"])
    app = Flask(__name__)

    @app.post("/cases")
    def create_case() -> tuple[Response, int]:
        body: Any = request.get_json()
        with engine.begin() as conn:
            result = conn.execute(sa.insert(bare_cases).values(body=body, created_at=datetime.now(UTC)))
        return jsonify(id=result.inserted_primary_key[0]), 202

    if os.environ.get("REDIS_URL"):
        _add_floor(app, engine, Redis.from_url(os.environ["REDIS_URL"]))

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    return app


def _add_floor(app: Flask, engine: sa.Engine, redis: Redis) -> None:
    @app.post("/floor")
    def floor() -> tuple[Response, int]:
        body: Any = request.get_json()
        webhook_id, now = request.headers["webhook-id"], datetime.now(UTC)
        redis.incr("bench:floor:rate")
        with engine.begin() as conn:
            case_id = conn.execute(sa.insert(floor_cases).values(body=body, created_at=now)).inserted_primary_key[0]
            answer = {"id": case_id, "status": "received"}
            conn.execute(sa.insert(floor_receipts).values(case_id=case_id, webhook_id=webhook_id, response_body=answer))
            conn.execute(sa.insert(floor_events).values(case_id=case_id, action="case.received", created_at=now,
                                                        data={"webhook_id": webhook_id}))
        redis.lpush(FLOOR_QUEUE, case_id)
        return jsonify(answer), 202
