"""ShutdownMiddleware: counts in-flight requests, answers 503 once the drain rejects."""

from __future__ import annotations

import asyncio
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.request.context import PROBE_PREFIX
from service.request.errors import CONNECTION_CLOSE, send_error
from service.server.shutdown import GracefulShutdownManager, ShutdownState
from service.telemetry.logs import get_logger
from service.telemetry.metrics import AppMetrics

log = get_logger("service.shutdown")


class ShutdownMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        manager: GracefulShutdownManager,
        retry_after_seconds: int,
        message: str,
        metrics: AppMetrics | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.manager = manager
        self.retry_after_seconds = retry_after_seconds
        self.rejection_headers = [
            (b"retry-after", str(retry_after_seconds).encode()),
            CONNECTION_CLOSE,
        ]
        self.message = message

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        manager = self.manager
        if manager.is_draining and manager.rejecting and not scope["path"].startswith(PROBE_PREFIX):
            await self._reject(send)
            return
        started = time.monotonic()
        manager.request_started()
        try:
            await self.app(scope, receive, self._closing(send))
        except asyncio.CancelledError:
            if manager.state is not ShutdownState.RUNNING:
                if self.metrics is not None:
                    self.metrics.cut_requests.inc()
                log.warning(
                    "request_cut_by_grace_period",
                    method=scope["method"],
                    path=scope["path"],
                    duration_ms=round((time.monotonic() - started) * 1000, 1),
                )
            raise
        finally:
            manager.request_finished()

    def _closing(self, send: Send) -> Send:
        """While draining, every response asks the client to close its connection, so
        keep-alive clients reconnect (to another instance) instead of reusing this one."""
        manager = self.manager

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start" and manager.is_draining:
                message["headers"] = [*message.get("headers", []), CONNECTION_CLOSE]
            await send(message)

        return send_closing

    async def _reject(self, send: Send) -> None:
        if self.metrics is not None:
            self.metrics.refused_requests.inc()
        await send_error(
            send,
            503,
            self.message,
            self.rejection_headers,
            retry_after=self.retry_after_seconds,
        )
