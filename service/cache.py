"""Read-through cache in Redis (redis.asyncio). Failures fall back to the database."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.logs import get_logger

log = get_logger(__name__)
CLOSE_TIMEOUT_SECONDS = 1.5
# Short socket timeouts: a hung Redis must not hold a request; the database answers.
SOCKET_TIMEOUT_SECONDS = 0.5
TTL_SECONDS = 60


class Cache:
    def __init__(self, url: str) -> None:
        self.client: Redis = Redis.from_url(
            url,
            socket_timeout=SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
            health_check_interval=30,
            decode_responses=True,
        )

    async def get(self, key: str) -> str | None:
        try:
            value: Any = await self.client.get(key)
        except (TimeoutError, RedisError, OSError) as exc:
            log.warning("cache_unavailable", operation="get", error=_describe(exc))
            return None
        return str(value) if value is not None else None

    async def set(self, key: str, value: str) -> None:
        try:
            await self.client.set(key, value, ex=TTL_SECONDS)
        except (TimeoutError, RedisError, OSError) as exc:
            log.warning("cache_unavailable", operation="set", error=_describe(exc))

    async def delete(self, key: str) -> None:
        try:
            await self.client.delete(key)
        except (TimeoutError, RedisError, OSError) as exc:
            log.warning("cache_unavailable", operation="delete", error=_describe(exc))

    async def ping(self) -> float:
        started = time.perf_counter()
        await self.client.ping()
        return (time.perf_counter() - started) * 1000

    async def close(self) -> None:
        await asyncio.wait_for(self.client.aclose(), CLOSE_TIMEOUT_SECONDS)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
