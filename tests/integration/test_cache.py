"""The Redis cache against a real Redis that is stopped and restarted under it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from service.data.cache import Cache
from tools.testbed.servers import RedisServer

pytestmark = pytest.mark.integration
POOLED = 20


@pytest.fixture
def redis_alone() -> Iterator[RedisServer]:
    """A Redis of this test's own: it is restarted, which the shared one must not be."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


async def _pings(cache: Cache, count: int) -> list[float | BaseException]:
    return await asyncio.gather(*(cache.ping() for _ in range(count)), return_exceptions=True)


def test_pooled_connections_survive_a_redis_restart(redis_alone: RedisServer) -> None:
    async def scenario() -> tuple[list[float | BaseException], ...]:
        cache = Cache(redis_alone.url)
        try:
            await cache.set("k", "before")
            warm = await _pings(cache, POOLED)  # leaves POOLED connections in the pool
            redis_alone.stop()
            down = await _pings(cache, 3)
            redis_alone.start()
            after = await _pings(cache, POOLED)  # each on a connection the old server closed
            await cache.set("k", "after")
            value = await cache.get("k")
            assert value == "after", value
            assert not cache._bypassed(), "a set or get failed after the restart"
            return warm, down, after
        finally:
            await cache.close()

    warm, down, after = asyncio.run(scenario())
    assert all(isinstance(r, float) for r in warm), warm
    assert all(isinstance(r, BaseException) for r in down), down
    failed = [f"{type(r).__name__}: {r}" for r in after if isinstance(r, BaseException)]
    assert not failed, f"{len(failed)} of {POOLED} pings failed after the restart: {failed[:3]}"
