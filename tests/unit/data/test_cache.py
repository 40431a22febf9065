"""Cache reads are counted: hit, miss, fallback (Redis failing, then bypassed)."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

from service.data.cache import Cache
from service.telemetry.metrics import AppMetrics, BuildInfo


class FakeRedis:
    def __init__(self) -> None:
        self.values: dict[str, str] = {"k": "v"}
        self.down = False

    async def get(self, key: str) -> Any:
        if self.down:
            raise RedisConnectionError("down")
        return self.values.get(key)


def counts(metrics: AppMetrics) -> dict[str, float]:
    # outside Gunicorn (no multiprocess directory) these are prometheus_client's children
    children: dict[str, Any] = dict(metrics.cache)
    return {result: child._value.get() for result, child in children.items()}


def test_hits_misses_and_fallbacks_are_counted() -> None:
    async def scenario() -> None:
        metrics = AppMetrics(BuildInfo("api", "1", "x"))
        cache = Cache("redis://127.0.0.1:1/0", metrics)
        fake = FakeRedis()
        cache.client = fake  # type: ignore[assignment]
        assert await cache.get("k") == "v"
        assert await cache.get("absent") is None
        fake.down = True
        assert await cache.get("k") is None  # the failure: fallback, bypass starts
        fake.down = False
        assert await cache.get("k") is None  # bypassed: fallback without asking Redis
        assert counts(metrics) == {"hit": 1, "miss": 1, "fallback": 2}

    asyncio.run(scenario())


def test_without_metrics_nothing_is_counted() -> None:
    async def scenario() -> None:
        cache = Cache("redis://127.0.0.1:1/0")
        cache.client = FakeRedis()  # type: ignore[assignment]
        assert await cache.get("k") == "v"

    asyncio.run(scenario())
