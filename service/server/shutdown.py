"""GracefulShutdownManager: the drain that runs between SIGTERM and exit.

    running --SIGTERM/SIGINT/admin--> draining --in-flight 0 or grace over--> stopping
    --lifespan cleanup done--> stopped

While draining, readiness answers 503 at once; for SHUTDOWN_DELAY_SECONDS requests are
still served (endpoints take a moment to drop the pod), after that new requests get a
503 + Retry-After; in-flight requests run to the end or to the grace period's end.
"""

from __future__ import annotations

import asyncio
import enum
import os
import time
from collections.abc import Callable

from service.telemetry.logs import get_logger

log = get_logger("service.shutdown")


class ShutdownState(enum.Enum):
    RUNNING = "running"
    DRAINING = "draining"
    STOPPING = "stopping"
    STOPPED = "stopped"


class GracefulShutdownManager:
    def __init__(self, grace_period_seconds: float, shutdown_delay_seconds: float) -> None:
        self.grace_period_seconds = grace_period_seconds
        # The delay is part of the grace period, never longer than it.
        self.shutdown_delay_seconds = min(shutdown_delay_seconds, grace_period_seconds)
        self.state = ShutdownState.RUNNING
        self.in_flight = 0
        self.drain_started: float | None = None
        self.draining = asyncio.Event()  # set at the first moment of the drain
        self.stopped = asyncio.Event()
        # Called once the drain is over: the worker closes its listener then.
        self.on_drained: Callable[[], None] | None = None
        # The Gunicorn master, when there is one: /admin/shutdown signals it.
        self.master_pid: int | None = None
        self._drain_task: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()  # set whenever in_flight drops to zero

    @property
    def is_draining(self) -> bool:
        return self.state is not ShutdownState.RUNNING

    @property
    def rejecting(self) -> bool:
        """True once the drain is past SHUTDOWN_DELAY_SECONDS: new requests get 503."""
        if self.drain_started is None:
            return False
        return time.monotonic() - self.drain_started >= self.shutdown_delay_seconds

    def request_started(self) -> None:
        self.in_flight += 1
        self._idle.clear()

    def request_finished(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0:
            self._idle.set()

    def begin(self, reason: str) -> None:
        """Start the drain (idempotent: a second signal keeps the first clock)."""
        if self.state is not ShutdownState.RUNNING:
            log.info("shutdown_already_in_progress", signal=reason, state=self.state.value)
            return
        self.state = ShutdownState.DRAINING
        self.drain_started = time.monotonic()
        self.draining.set()
        log.info(
            "shutdown_started",
            signal=reason,
            pid=os.getpid(),  # each worker drains on its own: tells their lines apart
            in_flight=self.in_flight,
            grace_period_seconds=self.grace_period_seconds,
            shutdown_delay_seconds=self.shutdown_delay_seconds,
        )
        self._drain_task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        assert self.drain_started is not None
        deadline = self.drain_started + self.grace_period_seconds
        log.info(
            "waiting_for_in_flight_requests",
            in_flight=self.in_flight,
            max_seconds=self.grace_period_seconds,
        )
        if self.shutdown_delay_seconds > 0:
            await asyncio.sleep(self.shutdown_delay_seconds)
        log.info("rejecting_new_requests", in_flight=self.in_flight)
        while self.in_flight > 0 and (remaining := deadline - time.monotonic()) > 0:
            try:
                await asyncio.wait_for(self._idle.wait(), remaining)
            except TimeoutError:
                break
        elapsed = round(time.monotonic() - self.drain_started, 3)
        if self.in_flight > 0:
            log.warning(
                "grace_period_exceeded",
                in_flight=self.in_flight,
                grace_period_seconds=self.grace_period_seconds,
                elapsed_seconds=elapsed,
            )
        else:
            log.info("requests_drained", elapsed_seconds=elapsed)
        self.state = ShutdownState.STOPPING
        if self.on_drained is not None:
            self.on_drained()

    def finish(self) -> None:
        """Called after the lifespan cleanup: the process is about to exit."""
        started = self.drain_started
        self.state = ShutdownState.STOPPED
        self.stopped.set()
        fields = (
            {} if started is None else {"elapsed_seconds": round(time.monotonic() - started, 3)}
        )
        log.info("shutdown_complete", pid=os.getpid(), **fields)
