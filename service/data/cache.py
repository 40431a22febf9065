"""Read-through cache in Redis (redis.asyncio). Failures fall back to the database."""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from service.telemetry.dependency_spans import RedisSpan, mark_failed
from service.telemetry.logs import get_logger
from service.telemetry.metrics import AppMetrics

log = get_logger(__name__)
CLOSE_TIMEOUT_SECONDS = 1.5
# Short socket timeouts: a hung Redis must not hold a request; the database answers.
SOCKET_TIMEOUT_SECONDS = 0.5
# After a failure the cache is bypassed this long (reads miss, writes are skipped), so a
# hung Redis costs one request per worker a timeout every few seconds, not every request
# one per cache call (measured with a SIGSTOPped Redis: 1.0 s per cached read before).
BYPASS_SECONDS = 2.0
TTL_SECONDS = 60
# A client made by from_url does not retry at all, so after a Redis restart every pooled
# connection failed its next command ("Connection closed by server"), readiness included.
# One immediate retry on a fresh connection; timeouts are not retried (a hung Redis would
# cost twice the timeout), and the commands used here are all safe to repeat.
RECONNECT_RETRY = Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,))
_ERRORS = (TimeoutError, RedisError, OSError)


class Cache:
    def __init__(
        self, url: str, metrics: AppMetrics | None = None, trace_commands: bool = False
    ) -> None:
        self.client: Redis = Redis.from_url(
            url,
            socket_timeout=SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
            health_check_interval=30,
            retry=RECONNECT_RETRY,
            decode_responses=True,
        )
        self.bypass_until = 0.0
        self.metrics = metrics
        self.trace_commands = trace_commands
        kwargs = self.client.connection_pool.connection_kwargs
        self.server = {
            "server.address": kwargs.get("host", "localhost"),
            "server.port": kwargs.get("port", 6379),
        }

    def _span(self, command: str) -> AbstractContextManager[trace.Span]:
        """A span for the command (OTEL_INSTRUMENT_DEPENDENCIES), or nothing."""
        return RedisSpan(command, self.server) if self.trace_commands else nullcontext(INVALID_SPAN)

    def _count(self, result: str) -> None:
        """A read's outcome: hit, miss, or fallback (Redis failed or bypassed)."""
        if self.metrics is not None:
            self.metrics.cache[result].inc()

    def _bypassed(self) -> bool:
        return time.monotonic() < self.bypass_until

    def _failed(self, operation: str, exc: BaseException) -> None:
        self.bypass_until = time.monotonic() + BYPASS_SECONDS
        log.warning(
            "cache_unavailable",
            operation=operation,
            error=_describe(exc),
            bypass_seconds=BYPASS_SECONDS,
        )

    async def get(self, key: str) -> str | None:
        if self._bypassed():
            self._count("fallback")
            trace.get_current_span().add_event("cache_bypassed", {"app.cache.fallback": "database"})
            return None
        with self._span("GET") as span:
            try:
                value: Any = await self.client.get(key)
            except _ERRORS as exc:
                mark_failed(span, exc, fallback="database")
                self._failed("get", exc)
                self._count("fallback")
                return None
        self._count("miss" if value is None else "hit")
        return str(value) if value is not None else None

    async def set(self, key: str, value: str) -> None:
        if self._bypassed():
            return
        with self._span("SET") as span:
            try:
                await self.client.set(key, value, ex=TTL_SECONDS)
            except _ERRORS as exc:
                mark_failed(span, exc)
                self._failed("set", exc)

    async def ping(self) -> float:
        """Always asks Redis (the readiness probe must see it come back)."""
        started = time.perf_counter()
        with self._span("PING"):
            await self.client.ping()
        return (time.perf_counter() - started) * 1000

    async def close(self) -> None:
        await asyncio.wait_for(self.client.aclose(), CLOSE_TIMEOUT_SECONDS)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
