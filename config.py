"""Every setting comes from the environment, with a safe default for local use."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = BASE_DIR / "instance"
DEV_SECRET_KEY = "dev-only-not-secret"  # noqa: S105 (refused in production)


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    return default if raw is None else raw.strip().lower() in {"1", "true", "yes", "on"}


def _amounts(name: str, default: str) -> dict[str, Decimal]:
    """``"EUR=100000,GBP=85000"`` → ``{"EUR": Decimal("100000"), "GBP": Decimal("85000")}``."""
    pairs = (item.partition("=") for item in os.environ.get(name, default).split(",") if item.strip())
    return {key.strip(): Decimal(value.strip()) for key, _, value in pairs}


def normalize_database_url(url: str) -> str:
    """Heroku-style postgres:// and bare postgresql:// both mean psycopg 3 here."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


class Config:
    ENV = os.environ.get("COUNTERSIGN_ENV", "development")
    SECRET_KEY = os.environ.get("SECRET_KEY", DEV_SECRET_KEY)
    SQLALCHEMY_DATABASE_URI = normalize_database_url(
        os.environ.get("DATABASE_URL") or f"sqlite:///{INSTANCE_DIR / 'countersign.db'}"
    )
    REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

    OPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "")
    OPENAI_BASE_URL = os.environ.get("OPENAI_BASE_URL", "")
    AI_PROVIDER = os.environ.get("AI_PROVIDER", "openai" if os.environ.get("OPENAI_API_KEY") else "local")
    AI_ROUTING_FILE = os.environ.get("AI_ROUTING_FILE", str(BASE_DIR / "app" / "ai" / "routing.yaml"))
    OPENAI_TIMEOUT_SECONDS = float(os.environ.get("OPENAI_TIMEOUT_SECONDS", "30"))
    OPENAI_MAX_RETRIES = _int("OPENAI_MAX_RETRIES", 2)
    AI_JOB_TIMEOUT = _int("AI_JOB_TIMEOUT", 180)
    # Seconds between RQ retries of an analysis whose providers failed transiently.
    AI_RETRY_INTERVALS = [int(s) for s in os.environ.get("AI_RETRY_INTERVALS", "30,120,600").split(",") if s]

    # Intake
    MAX_CONTENT_LENGTH = _int("MAX_BODY_BYTES", 1024 * 1024)
    WEBHOOK_TOLERANCE_SECONDS = _int("WEBHOOK_TOLERANCE_SECONDS", 300)
    INTAKE_RATE_LIMIT = os.environ.get("INTAKE_RATE_LIMIT", "120 per minute")
    # Hosts allowed to receive plain-http callbacks (local test receivers only).
    INSECURE_CALLBACK_HOSTS = frozenset(
        h.strip() for h in os.environ.get("INSECURE_CALLBACK_HOSTS", "").split(",") if h.strip()
    )

    # Execution: signed callbacks (and notifications) to the upstream system. A failed delivery is
    # retried after each interval in turn, the last one repeating, each ±10% jitter, until
    # EXECUTION_GIVE_UP_AFTER_SECONDS after the first attempt (app/execution/services.py).
    CALLBACK_TIMEOUT_SECONDS = float(os.environ.get("CALLBACK_TIMEOUT_SECONDS", "10"))
    EXECUTION_RETRY_SCHEDULE = [
        int(s) for s in os.environ.get("EXECUTION_RETRY_SCHEDULE", "60,300,1800,7200,21600,43200").split(",") if s
    ]
    EXECUTION_GIVE_UP_AFTER_SECONDS = _int("EXECUTION_GIVE_UP_AFTER_SECONDS", 3 * 24 * 3600)

    # Sessions
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", ENV == "production")
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE

    # Background work
    STUCK_CASE_SECONDS = _int("STUCK_CASE_SECONDS", 120)
    SWEEP_INTERVAL_SECONDS = _int("SWEEP_INTERVAL_SECONDS", 60)

    # Reviewer workspace
    CLAIM_IDLE_MINUTES = _int("CLAIM_IDLE_MINUTES", 30)  # an idle claim goes back to the inbox after this
    LOGIN_RATE_LIMIT_PER_ACCOUNT = os.environ.get("LOGIN_RATE_LIMIT_PER_ACCOUNT", "5 per minute")
    LOGIN_RATE_LIMIT_PER_IP = os.environ.get("LOGIN_RATE_LIMIT_PER_IP", "20 per minute")
    # payment_release / credit_limit_change amounts at or above these need a second approver.
    DUAL_APPROVAL_THRESHOLDS = _amounts("DUAL_APPROVAL_THRESHOLDS", "EUR=100000,USD=100000,GBP=85000,default=100000")
    REVIEW_REASON_CODES = (
        ("policy_breach", "Policy breach"),
        ("insufficient_evidence", "Insufficient evidence"),
        ("incorrect_ai_parameters", "Incorrect AI parameters"),
        ("sanctions_concern", "Sanctions concern"),
        ("customer_risk", "Customer risk"),
        ("needs_more_information", "Needs more information"),
        ("data_quality", "Data quality"),
        ("other", "Other"),
    )

    # Escalation: the SLA and rules sweeps (app/escalation/jobs.py)
    SLA_SWEEP_INTERVAL_SECONDS = _int("SLA_SWEEP_INTERVAL_SECONDS", 60)
    RULES_SWEEP_INTERVAL_SECONDS = _int("RULES_SWEEP_INTERVAL_SECONDS", 120)
    SWEEP_LOCK_SECONDS = _int("SWEEP_LOCK_SECONDS", 600)  # TTL of a sweep's Redis lock
    # Each sweep looks this far behind the previous sweep's lines, for changes committed late.
    SWEEP_OVERLAP_SECONDS = _int("SWEEP_OVERLAP_SECONDS", 120)

    # Notifications (app/notifications): email when SMTP_HOST is set, a signed webhook when its URL is
    SMTP_HOST = os.environ.get("SMTP_HOST", "")
    SMTP_PORT = _int("SMTP_PORT", 25)
    SMTP_FROM = os.environ.get("SMTP_FROM", "countersign@localhost")
    SMTP_USERNAME = os.environ.get("SMTP_USERNAME", "")
    SMTP_PASSWORD = os.environ.get("SMTP_PASSWORD", "")
    SMTP_STARTTLS = _bool("SMTP_STARTTLS", False)
    NOTIFY_WEBHOOK_URL = os.environ.get("NOTIFY_WEBHOOK_URL", "")
    NOTIFY_WEBHOOK_SECRET = os.environ.get("NOTIFY_WEBHOOK_SECRET", "")  # whsec_… (Standard Webhooks)
    NOTIFY_TIMEOUT_SECONDS = float(os.environ.get("NOTIFY_TIMEOUT_SECONDS", "10"))
    NOTIFY_RETRY_INTERVALS = [int(s) for s in os.environ.get("NOTIFY_RETRY_INTERVALS", "30,120,600").split(",") if s]

    @classmethod
    def check(cls) -> None:
        """Refuse to run in production with settings that are only safe locally."""
        if cls.ENV == "production" and cls.SECRET_KEY == DEV_SECRET_KEY:
            raise RuntimeError("SECRET_KEY must be set in production (COUNTERSIGN_ENV=production).")


class TestConfig(Config):
    TESTING = True
    ENV = "test"
    SECRET_KEY = "test-secret"  # noqa: S105
    REDIS_URL = "redis://127.0.0.1:1/0"  # never a shared Redis: tests/conftest.py sets its own (redis_url)
    WTF_CSRF_ENABLED = True
