"""Countersign: human-in-the-loop review of AI recommendations."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.routing import IntegerConverter, Map

from app.db import canonical_json
from app.metrics import check_multiprocess_dir
from config import BASE_DIR, Config


def create_app(config: type[Config] = Config) -> Flask:
    config.check()
    check_multiprocess_dir()
    app = Flask(__name__, template_folder=str(BASE_DIR / "templates"), instance_path=str(BASE_DIR / "instance"))
    app.url_map.converters["int"] = DatabaseId
    app.config.from_object(config)
    app.config["RATELIMIT_STORAGE_URI"] = rate_limit_storage(app.config["REDIS_URL"])
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)  # Redis down must not stop intake
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = _engine_options(app.config["SQLALCHEMY_DATABASE_URI"])

    from app import models  # noqa: F401  (every table on the metadata)
    from app.extensions import csrf, db, limiter, login_manager, migrate

    db.init_app(app)
    migrate.init_app(app, db, directory=str(BASE_DIR / "migrations"))
    csrf.init_app(app)
    limiter.init_app(app)
    login_manager.init_app(app)

    from app.intake.api import bp as intake_bp
    from app.ops import bp as ops_bp
    from app.problems import register_error_handlers

    register_error_handlers(app)
    app.register_blueprint(intake_bp)
    csrf.exempt(intake_bp)
    app.register_blueprint(ops_bp)  # /metrics, /healthz, /readyz

    # Reviewer workspace: security headers, sign-in and tokens, the token-authenticated reviewer API.
    from app.auth.views import bp as auth_bp
    from app.review.api import bp as review_api_bp
    from app.security import init_security

    init_security(app)
    app.register_blueprint(auth_bp)
    app.register_blueprint(review_api_bp)
    csrf.exempt(review_api_bp)

    from app.review.views import bp as review_views_bp  # reviewer web UI: /, /queues, /cases/<id>

    app.register_blueprint(review_views_bp)

    # Escalation rules admin (/admin/rules), the notification bell (/notifications) and the `rules` CLI group.
    from app.cli import rules as rules_cli
    from app.escalation.views import bp as escalation_bp
    from app.notifications.views import bp as notifications_bp

    app.register_blueprint(escalation_bp)
    app.register_blueprint(notifications_bp)
    app.cli.add_command(rules_cli)

    from app.evaluation.cli import ai as ai_cli  # flask ai eval, flask ai compare-shadow

    app.cli.add_command(ai_cli)

    from app.execution.views import bp as execution_bp  # admin: /admin/executions (failures, deliveries)

    app.register_blueprint(execution_bp)

    from app.auditor.export_views import bp as audit_export_bp  # /audit/export: the decision log as a ZIP
    from app.auditor.views import bp as auditor_bp  # /audit, and each case's evidence package
    from app.openapi import bp as openapi_bp  # /api/v1/openapi.json and its reference page

    app.register_blueprint(auditor_bp)
    app.register_blueprint(audit_export_bp)
    app.register_blueprint(openapi_bp)

    from app.admin.agent_tools import bp as admin_agent_tools_bp  # /admin/agent-tools: agents' tool policies
    from app.admin.clients import bp as admin_clients_bp  # /admin/clients: upstream API clients
    from app.admin.controls import bp as controls_bp  # /admin/controls: the kill switch, and its banner
    from app.admin.queues import bp as admin_queues_bp  # /admin/queues: create, edit, archive
    from app.admin.reason_codes import bp as admin_reason_codes_bp  # /admin/reason-codes
    from app.admin.users import bp as admin_users_bp  # /admin/users: accounts, roles, queues, access
    from app.admin.views import bp as admin_bp  # /admin: the index of every administration area

    app.register_blueprint(admin_bp)
    app.register_blueprint(admin_queues_bp)
    app.register_blueprint(admin_users_bp)
    app.register_blueprint(admin_clients_bp)
    app.register_blueprint(admin_reason_codes_bp)
    app.register_blueprint(admin_agent_tools_bp)
    app.register_blueprint(controls_bp)

    from app.dashboards.views import bp as dashboards_bp  # /dashboards: queues, oversight, AI cost and quality

    app.register_blueprint(dashboards_bp)
    from app.oversight.views import bp as oversight_bp  # /oversight: calibration, QA samples

    app.register_blueprint(oversight_bp)
    from app.agents import tools as agent_tools  # the agent_action analyzer reads the tools' policies

    agent_tools.install()

    from app.navigation import init_navigation  # the one menu of every page, the duration filters

    init_navigation(app)

    from app.cli import register_cli

    register_cli(app)
    return app


def rate_limit_storage(redis_url: str) -> str:
    """The rate limiter's storage URI for REDIS_URL: the same Redis, but the limits library spells a
    Unix socket ``redis+unix://`` where redis-py (RQ, the app's client) spells it ``unix://``."""
    return "redis+" + redis_url if redis_url.startswith("unix://") else redis_url


class DatabaseId(IntegerConverter):
    """Every integer in a path here is a row id: one no column can hold is simply not found (404),
    never a query the database refuses."""

    def __init__(self, url_map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min", 1)
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(url_map, *args, **kwargs)


def _engine_options(url: str) -> dict:
    # JSON is written as canonical text: the audit log hashes an event's data exactly as stored.
    common = {"json_serializer": canonical_json}
    if url.startswith("sqlite"):
        return {**common, "connect_args": {"timeout": 30, "check_same_thread": False}}
    # Workers fork: a small pool per process, checked before use.
    return {**common, "pool_pre_ping": True, "pool_size": 5, "max_overflow": 5}


@event.listens_for(Engine, "connect")
def _sqlite_on_connect(dbapi_connection, connection_record) -> None:
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
        cursor.close()
