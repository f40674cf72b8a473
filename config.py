"""Every setting comes from the environment, with a safe default for local use."""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = BASE_DIR / "instance"
DEV_SECRET_KEY = "dev-only-not-secret"


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    return default if raw is None else raw.strip().lower() in {"1", "true", "yes", "on"}


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

    # Intake
    MAX_CONTENT_LENGTH = _int("MAX_BODY_BYTES", 1024 * 1024)
    WEBHOOK_TOLERANCE_SECONDS = _int("WEBHOOK_TOLERANCE_SECONDS", 300)
    INTAKE_RATE_LIMIT = os.environ.get("INTAKE_RATE_LIMIT", "120 per minute")
    # Hosts allowed to receive plain-http callbacks (local test receivers only).
    INSECURE_CALLBACK_HOSTS = frozenset(
        h.strip() for h in os.environ.get("INSECURE_CALLBACK_HOSTS", "").split(",") if h.strip()
    )

    # Sessions
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", ENV == "production")
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE

    # Background work
    STUCK_CASE_SECONDS = _int("STUCK_CASE_SECONDS", 120)
    SWEEP_INTERVAL_SECONDS = _int("SWEEP_INTERVAL_SECONDS", 60)

    @classmethod
    def check(cls) -> None:
        """Refuse to run in production with settings that are only safe locally."""
        if cls.ENV == "production" and cls.SECRET_KEY == DEV_SECRET_KEY:
            raise RuntimeError("SECRET_KEY must be set in production (COUNTERSIGN_ENV=production).")


class TestConfig(Config):
    TESTING = True
    ENV = "test"
    SECRET_KEY = "test-secret"
    REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    WTF_CSRF_ENABLED = True
