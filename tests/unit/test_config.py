from __future__ import annotations

from pathlib import Path

import pytest

from service.config import PACKAGE_VERSION, SettingsError, load_settings
from service.main import create_app


def test_defaults_need_no_servers() -> None:
    settings = load_settings({})
    assert settings.database_url.startswith("sqlite+aiosqlite:///")
    assert settings.redis_url is None
    assert settings.effective_retry_after_seconds == 30


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@db:5432/app", "postgresql+asyncpg://u:p@db:5432/app"),
        ("postgres://u:p@db/app", "postgresql+asyncpg://u:p@db/app"),
        ("postgresql+asyncpg://u@db/app", "postgresql+asyncpg://u@db/app"),
        ("sqlite:///tmp/x.db", "sqlite+aiosqlite:///tmp/x.db"),
    ],
)
def test_database_url_forms(url: str, expected: str) -> None:
    assert load_settings({"DATABASE_URL": url}).database_url == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SLOW_REQUEST_MS", "abc"),
        ("GRACE_PERIOD_SECONDS", "-1"),
        ("LOG_LEVEL", "loud"),
        ("DATABASE_URL", "mysql://x"),
        ("REDIS_URL", "http://x"),
        ("PORT", "70000"),
        ("WEB_CONCURRENCY", "0"),
        ("API_TOKENS", "no-user-here"),
        ("ADMIN_PORT", "8000"),  # the same as PORT
        ("ADMIN_TOKEN", "x" * 31),  # too short to resist guessing
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"^invalid environment variable {name}: "):
        load_settings({name: value})


def test_secret_values_are_not_echoed() -> None:
    with pytest.raises(SettingsError) as error:
        load_settings({"DATABASE_URL": "mysql://user:s3cret@db/app"})
    assert "s3cret" not in str(error.value)


def test_tokens_from_variable_and_file(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("# comment\nfile-token=carol\n")
    settings = load_settings({"API_TOKENS": "t1=alice, t2=bob", "API_TOKENS_FILE": str(tokens)})
    assert settings.api_tokens == {"t1": "alice", "t2": "bob", "file-token": "carol"}


def test_empty_optional_values_mean_unset() -> None:
    settings = load_settings({"REDIS_URL": "", "ADMIN_TOKEN": "", "LOG_LEVEL": "DEBUG"})
    assert settings.redis_url is None and settings.admin_token is None
    assert settings.log_level == "debug"


def test_readiness_requires_the_database_by_default_and_redis_on_request() -> None:
    assert load_settings({}).readiness_requires == {"database"}
    both = load_settings({"READINESS_REQUIRES": " Database , redis", "REDIS_URL": "redis://r"})
    assert both.readiness_requires == {"database", "redis"}
    assert load_settings({"READINESS_REQUIRES": ""}).readiness_requires == frozenset()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"READINESS_REQUIRES": "database,cache"}, "READINESS_REQUIRES: unknown check cache"),
        ({"READINESS_REQUIRES": "database,redis"}, "READINESS_REQUIRES: requires redis, but"),
    ],
)
def test_readiness_requires_fails_closed(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env)


def test_app_version_defaults_to_the_project_version() -> None:
    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert project["project"]["version"] == PACKAGE_VERSION
    settings = load_settings({"APP_VERSION": "", "APP_REVISION": ""})  # a plain docker build
    assert (settings.app_version, settings.app_revision) == (PACKAGE_VERSION, "unknown")
    assert create_app(settings).openapi()["info"]["version"] == PACKAGE_VERSION
    with pytest.raises(SettingsError, match="APP_VERSION"):
        load_settings({"APP_VERSION": "1.0\r\nX-Evil: 1"})


def test_metrics_settings() -> None:
    settings = load_settings({})
    assert settings.metrics_port == 9464 and settings.metrics_on
    assert not load_settings({"METRICS_ENABLED": "false"}).metrics_on
    assert not load_settings({"OBSERVABILITY": "off"}).metrics_on
    with pytest.raises(SettingsError, match="METRICS_PORT: must differ from PORT"):
        load_settings({"PORT": "9000", "METRICS_PORT": "9000"})
    with pytest.raises(SettingsError, match="METRICS_PORT: must differ from ADMIN_PORT"):
        load_settings({"ADMIN_TOKEN": "t" * 32, "METRICS_PORT": "8001"})
    assert load_settings({"METRICS_ENABLED": "false", "METRICS_PORT": "8000"}).port == 8000


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://dsuser:dsPW-s3cr3t@backend:8000", "must not contain user:password@"),
        ("http://dsPW-s3cr3t@backend:8000", "must not contain user:password@"),
        ("https://backend/?token=dsPW-s3cr3t", "must not contain a query or fragment"),
        ("https://backend/#dsPW-s3cr3t", "must not contain a query or fragment"),
    ],
)
def test_downstream_url_holds_no_secret(url: str, message: str) -> None:
    """It is written to log lines and spans: credentials are refused, never echoed."""
    with pytest.raises(SettingsError) as error:
        load_settings({"DOWNSTREAM_URL": url})
    assert str(error.value).startswith(f"invalid environment variable DOWNSTREAM_URL: {message}")
    assert "s3cr3t" not in str(error.value)


def test_downstream_limits_and_baggage_keys() -> None:
    defaults = load_settings({})
    assert defaults.downstream_max_body_bytes == 1_048_576
    assert defaults.baggage_allowed_keys == frozenset()
    settings = load_settings(
        {
            "DOWNSTREAM_URL": "http://backend:8000/base",
            "DOWNSTREAM_MAX_BODY_BYTES": "4096",
            "BAGGAGE_ALLOWED_KEYS": " tenant, session.id ,",
        }
    )
    assert settings.downstream_url == "http://backend:8000/base"
    assert settings.downstream_max_body_bytes == 4096
    assert settings.baggage_allowed_keys == {"tenant", "session.id"}
    for name, value in (
        ("BAGGAGE_ALLOWED_KEYS", "tenant,user id"),
        ("BAGGAGE_ALLOWED_KEYS", "a=b"),
        ("DOWNSTREAM_MAX_BODY_BYTES", "0"),
    ):
        with pytest.raises(SettingsError, match=f"^invalid environment variable {name}: "):
            load_settings({name: value})


def test_shutdown_cleanup_seconds_is_one_deadline_of_1_to_300_s() -> None:
    assert load_settings({}).shutdown_cleanup_seconds == 5.0  # what the chart's C defaults to
    assert load_settings({"SHUTDOWN_CLEANUP_SECONDS": "12.5"}).shutdown_cleanup_seconds == 12.5
    # Below 1 s every close would be cut; above 300 s is no shutdown budget but a typo.
    for bad in ("0", "0.5", "-1", "301", "soon"):
        with pytest.raises(
            SettingsError, match=r"^invalid environment variable SHUTDOWN_CLEANUP_SECONDS: "
        ):
            load_settings({"SHUTDOWN_CLEANUP_SECONDS": bad})
