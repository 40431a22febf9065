"""Readiness checks record their duration and failures (timeout or error)."""

from __future__ import annotations

import asyncio

from prometheus_client import generate_latest

from service.api import health
from service.telemetry.metrics import AppMetrics, BuildInfo


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
