"""Requests refused while draining and requests cut by the grace period are counted."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

from service.server.shutdown import GracefulShutdownManager
from service.server.shutdown_middleware import ShutdownMiddleware
from service.telemetry.metrics import AppMetrics, BuildInfo


def scope(path: str = "/api/ping") -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": path, "headers": []}


async def receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b""}


def test_refused_and_cut_requests_are_counted() -> None:
    async def scenario() -> None:
        metrics = AppMetrics(BuildInfo("api", "1", "x"))
        manager = GracefulShutdownManager(grace_period_seconds=30, shutdown_delay_seconds=0)
        manager.on_drained = lambda: None
        started = asyncio.Event()

        async def app(scope: Any, receive: Any, send: Any) -> None:
            started.set()
            await asyncio.sleep(60)

        middleware = ShutdownMiddleware(app, manager, 5, "bye", metrics=metrics)
        sent: list[MutableMapping[str, Any]] = []

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        running = asyncio.ensure_future(middleware(scope(), receive, send))
        await started.wait()
        manager.begin("SIGTERM")
        await middleware(scope(), receive, send)  # refused: 503
        running.cancel()  # what the grace period's end does to a request still running
        await asyncio.gather(running, return_exceptions=True)
        assert sent[0]["status"] == 503
        assert metrics.refused_requests._value.get() == 1
        assert metrics.cut_requests._value.get() == 1

    asyncio.run(scenario())
