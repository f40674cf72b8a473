"""Settings come from the environment with safe defaults; production refuses unsafe ones."""

from __future__ import annotations

import importlib

import pytest

import config
from app import create_app
from config import DEV_SECRET_KEY, Config, normalize_database_url


def test_production_refuses_the_default_secret_key():
    production = type("Prod", (Config,), {"ENV": "production", "SECRET_KEY": DEV_SECRET_KEY})
    with pytest.raises(RuntimeError, match="SECRET_KEY must be set in production"):
        create_app(production)


def test_production_starts_with_a_real_secret_key_and_secure_cookies(tmp_path):
    production = type("Prod", (Config,), {"ENV": "production", "SECRET_KEY": "x" * 48,
                                          "SESSION_COOKIE_SECURE": True,
                                          "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'p.db'}"})
    app = create_app(production)
    assert app.config["SESSION_COOKIE_SECURE"] and app.config["SESSION_COOKIE_HTTPONLY"]
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


@pytest.mark.parametrize(("url", "expected"), [
    ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
    ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
    ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
    ("sqlite:///x.db", "sqlite:///x.db"),
])
def test_database_urls_use_psycopg3(url, expected):
    assert normalize_database_url(url) == expected


def test_defaults_are_local_and_offline(monkeypatch):
    for name in ("DATABASE_URL", "REDIS_URL", "OPENAI_API_KEY", "AI_PROVIDER", "COUNTERSIGN_ENV", "SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    fresh = importlib.reload(config)
    try:
        assert f"sqlite:///{fresh.INSTANCE_DIR / 'countersign.db'}" == fresh.Config.SQLALCHEMY_DATABASE_URI
        assert fresh.Config.AI_PROVIDER == "local"
        assert fresh.Config.SESSION_COOKIE_SECURE is False
        monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
        assert importlib.reload(config).Config.AI_PROVIDER == "openai"
    finally:
        monkeypatch.undo()
        importlib.reload(config)
