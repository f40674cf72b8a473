"""The baseline of the intake benchmark: a bare Flask app with one endpoint that stores the
request's JSON body with one SQLAlchemy INSERT and answers 202. Nothing else: no signature,
no validation, no audit trail, no queue.

    DATABASE_URL=sqlite:///bench.db gunicorn 'benchmarks.bare_app:create_app()'

The table is created by ``create_table`` (the benchmark does it before starting the workers).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, jsonify, request
from sqlalchemy.dialects.postgresql import JSONB

from config import normalize_database_url

metadata = sa.MetaData()
bare_cases = sa.Table(
    "bench_bare_cases", metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("body", sa.JSON().with_variant(JSONB(), "postgresql"), nullable=False),  # as cases.payload
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


def engine_for(url: str) -> sa.Engine:
    """With the engine options the real app uses (app/__init__.py), so only the work differs."""
    url = normalize_database_url(url)
    if url.startswith("sqlite"):
        return sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
    return sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def create_table(url: str) -> None:
    engine = engine_for(url)
    metadata.create_all(engine)
    engine.dispose()


def count_rows(url: str) -> int:
    engine = engine_for(url)
    with engine.connect() as conn:
        found = conn.scalar(sa.select(sa.func.count()).select_from(bare_cases)) or 0
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

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok")

    return app
