"""Configuration from environment variables only, validated once at start-up."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:////tmp/fastapi-app.sqlite3"
# The project's version (pyproject.toml), for APP_VERSION's default and the OpenAPI document:
# `make release-version` writes it, `make release-check` fails when it differs.
PACKAGE_VERSION = "0.1.0"
LogLevel = Literal["debug", "info", "warning", "error", "critical"]
# What readiness may depend on; READINESS_REQUIRES names those whose failure makes the
# pod unready (the others are reported in /health/ready but do not fail it).
READINESS_CHECKS = ("database", "redis")
MIN_ADMIN_TOKEN_LENGTH = 32
# A W3C baggage key is an HTTP token (RFC 9110).
BAGGAGE_KEY = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class SettingsError(Exception):
    """A bad environment variable; the message is one line naming it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    service_name: str = Field("api", min_length=1, max_length=63)
    log_level: LogLevel = "info"
    port: int = Field(8000, ge=1, le=65535)
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    slow_request_ms: int = Field(500, ge=0)
    grace_period_seconds: float = Field(30.0, ge=0, le=3600)
    shutdown_delay_seconds: float = Field(0.0, ge=0, le=3600)
    # SHUTDOWN_CLEANUP_SECONDS: after the drain, one deadline for closing the database,
    # Redis and the downstream client and flushing spans (each also bounded by its own
    # timeout); a step still running then is cut. At least 1: less would cut every close.
    shutdown_cleanup_seconds: float = Field(5.0, ge=1, le=300)
    retry_after_seconds: int | None = Field(None, ge=0)
    shutdown_message: str = "The server is shutting down; retry on another instance."
    admin_token: SecretStr | None = None
    # Admin routes answer only on this second listener, bound to 127.0.0.1 (opened when
    # ADMIN_TOKEN is set): no Service, Ingress or peer reaches it; `kubectl port-forward`
    # or `docker exec` does.
    admin_port: int = Field(8001, ge=1, le=65535)
    # Bearer tokens that identify users: "token=user_id" pairs, comma separated,
    # or a file with one pair per line (for a mounted Secret).
    api_tokens: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    api_tokens_file: Path | None = None
    web_concurrency: int | None = Field(None, ge=1, le=64)
    # READINESS_REQUIRES: comma-separated checks that fail readiness. Redis is a cache
    # with a database fallback: a Redis outage must not take every pod out of rotation,
    # so by default it is reported, not required ("database,redis" requires it).
    readiness_requires: Annotated[frozenset[str], NoDecode] = frozenset({"database"})
    forwarded_allow_ips: str = "127.0.0.1"
    # MAX_REQUEST_BODY_BYTES: larger request bodies are refused with 413 (declared by
    # Content-Length or counted while streamed); see service/server/body_limit.py.
    max_request_body_bytes: int = Field(1_048_576, ge=1, le=2**40)
    # "off": no tracing and no access log (the bare app, for comparison or for users
    # who log and trace elsewhere); errors are still logged.
    observability: Literal["full", "off"] = "full"
    # LEAN_OTLP_EXPORTER=false: export spans through the stock OTLPSpanExporter instead of
    # ours (same wire format, slower encoder), e.g. after upgrading the exporter package.
    lean_otlp_exporter: bool = True
    # OTEL_INSTRUMENT_DEPENDENCIES=false: no child span per SQL statement and Redis command.
    otel_instrument_dependencies: bool = True
    # DOWNSTREAM_URL: the service GET /api/downstream calls (its /api/ping); unset = 404.
    # Refused or not connected within 1 s: 502; connected but no answer within
    # DOWNSTREAM_TIMEOUT_SECONDS, or no pooled connection free within 1 s: 504.
    # No user:password@ (it would be written to logs and spans), query or fragment.
    downstream_url: str | None = None
    downstream_timeout_seconds: float = Field(2.0, gt=0, le=300)
    # DOWNSTREAM_MAX_BODY_BYTES: a larger downstream answer is a 502 (read streamed,
    # never buffered whole).
    downstream_max_body_bytes: int = Field(1_048_576, ge=1, le=2**30)
    # BAGGAGE_ALLOWED_KEYS: the W3C baggage keys (comma separated, exact) that a call to the
    # downstream carries on; a client's other baggage stops here. Default: none.
    baggage_allowed_keys: Annotated[frozenset[str], NoDecode] = frozenset()
    # DEMO_ROUTES=true mounts /api/slow, /api/long-task and /api/error (drills, tests,
    # `make run`); off, they are 404 like any unknown path and absent from /openapi.json.
    demo_routes: bool = False
    # A bad release on demand, for canary drills (service/server/faults.py): FAULT_ERROR_RATIO
    # (0..1) of the /api/* requests answer 500, FAULT_DELAY_MS is added to each /api/* request.
    # Off by default; accepted only with DEMO_ROUTES=true.
    fault_error_ratio: float = Field(0.0, ge=0, le=1)
    fault_delay_ms: int = Field(0, ge=0, le=60_000)
    # MIGRATE_ON_START=true: every worker migrates PostgreSQL at start (serialized by an
    # advisory lock) instead of a migration step before the rollout. The embedded SQLite
    # always migrates itself at start.
    migrate_on_start: bool = False
    # Prometheus metrics: the Gunicorn master serves /metrics on 0.0.0.0:METRICS_PORT, never
    # on PORT (see service/server/metrics_listener.py). METRICS_ENABLED=false: no listener,
    # nothing recorded. OBSERVABILITY=off switches metrics off too.
    metrics_enabled: bool = True
    metrics_port: int = Field(9464, ge=1, le=65535)
    # Which build answers: GET /version, the X-App-Version header, <service>_build_info,
    # the trace resource's service.version, the startup_complete line. Set by the image.
    # Visible ASCII only: the version is also a response header's value.
    app_version: str = Field(PACKAGE_VERSION, max_length=128, pattern=r"^[!-~]+$")
    app_revision: str = Field("unknown", max_length=128, pattern=r"^[!-~]+$")

    @field_validator("log_level", "observability", mode="before")
    @classmethod
    def _lower_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        return async_database_url(value)

    @field_validator(
        "redis_url",
        "downstream_url",
        "admin_token",
        "web_concurrency",
        "retry_after_seconds",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("app_version", "app_revision", mode="before")
    @classmethod
    def _empty_is_default(cls, value: object, info: ValidationInfo) -> object:
        """An empty build argument (a plain `docker build`) keeps the default."""
        if value == "" and info.field_name is not None:
            return cls.model_fields[info.field_name].default
        return value

    @field_validator("admin_token")
    @classmethod
    def _long_admin_token(cls, value: SecretStr | None) -> SecretStr | None:
        """The token that stops every worker: a short one could be guessed."""
        if value is not None and len(value.get_secret_value()) < MIN_ADMIN_TOKEN_LENGTH:
            raise ValueError(
                f"must be at least {MIN_ADMIN_TOKEN_LENGTH} characters "
                "(e.g. the output of `openssl rand -hex 32`)"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("downstream_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        parts = urlsplit(value)
        # The URL is written to log lines and spans (url.full): it must hold no secret. A
        # downstream that needs credentials takes them in a header, not in the URL.
        # (The message never repeats the value.)
        if "@" in parts.netloc:
            raise ValueError("must not contain user:password@ (the URL is logged and traced)")
        if parts.query or parts.fragment or value.endswith(("?", "#")):
            raise ValueError("must not contain a query or fragment (scheme://host[:port][/path])")
        return value

    @field_validator("baggage_allowed_keys", mode="before")
    @classmethod
    def _parse_baggage_keys(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        keys = {key.strip() for key in value.split(",") if key.strip()}
        bad = sorted(key for key in keys if not BAGGAGE_KEY.fullmatch(key))
        if bad:
            raise ValueError(f"not a baggage key (an HTTP token): {', '.join(bad)[:100]}")
        return frozenset(keys)

    @field_validator("readiness_requires", mode="before")
    @classmethod
    def _parse_checks(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        names = {name.strip().lower() for name in value.split(",") if name.strip()}
        unknown = sorted(names.difference(READINESS_CHECKS))
        if unknown:
            raise ValueError(
                f"unknown check {', '.join(unknown)}: use {', '.join(READINESS_CHECKS)}"
            )
        return frozenset(names)

    @field_validator("api_tokens", mode="before")
    @classmethod
    def _parse_tokens(cls, value: object) -> object:
        return parse_token_pairs(value.replace(",", "\n")) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _tokens_from_file(self) -> Settings:
        if self.api_tokens_file is not None:
            try:
                text = self.api_tokens_file.read_text()
            except OSError as exc:
                raise ValueError(f"API_TOKENS_FILE: cannot read ({exc.strerror})") from None
            self.api_tokens = {**self.api_tokens, **parse_token_pairs(text)}
        return self

    @model_validator(mode="after")
    def _required_redis_is_configured(self) -> Settings:
        if "redis" in self.readiness_requires and self.redis_url is None:
            raise ValueError("READINESS_REQUIRES: requires redis, but REDIS_URL is unset")
        return self

    @model_validator(mode="after")
    def _faults_need_demo_routes(self) -> Settings:
        for name, value in (
            ("FAULT_ERROR_RATIO", self.fault_error_ratio),
            ("FAULT_DELAY_MS", self.fault_delay_ms),
        ):
            if value and not self.demo_routes:
                raise ValueError(f"{name}: fault injection needs DEMO_ROUTES=true")
        return self

    @model_validator(mode="after")
    def _distinct_ports(self) -> Settings:
        if self.admin_port == self.port:
            raise ValueError("ADMIN_PORT: must differ from PORT")
        if self.metrics_enabled and self.metrics_port == self.port:
            raise ValueError("METRICS_PORT: must differ from PORT")
        if self.metrics_enabled and self.admin_token and self.metrics_port == self.admin_port:
            raise ValueError("METRICS_PORT: must differ from ADMIN_PORT")
        return self

    @property
    def metrics_on(self) -> bool:
        """Metrics are recorded and served (METRICS_ENABLED, and not OBSERVABILITY=off)."""
        return self.metrics_enabled and self.observability == "full"

    @property
    def faults_on(self) -> bool:
        """FAULT_ERROR_RATIO or FAULT_DELAY_MS is set: the fault middleware is added."""
        return bool(self.fault_error_ratio or self.fault_delay_ms)

    @property
    def effective_retry_after_seconds(self) -> int:
        if self.retry_after_seconds is not None:
            return self.retry_after_seconds
        return max(1, round(self.grace_period_seconds))


def parse_token_pairs(text: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        token, sep, user = line.partition("=")
        if not sep or not token.strip() or not user.strip():
            raise ValueError("expected token=user_id pairs")
        pairs[token.strip()] = user.strip()
    return pairs


def async_database_url(url: str) -> str:
    """Accept the URL forms platforms hand out and pick the async driver for them."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("must look like postgresql://user:pass@host:5432/db or sqlite:///path")
    drivers = {
        "postgres": "postgresql+asyncpg",
        "postgresql": "postgresql+asyncpg",
        "postgresql+asyncpg": "postgresql+asyncpg",
        "sqlite": "sqlite+aiosqlite",
        "sqlite+aiosqlite": "sqlite+aiosqlite",
    }
    if scheme not in drivers:
        raise ValueError(f"unsupported scheme {scheme!r}: use postgresql:// or sqlite://")
    return f"{drivers[scheme]}://{rest}"


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read and validate the environment; SettingsError names the first bad variable."""
    env = dict(os.environ if environ is None else environ)
    try:
        known = {name.upper() for name in Settings.model_fields}
        return Settings.model_validate({k.lower(): v for k, v in env.items() if k.upper() in known})
    except ValidationError as exc:
        error = exc.errors()[0]
        message = error["msg"].removeprefix("Value error, ")
        name = str(error["loc"][0]).upper() if error["loc"] else "configuration"
        if not error["loc"]:  # a check across fields names its variable first: "NAME: ..."
            name, _, message = message.partition(": ")
        raise SettingsError(f"invalid environment variable {name}: {message}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
