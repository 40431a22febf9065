"""Readiness checks record their duration and failures (timeout or error); a failure
answers a short code and logs its text, once per change."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
from prometheus_client import generate_latest

from service.api import health
from service.data.cache import Cache
from service.data.schema import SchemaBehind
from service.telemetry.metrics import AppMetrics, BuildInfo
from tools.testbed.support import free_port


def test_check_metrics() -> None:
    async def ok() -> float:
        return 1.0

    async def broken() -> float:
        raise OSError("refused")

    async def hung() -> float:
        await asyncio.sleep(60)
        return 0.0

    async def scenario() -> None:
        health.CHECK_TIMEOUT_SECONDS = 0.05
        metrics = AppMetrics(BuildInfo("api", "1", "x"))
        assert (await health.run_check(ok, "database", metrics))["healthy"]
        assert not (await health.run_check(broken, "database", metrics))["healthy"]
        assert not (await health.run_check(hung, "redis", metrics))["healthy"]
        text = generate_latest(metrics.registry).decode()
        assert 'readiness_check_duration_seconds_count{check="database"} 2.0' in text
        assert 'readiness_check_failures_total{check="database",reason="error"} 1.0' in text
        assert 'readiness_check_failures_total{check="redis",reason="timeout"} 1.0' in text

    saved = health.CHECK_TIMEOUT_SECONDS
    try:
        asyncio.run(scenario())
    finally:
        health.CHECK_TIMEOUT_SECONDS = saved


def test_failure_codes_name_the_kind_never_the_text() -> None:
    """Real failures: Redis refused (redis-py wraps the OSError), a hung check, the schema
    behind, anything else; and what an unresolvable name raises."""

    async def hung() -> float:
        await asyncio.sleep(60)
        return 0.0

    async def unknown_error() -> float:
        raise ValueError("password=hunter2 at db.internal:5432")

    async def behind() -> float:
        raise SchemaBehind("public", ())

    async def scenario() -> None:
        port = free_port()
        cache = Cache(f"redis://127.0.0.1:{port}/0", AppMetrics(BuildInfo("api", "1", "x")))
        refused, why = await health._run_check(cache.ping)
        assert refused == {"healthy": False, "error": "connection_refused"}
        assert str(port) in why  # the detail is for the log line only
        await cache.close()
        health.CHECK_TIMEOUT_SECONDS = 0.05
        assert (await health._run_check(hung))[0] == {"healthy": False, "error": "timeout"}
        assert (await health._run_check(unknown_error))[0] == {"healthy": False, "error": "error"}
        schema, why = await health._run_check(behind)
        assert schema["error"] == "schema_behind" and schema["revision"] == "none"
        assert "run the migrations" in why

    saved = health.CHECK_TIMEOUT_SECONDS
    try:
        asyncio.run(scenario())
    finally:
        health.CHECK_TIMEOUT_SECONDS = saved
    # What a name that does not resolve raises (not looked up: no DNS in tests).
    not_found = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert health.failure_code(not_found) == "unreachable"


def test_a_failing_check_is_logged_on_change_not_per_probe(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures = health.FailureLog()

    def logged() -> list[tuple[str, dict[str, object]]]:
        return [(r.getMessage(), getattr(r, "fields", {})) for r in caplog.records]

    with caplog.at_level(logging.INFO, logger="service.health"):
        for _ in range(5):  # five probes, one line
            failures.record("redis", "connection_refused", "Error 111 connecting to x:2")
        failures.record("redis", "timeout", "timed out after 0.8s")  # another code: a line
        failures.record("redis", None, "")
        failures.record("redis", None, "")  # recovered once
        monkeypatch.setattr(health, "LOG_REPEAT_SECONDS", 0.0)
        failures.record("database", "unreachable", "a")
        failures.record("database", "unreachable", "a")  # repeated after the interval
    assert logged() == [
        (
            "readiness_check_failed",
            {
                "check": "redis",
                "reason": "connection_refused",
                "error": "Error 111 connecting to x:2",
            },
        ),
        (
            "readiness_check_failed",
            {"check": "redis", "reason": "timeout", "error": "timed out after 0.8s"},
        ),
        ("readiness_check_recovered", {"check": "redis"}),
        ("readiness_check_failed", {"check": "database", "reason": "unreachable", "error": "a"}),
        ("readiness_check_failed", {"check": "database", "reason": "unreachable", "error": "a"}),
    ]
