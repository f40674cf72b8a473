"""Every setting comes from the environment, with a safe default for local use.

``Settings`` reads and validates the environment (one field per variable; a bad value fails
at start-up with a message naming the variable). ``Config`` is what Flask loads
(``app.config.from_object(Config)``): the settings as class attributes, plus the fixed ones.
Subclass it to override attributes (``TestConfig``, the tests' and benchmarks' configs).

An empty value means the default for numbers, switches, ``DATABASE_URL`` and ``AI_PROVIDER``;
for lists, maps and host sets it means "none" (``AI_RETRY_INTERVALS=`` turns retries off).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from ipaddress import ip_network
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, IPvAnyNetwork, ValidationError, field_validator, model_validator
from pydantic_core import PydanticUseDefault
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = BASE_DIR / "instance"
DEV_SECRET_KEY = "dev-only-not-secret"  # noqa: S105 (refused in production)
# Where /metrics may be scraped from without a token outside production (make demo, development).
LOOPBACK_NETWORKS = frozenset({ip_network("127.0.0.0/8"), ip_network("::1/128")})
# The standardwebhooks reference library verifies with a fixed 5-minute tolerance: we may only tighten it.
WEBHOOK_TOLERANCE_RANGE = (1, 300)


def normalize_database_url(url: str) -> str:
    """Heroku-style postgres:// and bare postgresql:// both mean psycopg 3 here."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


# --- how values are written in the environment -----------------------------------------------------


def _empty_is_default(raw: Any) -> Any:
    if isinstance(raw, str) and not raw.strip():
        raise PydanticUseDefault
    return raw


def _comma_list(raw: Any) -> Any:
    """``"60,300,1800"`` → ``["60", "300", "1800"]`` (then validated item by item); empty → none."""
    if isinstance(raw, str):
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def _amounts(raw: Any) -> Any:
    """``"EUR=100000,GBP=85000"`` → ``{"EUR": "100000", "GBP": "85000"}`` (then validated as Decimal)."""
    if not isinstance(raw, str):
        return raw
    amounts = {}
    for item in _comma_list(raw):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected CURRENCY=amount pairs separated by commas, not {item!r}")
        try:
            amounts[key.strip()] = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{value.strip()!r} is not an amount") from None
    return amounts


EmptyIsDefault = BeforeValidator(_empty_is_default)
PositiveInt = Annotated[int, EmptyIsDefault, Field(gt=0)]
NonNegativeInt = Annotated[int, EmptyIsDefault, Field(ge=0)]
PositiveFloat = Annotated[float, EmptyIsDefault, Field(gt=0)]
Switch = Annotated[bool, EmptyIsDefault]
Seconds = Annotated[list[Annotated[int, Field(ge=0)]], NoDecode, BeforeValidator(_comma_list)]
Hosts = Annotated[frozenset[str], NoDecode, BeforeValidator(_comma_list)]
Ports = Annotated[frozenset[Annotated[int, Field(gt=0, le=65535)]], NoDecode, BeforeValidator(_comma_list)]
Amounts = Annotated[dict[str, Decimal], NoDecode, BeforeValidator(_amounts)]
Networks = Annotated[frozenset[IPvAnyNetwork], NoDecode, BeforeValidator(_comma_list)]


def _every_peer_or_comma_list(raw: Any) -> Any:
    """``*`` (gunicorn's "every peer") is every network; otherwise a comma list."""
    return ["0.0.0.0/0", "::/0"] if isinstance(raw, str) and raw.strip() == "*" else _comma_list(raw)


Proxies = Annotated[frozenset[IPvAnyNetwork], NoDecode, BeforeValidator(_every_peer_or_comma_list)]


class Settings(BaseSettings):
    """The environment, parsed: the field names are Flask's config keys, the variables those names
    unless ``validation_alias`` says otherwise (``ENV`` ← ``COUNTERSIGN_ENV``)."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore")

    ENV: str = Field("development", validation_alias="COUNTERSIGN_ENV")
    SECRET_KEY: str = DEV_SECRET_KEY
    SQLALCHEMY_DATABASE_URI: Annotated[str, EmptyIsDefault] = Field(
        f"sqlite:///{INSTANCE_DIR / 'countersign.db'}", validation_alias="DATABASE_URL")
    REDIS_URL: str = "redis://127.0.0.1:6379/0"

    # AI runtime (app/ai)
    OPENAI_API_KEY: str = ""
    OPENAI_BASE_URL: str = ""
    AI_PROVIDER: Annotated[str | None, EmptyIsDefault] = None  # "openai" when OPENAI_API_KEY is set, else "local"
    AI_ROUTING_FILE: str = str(BASE_DIR / "app" / "ai" / "routing.yaml")
    OPENAI_TIMEOUT_SECONDS: PositiveFloat = 30.0
    OPENAI_MAX_RETRIES: NonNegativeInt = 2
    AI_JOB_TIMEOUT: PositiveInt = 180
    # Seconds between RQ retries of an analysis whose providers failed transiently.
    AI_RETRY_INTERVALS: Seconds = [30, 120, 600]
    # The highest confidence an answer may claim when it contradicts a hard flag of the pre-screen or the
    # case text tries to instruct the model (app/ai/runtime.py).
    AI_CONTRADICTION_CONFIDENCE_CAP: Annotated[float, EmptyIsDefault, Field(ge=0, le=1, allow_inf_nan=False)] = 0.5

    # Intake
    MAX_CONTENT_LENGTH: PositiveInt = Field(1024 * 1024, validation_alias="MAX_BODY_BYTES")
    # Allowed clock skew of webhook-timestamp, at most the reference library's 5 minutes.
    WEBHOOK_TOLERANCE_SECONDS: Annotated[
        int, EmptyIsDefault, Field(ge=WEBHOOK_TOLERANCE_RANGE[0], le=WEBHOOK_TOLERANCE_RANGE[1])] = 300
    INTAKE_RATE_LIMIT: str = "120 per minute"
    # Hosts allowed to receive plain-http callbacks (local test receivers only).
    INSECURE_CALLBACK_HOSTS: Hosts = frozenset()

    # Execution: signed callbacks (and notifications) to the upstream system. A failed delivery is
    # retried after each interval in turn, the last one repeating, each ±10% jitter, until
    # EXECUTION_GIVE_UP_AFTER_SECONDS after the first attempt (app/execution/services.py).
    CALLBACK_TIMEOUT_SECONDS: PositiveFloat = 10.0
    # Ports callbacks may go to (hosts in INSECURE_CALLBACK_HOSTS: any port).
    CALLBACK_PORTS: Ports = frozenset({443})
    EXECUTION_RETRY_SCHEDULE: Seconds = [60, 300, 1800, 7200, 21600, 43200]
    EXECUTION_GIVE_UP_AFTER_SECONDS: PositiveInt = 3 * 24 * 3600

    # Sessions: secure cookies by default in production
    SESSION_COOKIE_SECURE: Annotated[bool | None, EmptyIsDefault] = None

    # Background work
    STUCK_CASE_SECONDS: NonNegativeInt = 120
    SWEEP_INTERVAL_SECONDS: PositiveInt = 60

    # Reviewer workspace
    CLAIM_IDLE_MINUTES: PositiveInt = 30  # an idle claim goes back to the inbox after this
    SESSION_IDLE_MINUTES: PositiveInt = 30  # a browser session unused this long is over
    SESSION_MAX_HOURS: PositiveInt = 12  # and any session this long after sign-in
    LOGIN_RATE_LIMIT_PER_ACCOUNT: str = "5 per minute"
    LOGIN_RATE_LIMIT_PER_IP: str = "20 per minute"
    # payment_release / credit_limit_change amounts at or above these need a second approver.
    DUAL_APPROVAL_THRESHOLDS: Amounts = {
        "EUR": Decimal(100000), "USD": Decimal(100000), "GBP": Decimal(85000), "default": Decimal(100000)}
    # Safe speed in the reviewer UI (app/review): approving a case with an amount at or above
    # REVIEW_CONFIRM_AMOUNT, a confidence below REVIEW_CONFIRM_CONFIDENCE, or hard flags takes a
    # confirmation step; every approval can be undone for REVIEW_UNDO_SECONDS (0: no undo window)
    # before its execution starts.
    REVIEW_CONFIRM_AMOUNT: Annotated[Decimal, Field(ge=0)] = Decimal(10000)
    REVIEW_CONFIRM_CONFIDENCE: Annotated[float, EmptyIsDefault, Field(ge=0, le=1, allow_inf_nan=False)] = 0.7
    REVIEW_UNDO_SECONDS: NonNegativeInt = 10

    # Escalation: the SLA and rules sweeps (app/escalation/jobs.py)
    SLA_SWEEP_INTERVAL_SECONDS: PositiveInt = 60
    RULES_SWEEP_INTERVAL_SECONDS: PositiveInt = 120
    # TTL of a sweep's Redis lock, renewed while the sweep runs: how long a sweep killed mid-run
    # (its worker SIGKILLed, its machine lost) keeps the next runs waiting.
    SWEEP_LOCK_SECONDS: PositiveInt = 30
    # Each sweep looks this far behind the previous sweep's lines, for changes committed late.
    SWEEP_OVERLAP_SECONDS: NonNegativeInt = 120

    # Oversight (app/oversight): the confidence calibration is refitted every CALIBRATION_REFRESH_SECONDS
    # and used once it rests on at least CALIBRATION_MIN_DECISIONS decided cases.
    CALIBRATION_MIN_DECISIONS: PositiveInt = 30
    CALIBRATION_REFRESH_SECONDS: PositiveInt = 3600

    # Audit log (app/audit): the sealer puts new events in order every AUDIT_SEAL_SECONDS; a signed
    # checkpoint is made every AUDIT_CHECKPOINT_SECONDS and also written to AUDIT_CHECKPOINT_DIR
    # (empty: none outside the database). The Ed25519 key (PEM, or base64 of its 32 bytes) comes
    # from AUDIT_SIGNING_KEY or the file AUDIT_SIGNING_KEY_FILE, never from the database.
    AUDIT_SIGNING_KEY: str = ""
    AUDIT_SIGNING_KEY_FILE: str = ""
    AUDIT_CHECKPOINT_DIR: str = str(INSTANCE_DIR / "audit-checkpoints")
    AUDIT_SEAL_SECONDS: PositiveInt = 2
    AUDIT_CHECKPOINT_SECONDS: PositiveInt = 60

    # Notifications (app/notifications): email when SMTP_HOST is set, a signed webhook when its URL is
    SMTP_HOST: str = ""
    SMTP_PORT: Annotated[int, EmptyIsDefault, Field(ge=1, le=65535)] = 25
    SMTP_FROM: str = "countersign@localhost"
    SMTP_USERNAME: str = ""
    SMTP_PASSWORD: str = ""
    SMTP_STARTTLS: Switch = False
    NOTIFY_WEBHOOK_URL: str = ""
    NOTIFY_WEBHOOK_SECRET: str = ""  # whsec_… (Standard Webhooks)
    NOTIFY_TIMEOUT_SECONDS: PositiveFloat = 10.0
    NOTIFY_RETRY_INTERVALS: Seconds = [30, 120, 600]

    # Metrics (/metrics, app/ops.py): a scraper presents METRICS_TOKEN as a bearer token, or scrapes from
    # one of METRICS_ALLOW_NETWORKS (CIDRs of the client's address: behind a trusted proxy, the one it forwarded).
    METRICS_TOKEN: str = ""
    METRICS_ALLOW_NETWORKS: Networks | None = None  # loopback, except in production: none

    # The proxies whose X-Forwarded-For names the client (app/forwarded.py); gunicorn reads the same
    # variable for X-Forwarded-Proto. Its default, a proxy on the same host.
    FORWARDED_ALLOW_IPS: Proxies = frozenset({ip_network("127.0.0.1/32"), ip_network("::1/128")})

    @field_validator("SQLALCHEMY_DATABASE_URI")
    @classmethod
    def _psycopg3(cls, url: str) -> str:
        return normalize_database_url(url)

    @model_validator(mode="after")
    def _derived_defaults(self) -> Settings:
        if self.AI_PROVIDER is None:
            self.AI_PROVIDER = "openai" if self.OPENAI_API_KEY else "local"
        if self.SESSION_COOKIE_SECURE is None:
            self.SESSION_COOKIE_SECURE = self.ENV == "production"
        if self.METRICS_ALLOW_NETWORKS is None:
            self.METRICS_ALLOW_NETWORKS = frozenset() if self.ENV == "production" else LOOPBACK_NETWORKS
        return self


class SettingsError(ValueError):
    """The environment holds an invalid setting; the message names each variable and says why."""


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            variable = str(error["loc"][0]) if error["loc"] else "?"
            detail = ".".join(str(part) for part in error["loc"][1:])
            got = f" (got {error['input']!r})" if isinstance(error.get("input"), str) else ""
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"  {variable}{f' [{detail}]' if detail else ''}: {message}{got}")
        raise SettingsError("invalid setting(s) in the environment:\n" + "\n".join(problems)) from None


class Config:
    """Flask's settings: every ``Settings`` field (set below, from the environment) and these."""

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"

    @classmethod
    def check(cls) -> None:
        """Refuse to run with settings that are only safe locally, or out of range."""
        if cls.ENV == "production" and cls.SECRET_KEY == DEV_SECRET_KEY:
            raise RuntimeError("SECRET_KEY must be set in production (COUNTERSIGN_ENV=production).")
        low, high = WEBHOOK_TOLERANCE_RANGE
        if not low <= cls.WEBHOOK_TOLERANCE_SECONDS <= high:
            raise RuntimeError(f"WEBHOOK_TOLERANCE_SECONDS must be between {low} and {high} seconds "
                               f"(got {cls.WEBHOOK_TOLERANCE_SECONDS}).")


for _name, _value in load_settings():
    setattr(Config, _name, _value)
del _name, _value
Config.REMEMBER_COOKIE_SECURE = Config.SESSION_COOKIE_SECURE


class TestConfig(Config):
    TESTING = True
    ENV = "test"
    SECRET_KEY = "test-secret"  # noqa: S105
    REDIS_URL = "redis://127.0.0.1:1/0"  # never a shared Redis: tests/conftest.py sets its own (redis_url)
    WTF_CSRF_ENABLED = True
    METRICS_TOKEN = ""
    METRICS_ALLOW_NETWORKS = LOOPBACK_NETWORKS  # the test client's 127.0.0.1
    AUDIT_SIGNING_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    # Approvals execute at once and need no confirmation step unless hard flags ask for one; the
    # safe-speed tests set these themselves.
    REVIEW_UNDO_SECONDS = 0
    REVIEW_CONFIRM_AMOUNT = Decimal(10) ** 12
    REVIEW_CONFIRM_CONFIDENCE = 0.0
