"""Settings come from the environment with safe defaults; bad values stop start-up with a message
naming the variable; production refuses unsafe ones."""

from __future__ import annotations

import importlib
from decimal import Decimal
from ipaddress import IPv4Network, IPv6Network

import pytest

import config
from app import create_app
from config import DEV_SECRET_KEY, Config, Settings, SettingsError, load_settings, normalize_database_url


@pytest.fixture
def environ(monkeypatch):
    """An environment without any Countersign variable; ``environ(NAME=value, …)`` sets some."""
    for name, field in Settings.model_fields.items():
        monkeypatch.delenv(field.validation_alias or name, raising=False)

    def set_variables(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return set_variables


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


def test_every_default(environ):
    assert load_settings().model_dump() == {
        "ENV": "development",
        "SECRET_KEY": "dev-only-not-secret",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{config.BASE_DIR}/instance/countersign.db",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "OPENAI_API_KEY": "",
        "OPENAI_BASE_URL": "",
        "AI_PROVIDER": "local",
        "AI_ROUTING_FILE": f"{config.BASE_DIR}/app/ai/routing.yaml",
        "OPENAI_TIMEOUT_SECONDS": 30.0,
        "OPENAI_MAX_RETRIES": 2,
        "AI_JOB_TIMEOUT": 180,
        "AI_RETRY_INTERVALS": [30, 120, 600],
        "AI_CONTRADICTION_CONFIDENCE_CAP": 0.5,
        "MAX_CONTENT_LENGTH": 1_048_576,
        "WEBHOOK_TOLERANCE_SECONDS": 300,
        "INTAKE_RATE_LIMIT": "120 per minute",
        "INSECURE_CALLBACK_HOSTS": frozenset(),
        "CALLBACK_TIMEOUT_SECONDS": 10.0,
        "CALLBACK_PORTS": frozenset({443}),
        "EXECUTION_RETRY_SCHEDULE": [60, 300, 1800, 7200, 21600, 43200],
        "EXECUTION_GIVE_UP_AFTER_SECONDS": 259_200,
        "SESSION_COOKIE_SECURE": False,
        "STUCK_CASE_SECONDS": 120,
        "SWEEP_INTERVAL_SECONDS": 60,
        "CLAIM_IDLE_MINUTES": 30,
        "SESSION_IDLE_MINUTES": 30,
        "SESSION_MAX_HOURS": 12,
        "LOGIN_RATE_LIMIT_PER_ACCOUNT": "5 per minute",
        "LOGIN_RATE_LIMIT_PER_IP": "20 per minute",
        "DUAL_APPROVAL_THRESHOLDS": {"EUR": Decimal(100000), "USD": Decimal(100000), "GBP": Decimal(85000),
                                     "default": Decimal(100000)},
        "SLA_SWEEP_INTERVAL_SECONDS": 60,
        "RULES_SWEEP_INTERVAL_SECONDS": 120,
        "SWEEP_LOCK_SECONDS": 30,
        "SWEEP_OVERLAP_SECONDS": 120,
        "AUDIT_SIGNING_KEY": "",
        "AUDIT_SIGNING_KEY_FILE": "",
        "AUDIT_CHECKPOINT_DIR": f"{config.BASE_DIR}/instance/audit-checkpoints",
        "AUDIT_SEAL_SECONDS": 2,
        "AUDIT_CHECKPOINT_SECONDS": 60,
        "CALIBRATION_MIN_DECISIONS": 30,
        "CALIBRATION_REFRESH_SECONDS": 3600,
        "REVIEW_CONFIRM_AMOUNT": Decimal("10000"),
        "REVIEW_CONFIRM_CONFIDENCE": 0.7,
        "REVIEW_UNDO_SECONDS": 10,
        "SMTP_HOST": "",
        "SMTP_PORT": 25,
        "SMTP_FROM": "countersign@localhost",
        "SMTP_USERNAME": "",
        "SMTP_PASSWORD": "",
        "SMTP_STARTTLS": False,
        "NOTIFY_WEBHOOK_URL": "",
        "NOTIFY_WEBHOOK_SECRET": "",
        "NOTIFY_TIMEOUT_SECONDS": 10.0,
        "NOTIFY_RETRY_INTERVALS": [30, 120, 600],
        "METRICS_TOKEN": "",
        "METRICS_ALLOW_NETWORKS": frozenset({IPv4Network("127.0.0.0/8"), IPv6Network("::1/128")}),
        "FORWARDED_ALLOW_IPS": frozenset({IPv4Network("127.0.0.1/32"), IPv6Network("::1/128")}),
    }


def test_values_are_parsed_from_their_written_form(environ):
    environ(
        COUNTERSIGN_ENV="production", SECRET_KEY="k" * 40, DATABASE_URL="postgres://app@db/countersign",
        OPENAI_API_KEY="sk-x", OPENAI_TIMEOUT_SECONDS="2.5", OPENAI_MAX_RETRIES="0", AI_JOB_TIMEOUT="90",
        AI_RETRY_INTERVALS="5, 10,20", MAX_BODY_BYTES="2048", WEBHOOK_TOLERANCE_SECONDS="60",
        INSECURE_CALLBACK_HOSTS="127.0.0.1, localhost,", EXECUTION_RETRY_SCHEDULE="1,2",
        DUAL_APPROVAL_THRESHOLDS="EUR=250000, GBP = 200000.50", SMTP_PORT="2525", SMTP_STARTTLS="yes",
        NOTIFY_RETRY_INTERVALS="0",
    )
    settings = load_settings()
    assert settings.ENV == "production"
    assert settings.SQLALCHEMY_DATABASE_URI == "postgresql+psycopg://app@db/countersign"
    assert settings.AI_PROVIDER == "openai"  # the default once an API key is set
    assert (settings.OPENAI_TIMEOUT_SECONDS, settings.OPENAI_MAX_RETRIES, settings.AI_JOB_TIMEOUT) == (2.5, 0, 90)
    assert settings.AI_RETRY_INTERVALS == [5, 10, 20]
    assert (settings.MAX_CONTENT_LENGTH, settings.WEBHOOK_TOLERANCE_SECONDS) == (2048, 60)
    hosts, thresholds = settings.INSECURE_CALLBACK_HOSTS, settings.DUAL_APPROVAL_THRESHOLDS
    assert hosts == frozenset({"127.0.0.1", "localhost"}) and isinstance(hosts, frozenset)
    assert settings.EXECUTION_RETRY_SCHEDULE == [1, 2]
    assert thresholds == {"EUR": Decimal("250000"), "GBP": Decimal("200000.50")}
    assert (settings.SMTP_PORT, settings.SMTP_STARTTLS) == (2525, True)
    assert settings.NOTIFY_RETRY_INTERVALS == [0]
    assert settings.SESSION_COOKIE_SECURE is True  # the default in production


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("true", True), ("on", True), ("0", False),
                                               ("no", False), ("off", False)])
def test_switches(environ, raw, expected):
    environ(SESSION_COOKIE_SECURE=raw, SMTP_STARTTLS=raw)
    settings = load_settings()
    assert settings.SESSION_COOKIE_SECURE is expected and settings.SMTP_STARTTLS is expected


def test_an_empty_value_means_the_default_for_numbers_and_none_for_lists(environ):
    environ(AI_JOB_TIMEOUT="", DATABASE_URL="", AI_RETRY_INTERVALS="", INSECURE_CALLBACK_HOSTS="",
            DUAL_APPROVAL_THRESHOLDS="")
    settings = load_settings()
    assert settings.AI_JOB_TIMEOUT == 180
    assert settings.SQLALCHEMY_DATABASE_URI.endswith("/instance/countersign.db")
    empty = (settings.AI_RETRY_INTERVALS, settings.INSECURE_CALLBACK_HOSTS, settings.DUAL_APPROVAL_THRESHOLDS)
    assert empty == ([], frozenset(), {})


@pytest.mark.parametrize(("variables", "message"), [
    ({"AI_JOB_TIMEOUT": "soon"}, "AI_JOB_TIMEOUT: Input should be a valid integer, unable to parse string as an "
                                 "integer (got 'soon')"),
    ({"MAX_BODY_BYTES": "0"}, "MAX_BODY_BYTES: Input should be greater than 0 (got '0')"),
    ({"AI_RETRY_INTERVALS": "30,later"}, "AI_RETRY_INTERVALS [1]: Input should be a valid integer"),
    ({"DUAL_APPROVAL_THRESHOLDS": "EUR=lots"}, "DUAL_APPROVAL_THRESHOLDS: 'lots' is not an amount"),
    ({"DUAL_APPROVAL_THRESHOLDS": "EUR"}, "DUAL_APPROVAL_THRESHOLDS: expected CURRENCY=amount pairs"),
    ({"SMTP_STARTTLS": "maybe"}, "SMTP_STARTTLS: Input should be a valid boolean"),
    ({"SMTP_PORT": "70000"}, "SMTP_PORT: Input should be less than or equal to 65535"),
    ({"WEBHOOK_TOLERANCE_SECONDS": "301"}, "WEBHOOK_TOLERANCE_SECONDS: Input should be less than or equal to 300"),
    ({"WEBHOOK_TOLERANCE_SECONDS": "0"}, "WEBHOOK_TOLERANCE_SECONDS: Input should be greater than or equal to 1"),
    ({"METRICS_ALLOW_NETWORKS": "10.0.0.0/8,intranet"},
     "METRICS_ALLOW_NETWORKS [1]: value is not a valid IPv4 or IPv6 network (got 'intranet')"),
    ({"METRICS_ALLOW_NETWORKS": "10.0.0.1/8"}, "METRICS_ALLOW_NETWORKS [0]: value is not a valid IPv4 or IPv6 network"),
    ({"FORWARDED_ALLOW_IPS": "10.0.1.0/24,balancer"},
     "FORWARDED_ALLOW_IPS [1]: value is not a valid IPv4 or IPv6 network (got 'balancer')"),
])
def test_a_bad_value_is_refused_naming_the_variable(environ, variables, message):
    environ(**variables)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert message in str(refused.value)


def test_metrics_are_open_to_loopback_without_a_token_except_in_production(environ):
    def allowed() -> frozenset:
        return load_settings().METRICS_ALLOW_NETWORKS

    environ(COUNTERSIGN_ENV="production", SECRET_KEY="s" * 40)
    assert allowed() == frozenset()
    environ(METRICS_ALLOW_NETWORKS="10.20.0.0/16, 192.0.2.7,fd00::/8", METRICS_TOKEN="t0ken")
    assert allowed() == {IPv4Network("10.20.0.0/16"), IPv4Network("192.0.2.7/32"), IPv6Network("fd00::/8")}
    assert load_settings().METRICS_TOKEN == "t0ken"
    environ(COUNTERSIGN_ENV="development", METRICS_ALLOW_NETWORKS="")
    assert allowed() == frozenset()  # empty: none, even outside production


@pytest.mark.parametrize(("raw", "networks"), [
    ("10.0.1.0/24, 192.0.2.7", {IPv4Network("10.0.1.0/24"), IPv4Network("192.0.2.7/32")}),
    ("*", {IPv4Network("0.0.0.0/0"), IPv6Network("::/0")}),  # gunicorn's "every peer"
    ("", set()),
])
def test_the_trusted_proxies_are_networks_or_every_peer(environ, raw, networks):
    environ(FORWARDED_ALLOW_IPS=raw)
    trusted = load_settings().FORWARDED_ALLOW_IPS
    assert trusted == networks


def test_every_bad_value_is_listed_at_once(environ):
    environ(AI_JOB_TIMEOUT="x", SWEEP_LOCK_SECONDS="y")
    with pytest.raises(SettingsError, match=r"(?s)AI_JOB_TIMEOUT: .*SWEEP_LOCK_SECONDS: "):
        load_settings()


@pytest.mark.parametrize("seconds", [0, 301, 3600])
def test_a_webhook_tolerance_beyond_five_minutes_is_refused_in_a_config_class_too(seconds):
    loose = type("Loose", (Config,), {"WEBHOOK_TOLERANCE_SECONDS": seconds})
    expected = rf"WEBHOOK_TOLERANCE_SECONDS must be between 1 and 300 seconds \(got {seconds}\)"
    with pytest.raises(RuntimeError, match=expected):
        create_app(loose)


def test_config_holds_the_settings_read_at_import(environ, monkeypatch):
    environ(OPENAI_API_KEY="sk-x", AI_RETRY_INTERVALS="", COUNTERSIGN_ENV="production", SECRET_KEY="s" * 40)
    try:
        fresh = importlib.reload(config).Config
        assert (fresh.AI_PROVIDER, fresh.AI_RETRY_INTERVALS, fresh.ENV) == ("openai", [], "production")
        assert fresh.SESSION_COOKIE_SECURE is True and fresh.REMEMBER_COOKIE_SECURE is True
        assert fresh.SESSION_COOKIE_HTTPONLY is True
    finally:
        monkeypatch.undo()
        importlib.reload(config)
